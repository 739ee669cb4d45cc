// Command krew builds kubectl-keywarden's release archives for each
// platform krew serves and writes its krew manifest from the template
// plugins/keywarden.yaml, with the archives' checksums.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"keywarden.dev/keywarden/internal/release"
)

// Platform is one archive of the plugin.
type Platform struct {
	OS, Arch, URI, SHA256, Bin string
}

// Manifest is what the template is given.
type Manifest struct {
	Version, Homepage string
	Platforms         []Platform
}

// platforms are those the plugin is built for.
var platforms = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

func main() {
	version := flag.String("version", "", "the release's version, as v0.1.0")
	out := flag.String("out", "dist", "where to write the archives and the manifest")
	releaseURL := flag.String("release-url", "", "the base URL of the releases' assets: an archive's URI is <release-url>/<version>/<archive>")
	homepage := flag.String("homepage", "", "the plugin's homepage")
	flag.Parse()
	if err := run(*version, *out, *releaseURL, *homepage); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(version, out, releaseURL, homepage string) error {
	if !release.ValidVersion(version) {
		return fmt.Errorf("-version %q is not a semantic version such as v0.1.0 (krew needs one)", version)
	}
	if !strings.HasPrefix(releaseURL, "https://") || !strings.HasPrefix(homepage, "https://") {
		return errors.New("-release-url and -homepage must be https:// URLs")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	m := Manifest{Version: version, Homepage: homepage}
	for _, p := range platforms {
		bin := "kubectl-keywarden"
		if p[0] == "windows" {
			bin += ".exe"
		}
		dir, err := os.MkdirTemp("", "krew")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, bin), "./cmd/kubectl-keywarden")
		build.Env = append(os.Environ(), "GOOS="+p[0], "GOARCH="+p[1], "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		fmt.Fprintf(os.Stderr, "building kubectl-keywarden for %s/%s\n", p[0], p[1])
		if err := build.Run(); err != nil {
			return fmt.Errorf("building for %s/%s: %w", p[0], p[1], err)
		}
		name := fmt.Sprintf("kubectl-keywarden_%s_%s.tar.gz", p[0], p[1])
		sum, err := archive(filepath.Join(out, name), filepath.Join(dir, bin))
		if err != nil {
			return err
		}
		m.Platforms = append(m.Platforms, Platform{OS: p[0], Arch: p[1], Bin: bin, SHA256: sum,
			URI: strings.TrimSuffix(releaseURL, "/") + "/" + version + "/" + name})
	}
	tmpl, err := os.ReadFile("plugins/keywarden.yaml")
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "keywarden.yaml"))
	if err != nil {
		return err
	}
	if err := Render(f, string(tmpl), m); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Render writes the manifest: the template's comments dropped, its fields
// filled.
func Render(w io.Writer, tmpl string, m Manifest) error {
	if len(m.Platforms) == 0 {
		return errors.New("no platforms")
	}
	var body []string
	for _, line := range strings.Split(tmpl, "\n") {
		if !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	t, err := template.New("krew").Option("missingkey=error").Parse(strings.Join(body, "\n"))
	if err != nil {
		return err
	}
	return t.Execute(w, m)
}

// archive writes a gzipped tar of the binary and returns its SHA-256.
func archive(path, bin string) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(bin), Mode: 0o755, Size: int64(len(b))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(b); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}
