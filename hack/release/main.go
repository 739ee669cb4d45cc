// Command release builds a Keywarden release into a directory, without a
// container engine and from the Go module proxy alone: the static binary
// for each platform, the components' image (an OCI layout, pushed when a
// registry is named), the static install manifests naming that image by
// digest, the release notes from CHANGELOG.md, and the checksums of it
// all. make release runs it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"keywarden.dev/keywarden/internal/release"
)

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

// platforms are those the image is built for.
var platforms = []string{"linux/amd64", "linux/arm64"}

// variants are the install variants shipped as static manifests: the
// kustomizations of config/ a platform team picks from.
var variants = map[string]string{
	"keywarden.yaml":                      "config/default",
	"keywarden-with-webhook.yaml":         "config/with-webhook",
	"keywarden-owner-binding.yaml":        "config/owner-binding",
	"keywarden-verifier-autoscaling.yaml": "config/verifier-autoscaling",
	"keywarden-console.yaml":              "config/console",
}

func main() {
	version := flag.String("version", "", "the release's version, as v0.2.0")
	out := flag.String("out", "dist", "where to write the release")
	registry := flag.String("registry", "", "push the image to this registry, as ghcr.io/example (the image is <registry>/keywarden:<version>); empty: an OCI layout only")
	repository := flag.String("image", "ghcr.io/keywarden/keywarden", "the image's name in the manifests when no registry is given")
	source := flag.String("source", "https://github.com/keywarden/keywarden", "the repository's address, for the image's labels")
	certs := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "the CA certificates the image carries")
	kubectl := flag.String("kubectl", "", "the kubectl that builds the manifests (default: the one of hack/controlplane.sh)")
	flag.Parse()
	if err := run(*version, *out, *registry, *repository, *source, *certs, *kubectl); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(version, out, registry, repository, source, certs, kubectl string) error {
	if !semver.MatchString(version) {
		return fmt.Errorf("VERSION=%q is not a semantic version such as v0.2.0", version)
	}
	revision, err := git("rev-parse", "HEAD")
	if err != nil {
		return err
	}
	// The commit's time, so that a rebuild of the same commit gives the
	// same image.
	secs, err := git("log", "-1", "--format=%ct")
	if err != nil {
		return err
	}
	unix, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return fmt.Errorf("the commit's time %q: %w", secs, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// The notes first: a release without them stops before anything is
	// built.
	changelog, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		return err
	}
	notes, err := release.Notes(string(changelog), version)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "RELEASE_NOTES.md"), []byte(notes), 0o644); err != nil {
		return err
	}

	bins := map[string]string{}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		bin := filepath.Join(out, "bin", goos+"_"+goarch, "keywarden")
		fmt.Printf("Building %s\n", bin)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/keywarden")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building for %s: %w", p, err)
		}
		bins[p] = bin
	}
	idx, err := release.Image(release.ImageOptions{
		Version: version, Revision: revision, Source: source, Binaries: bins, CACertificates: certs, Created: time.Unix(unix, 0).UTC(),
	})
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	imageDir := filepath.Join(out, "image")
	if err := os.RemoveAll(imageDir); err != nil {
		return err
	}
	p, err := layout.Write(imageDir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx); err != nil {
		return err
	}
	fmt.Printf("Image %s written to %s (OCI layout)\n", digest, imageDir)
	image := repository
	if registry != "" {
		image = strings.TrimSuffix(registry, "/") + "/keywarden"
		ref, err := name.ParseReference(image + ":" + version)
		if err != nil {
			return fmt.Errorf("REGISTRY=%q: %w", registry, err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		fmt.Printf("Pushed %s@%s\n", ref, digest)
	}
	pinned := image + ":" + version + "@" + digest.String()

	if kubectl == "" {
		assets, err := exec.Command("hack/controlplane.sh").Output()
		if err != nil {
			return fmt.Errorf("hack/controlplane.sh: %w", err)
		}
		kubectl = filepath.Join(strings.TrimSpace(string(assets)), "kubectl")
	}
	if err := os.MkdirAll(filepath.Join(out, "manifests"), 0o755); err != nil {
		return err
	}
	for _, file := range sortedKeys(variants) {
		y, err := exec.Command(kubectl, "kustomize", variants[file]).Output()
		if err != nil {
			return fmt.Errorf("kubectl kustomize %s: %w", variants[file], err)
		}
		m, err := release.PinImage(y, "keywarden:dev", pinned)
		if err != nil {
			return fmt.Errorf("%s: %w", variants[file], err)
		}
		if err := os.WriteFile(filepath.Join(out, "manifests", file), m, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("Manifests written to %s, naming %s\n", filepath.Join(out, "manifests"), pinned)
	return checksums(out)
}

// checksums writes checksums.txt: the SHA-256 of every file of the
// release but itself, as sha256sum -c reads them.
func checksums(out string) error {
	var lines []string
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) == "checksums.txt" {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		lines = append(lines, hex.EncodeToString(h.Sum(nil))+"  "+filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return os.WriteFile(filepath.Join(out, "checksums.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func git(args ...string) (string, error) {
	b, err := exec.Command("git", args...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), exit.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
