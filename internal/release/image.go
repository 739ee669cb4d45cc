// Package release assembles what a Keywarden release ships, without a
// container engine: the components' image, laid as layers straight from
// the static binaries, for each platform, under one index.
package release

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: not root, and the uid distroless's nonroot has, which
// the manifests' securityContext names.
const (
	UID        = 65532
	userName   = "nonroot"
	Entrypoint = "/keywarden"
	certsPath  = "etc/ssl/certs/ca-certificates.crt"
)

// ImageOptions says what goes into the image.
type ImageOptions struct {
	// Version is the release, such as v0.2.0; Revision the commit it was
	// built from.
	Version, Revision string
	// Source is the repository's address, for the image's labels.
	Source string
	// Binaries are the static keywarden binaries by platform, such as
	// "linux/amd64".
	Binaries map[string]string
	// CACertificates is the bundle of CA certificates the components
	// trust for outbound TLS (notification receivers), as the system's.
	CACertificates string
	// Created is the time the image records (the commit's, for a build
	// that gives the same digest each time).
	Created time.Time
}

// Labels are the image's OCI labels.
func (o ImageOptions) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "keywarden",
		"org.opencontainers.image.description": "Keywarden: API keys as Kubernetes resources (keywarden controller|verifier|console)",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// Image builds the index of the components' image, one image a platform:
// the binary as the entrypoint, CA certificates, and a passwd naming the
// non-root user it runs as. No shell, no package manager, nothing
// writable needed: it runs with a read-only root filesystem.
func Image(o ImageOptions) (v1.ImageIndex, error) {
	if len(o.Binaries) == 0 {
		return nil, fmt.Errorf("no binaries to build an image of")
	}
	certs, err := os.ReadFile(o.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificates: %w", err)
	}
	platforms := make([]string, 0, len(o.Binaries))
	for p := range o.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		os_, arch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q is not OS/ARCH", p)
		}
		bin, err := os.ReadFile(o.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("reading the %s binary: %w", p, err)
		}
		img, err := platformImage(o, os_, arch, bin, certs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os_, Architecture: arch}},
		})
	}
	return mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.source":   o.Source,
		"org.opencontainers.image.created":  o.Created.UTC().Format(time.RFC3339),
	}).(v1.ImageIndex), nil
}

func platformImage(o ImageOptions, os_, arch string, bin, certs []byte) (v1.Image, error) {
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", userName, UID, UID, userName, userName)},
		{name: "etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", userName, UID)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: certsPath, mode: 0o644, data: certs},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/" + userName + "/", mode: 0o700, dir: true, owner: UID},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: strings.TrimPrefix(Entrypoint, "/"), mode: 0o755, data: bin},
	}
	layer, err := tarLayer(files, o.Created)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.Created}, CreatedBy: "keywarden release: the static binary, CA certificates, a non-root user",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = os_, arch, v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint: []string{Entrypoint},
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/",
		Env:        []string{"SSL_CERT_FILE=/" + certsPath},
		Labels:     o.Labels(),
	}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	name  string
	mode  int64
	data  []byte
	dir   bool
	owner int
}

// tarLayer lays files as one gzipped layer, every time the same bytes for
// the same files and time.
func tarLayer(files []file, at time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: at, Uid: f.owner, Gid: f.owner, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}
