// Command release builds a Keywarden release into a directory, without a
// container engine and from the Go module proxy alone: the static binary
// for each platform, the components' image (an OCI layout, pushed when a
// registry is named) and its SBOM, the Helm chart naming that image by
// digest, the static install manifests naming it too, the release notes
// from CHANGELOG.md, and the checksums of it all; signed, with a key, as
// cosign signs. make release runs it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// platforms are those the image is built for.
var platforms = []string{"linux/amd64", "linux/arm64"}

// variants are the install variants shipped as static manifests: the
// kustomizations of config/ a platform team picks from.
var variants = map[string]string{
	"keywarden.yaml":                      "config/default",
	"keywarden-without-webhook.yaml":      "config/base",
	"keywarden-owner-binding.yaml":        "config/owner-binding",
	"keywarden-verifier-autoscaling.yaml": "config/verifier-autoscaling",
	"keywarden-console.yaml":              "config/console",
}

func main() {
	var o options
	flag.StringVar(&o.version, "version", "", "the release's version, as v0.2.0")
	flag.StringVar(&o.out, "out", "dist", "where to write the release")
	flag.StringVar(&o.registry, "registry", "", "push the image to this registry, as ghcr.io/example (the image is <registry>/keywarden:<version>); empty: an OCI layout only")
	flag.StringVar(&o.repository, "image", "ghcr.io/keywarden/keywarden", "the image's name in the manifests when no registry is given")
	flag.StringVar(&o.source, "source", "https://github.com/keywarden/keywarden", "the repository's address, for the image's labels")
	flag.StringVar(&o.certs, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "the CA certificates the image carries")
	flag.StringVar(&o.kubectl, "kubectl", "", "the kubectl that builds the manifests (default: the one of hack/controlplane.sh)")
	flag.StringVar(&o.helm, "helm", "helm", "the helm that packages the chart")
	flag.StringVar(&o.cyclonedx, "cyclonedx-gomod", "cyclonedx-gomod", "the cyclonedx-gomod that writes the SBOM")
	flag.StringVar(&o.changelog, "changelog", "CHANGELOG.md", "the changelog whose section for the version is the release notes")
	flag.StringVar(&o.signingKey, "signing-key", "", "sign the image, its SBOM, the chart and checksums.txt with this key (as cosign generate-key-pair writes it; its password in COSIGN_PASSWORD); empty: unsigned")
	flag.StringVar(&o.publicKey, "public-key", "cosign.pub", "the project's public key, committed: a signing key that is not its pair is refused")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type options struct {
	version, out, registry, repository, source, certs          string
	kubectl, helm, cyclonedx, signingKey, publicKey, changelog string
}

func run(o options) error {
	if !release.ValidVersion(o.version) {
		return fmt.Errorf("VERSION=%q is not a semantic version such as v0.2.0", o.version)
	}
	// The key first: a release that cannot be signed stops before
	// anything is built or pushed.
	var signer *release.Signer
	if o.signingKey != "" {
		pemBytes, err := os.ReadFile(o.signingKey)
		if err != nil {
			return err
		}
		if signer, err = release.LoadSigner(pemBytes, []byte(os.Getenv("COSIGN_PASSWORD"))); err != nil {
			return fmt.Errorf("%s: %w", o.signingKey, err)
		}
		// Users verify with the key in the repository, never with one
		// that came with the release's files: a release signed with
		// another key would verify against nothing they trust.
		committed, err := os.ReadFile(o.publicKey)
		if err != nil {
			return fmt.Errorf("the project's public key: %w (commit the signing key's public half, cosign.pub, before releasing)", err)
		}
		if err := signer.Matches(committed); err != nil {
			return fmt.Errorf("%s: %w", o.publicKey, err)
		}
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
	created := time.Unix(unix, 0).UTC()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	// The notes next: a release without them stops before anything is
	// built.
	changelog, err := os.ReadFile(o.changelog)
	if err != nil {
		return err
	}
	notes, err := release.Notes(string(changelog), o.version)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "RELEASE_NOTES.md"), []byte(notes), 0o644); err != nil {
		return err
	}
	push := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}

	bins := map[string]string{}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		bin := filepath.Join(o.out, "bin", goos+"_"+goarch, "keywarden")
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
		Version: o.version, Revision: revision, Source: o.source, Binaries: bins, CACertificates: o.certs, Created: created,
	})
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	imageDir := filepath.Join(o.out, "image")
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

	sbom, err := release.SBOM(o.cyclonedx, ".", "cmd/keywarden")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "keywarden.cdx.json"), sbom, 0o644); err != nil {
		return err
	}

	image := o.repository
	registry := strings.TrimSuffix(o.registry, "/")
	var pushed []name.Digest // what is signed in the registry
	if registry != "" {
		image = registry + "/keywarden"
		ref, err := name.ParseReference(image + ":" + o.version)
		if err != nil {
			return fmt.Errorf("REGISTRY=%q: %w", o.registry, err)
		}
		if err := remote.WriteIndex(ref, idx, push...); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		pinned := ref.Context().Digest(digest.String())
		fmt.Printf("Pushed %s@%s\n", ref, digest)
		sbomRef, err := release.AttachSBOM(pinned, sbom, created, push...)
		if err != nil {
			return err
		}
		fmt.Printf("Attached the SBOM to it: %s\n", sbomRef)
		pushed = append(pushed, pinned, sbomRef)
	}

	chart, err := packageChart(o.helm, filepath.Join(o.out, "chart"), o.version, image, digest.String())
	if err != nil {
		return err
	}
	fmt.Printf("Chart packaged: %s\n", chart)
	if registry != "" {
		tgz, err := os.ReadFile(chart)
		if err != nil {
			return err
		}
		repo, err := name.NewRepository(registry + "/charts/keywarden")
		if err != nil {
			return err
		}
		d, err := release.PushChart(repo, tgz, created, push...)
		if err != nil {
			return err
		}
		fmt.Printf("Pushed the chart: %s (helm install keywarden oci://%s --version %s)\n", d, repo, strings.TrimPrefix(o.version, "v"))
		pushed = append(pushed, d)
	}

	pinned := image + ":" + o.version + "@" + digest.String()
	kubectl := o.kubectl
	if kubectl == "" {
		assets, err := exec.Command("hack/controlplane.sh").Output()
		if err != nil {
			return fmt.Errorf("hack/controlplane.sh: %w", err)
		}
		kubectl = filepath.Join(strings.TrimSpace(string(assets)), "kubectl")
	}
	if err := os.MkdirAll(filepath.Join(o.out, "manifests"), 0o755); err != nil {
		return err
	}
	for _, file := range slices.Sorted(maps.Keys(variants)) {
		y, err := exec.Command(kubectl, "kustomize", variants[file]).Output()
		if err != nil {
			return fmt.Errorf("kubectl kustomize %s: %w", variants[file], err)
		}
		m, err := release.PinImage(y, "keywarden:dev", pinned)
		if err != nil {
			return fmt.Errorf("%s: %w", variants[file], err)
		}
		if err := os.WriteFile(filepath.Join(o.out, "manifests", file), m, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("Manifests written to %s, naming %s\n", filepath.Join(o.out, "manifests"), pinned)

	if signer == nil {
		return checksums(o.out)
	}
	for _, d := range pushed {
		if err := signer.Sign(d, map[string]string{"version": o.version}, push...); err != nil {
			return fmt.Errorf("signing %s: %w", d, err)
		}
		fmt.Printf("Signed %s\n", d)
	}
	if err := checksums(o.out); err != nil {
		return err
	}
	sums, err := os.ReadFile(filepath.Join(o.out, "checksums.txt"))
	if err != nil {
		return err
	}
	sig, err := signer.SignBlob(sums)
	if err != nil {
		return err
	}
	fmt.Printf("Signed checksums.txt (cosign verify-blob --key %s --signature checksums.txt.sig checksums.txt)\n", o.publicKey)
	return os.WriteFile(filepath.Join(o.out, "checksums.txt.sig"), []byte(sig), 0o644)
}

// packageChart packages charts/keywarden as the release's chart (version
// without the v, appVersion the release), its values naming the image by
// tag and digest, into dir.
func packageChart(helm, dir, version, image, digest string) (string, error) {
	tmp, err := os.MkdirTemp("", "keywarden-chart")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	src := filepath.Join("charts", "keywarden")
	dst := filepath.Join(tmp, "keywarden")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return "", err
	}
	values, err := os.ReadFile(filepath.Join(dst, "values.yaml"))
	if err != nil {
		return "", err
	}
	if values, err = release.SetImageValues(values, image, version, digest); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dst, "values.yaml"), values, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	chartVersion := strings.TrimPrefix(version, "v")
	cmd := exec.Command(helm, "package", dst, "--version", chartVersion, "--app-version", version, "--destination", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm package: %w", err)
	}
	return filepath.Join(dir, "keywarden-"+chartVersion+".tgz"), nil
}

// checksums writes checksums.txt: the SHA-256 of every file of the
// release but itself, as sha256sum -c reads them.
func checksums(out string) error {
	var lines []string
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == filepath.Join(out, "checksums.txt") || path == filepath.Join(out, "checksums.txt.sig") {
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
