package release

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestImage builds the index from two stand-in binaries, pushes it to a
// registry served in-process, pulls it back, and checks what a platform
// team's admission policies and scanners look at: both platforms, the
// entrypoint, a non-root user, the labels, and the files.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := ImageOptions{
		Version: "v0.9.0", Revision: "0123456789abcdef", Source: "https://github.com/keywarden/keywarden",
		Binaries:       map[string]string{"linux/amd64": write("amd64", "binary for amd64"), "linux/arm64": write("arm64", "binary for arm64")},
		CACertificates: write("ca.crt", "-----BEGIN CERTIFICATE-----\n"),
		Created:        time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
	}
	idx, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	// The same inputs give the same digest: a rebuild can be checked.
	again, err := Image(o)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs: %s and %s", d1, d2)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/keywarden/keywarden:v0.9.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.Annotations["org.opencontainers.image.version"] != "v0.9.0" || manifest.Annotations["org.opencontainers.image.revision"] != "0123456789abcdef" {
		t.Errorf("the index's annotations: %v", manifest.Annotations)
	}
	platforms := map[string]bool{}
	for _, m := range manifest.Manifests {
		p := m.Platform.OS + "/" + m.Platform.Architecture
		platforms[p] = true
		img, err := pulled.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: the image says it is %s/%s", p, cf.OS, cf.Architecture)
		}
		if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/keywarden" || cf.Config.User != "65532:65532" {
			t.Errorf("%s: entrypoint %v, user %q", p, cf.Config.Entrypoint, cf.Config.User)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.version": "v0.9.0", "org.opencontainers.image.revision": "0123456789abcdef",
			"org.opencontainers.image.source": "https://github.com/keywarden/keywarden", "org.opencontainers.image.created": "2026-12-01T10:00:00Z",
		} {
			if cf.Config.Labels[k] != want {
				t.Errorf("%s: label %s is %q, want %q", p, k, cf.Config.Labels[k], want)
			}
		}
		files := imageFiles(t, img)
		arch := m.Platform.Architecture
		if f := files["keywarden"]; f.body != "binary for "+arch || f.mode&0o111 == 0 {
			t.Errorf("%s: /keywarden is %q (mode %o)", p, f.body, f.mode)
		}
		if !strings.Contains(files["etc/passwd"].body, "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd names no user 65532:\n%s", p, files["etc/passwd"].body)
		}
		if files["etc/ssl/certs/ca-certificates.crt"].body == "" {
			t.Errorf("%s: no CA certificates", p)
		}
		for name := range files {
			if strings.HasPrefix(name, "bin/") || name == "bin/sh" {
				t.Errorf("%s: the image holds %s: no shell, no tools", p, name)
			}
		}
	}
	if !platforms["linux/amd64"] || !platforms["linux/arm64"] || len(platforms) != 2 {
		t.Errorf("platforms: %v", platforms)
	}
}

type imageFile struct {
	body string
	mode int64
}

// imageFiles reads the files of an image's layers.
func imageFiles(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]imageFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = io.Copy(&b, tr)
			out[h.Name] = imageFile{body: b.String(), mode: h.Mode}
		}
		_ = rc.Close()
	}
	return out
}
