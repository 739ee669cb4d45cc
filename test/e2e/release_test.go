//go:build e2e

package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"keywarden.dev/keywarden/internal/release"
	"keywarden.dev/keywarden/test/harness"
)

// releaseVersion is the version the scenario releases.
const releaseVersion = "v0.0.0-e2e"

// releaseScenario runs hack/release as make release does, with a key made
// by cosign, against a registry served in-process, and checks what a
// platform team installs from: the image of both platforms, the SBOM
// beside it, the chart pulled by helm and rendered, the static manifests,
// the signatures as cosign verifies them, and the checksums.
func releaseScenario(e *env) {
	t := e.t
	helm, cosign, cyclonedx := os.Getenv("HELM"), os.Getenv("COSIGN"), os.Getenv("CYCLONEDX_GOMOD")
	if helm == "" || cosign == "" || cyclonedx == "" {
		t.Fatal("HELM, COSIGN and CYCLONEDX_GOMOD are not set: run make test-e2e")
	}
	dir := filepath.Join(e.dir, "release")
	out := filepath.Join(dir, "dist")
	// A fresh directory: E2E_DIR may hold an earlier run's.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	reg := host + "/keywarden"

	run := func(env []string, bin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = e.cluster.Root
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String(), &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: stderr.Bytes()}
		}
		return stdout.String() + stderr.String(), nil
	}
	must := func(env []string, bin string, args ...string) string {
		t.Helper()
		o, err := run(env, bin, args...)
		if err != nil {
			t.Fatalf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, err.(*exec.ExitError).Stderr)
		}
		return o
	}
	// The key as a release manager makes it.
	password := []string{"COSIGN_PASSWORD=e2e release"}
	must(password, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "release"))
	must(password, cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "other"))
	// The changelog as a release manager edits it: the Unreleased
	// section named for the version.
	changelog, err := os.ReadFile(filepath.Join(e.cluster.Root, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(changelog, []byte("## [Unreleased]")) {
		t.Fatal("CHANGELOG.md has no Unreleased section")
	}
	changelog = bytes.Replace(changelog, []byte("## [Unreleased]"), []byte("## ["+releaseVersion+"] - 2026-12-08"), 1)
	if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), changelog, 0o644); err != nil {
		t.Fatal(err)
	}
	// The public key as the project commits it (cosign.pub).
	args := func(publicKey string) []string {
		return []string{"run", "./hack/release", "-version", releaseVersion, "-changelog", filepath.Join(dir, "CHANGELOG.md"), "-registry", reg,
			"-signing-key", filepath.Join(dir, "release.key"), "-public-key", publicKey,
			"-helm", helm, "-cyclonedx-gomod", cyclonedx, "-kubectl", e.cluster.KubectlBin, "-out", out}
	}
	pub, other := filepath.Join(dir, "release.pub"), filepath.Join(dir, "other.pub")

	// A wrong password, or a key that is not the committed public key's
	// pair, stops the release before anything is pushed.
	for _, bad := range []struct {
		env  []string
		args []string
		says string
	}{
		{[]string{"COSIGN_PASSWORD=wrong"}, args(pub), "COSIGN_PASSWORD"},
		{password, args(other), "not this public key's pair"},
		{password, args(filepath.Join(dir, "none.pub")), "commit the signing key's public half"},
	} {
		if o, err := run(bad.env, "go", bad.args...); err == nil || !strings.Contains(string(err.(*exec.ExitError).Stderr), bad.says) {
			t.Fatalf("a release that cannot be signed as the project's (%s): %v\n%s", bad.says, err, o)
		}
	}
	if _, err := remote.Head(mustTag(t, reg+"/keywarden:"+releaseVersion)); err == nil {
		t.Fatal("a release that could not be signed pushed its image")
	}
	must(password, "go", args(pub)...)
	if _, err := os.Stat(filepath.Join(out, "cosign.pub")); err == nil {
		t.Error("the release ships a public key: users must verify with the committed one, not one beside the files")
	}

	// The image: both platforms, as the registry serves them.
	revision := strings.TrimSpace(must(nil, "git", "rev-parse", "HEAD"))
	ref := mustTag(t, reg+"/keywarden:"+releaseVersion)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := idx.Digest()
	pinned := ref.Context().Digest(digest.String())
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	platforms := map[string]bool{}
	for _, m := range im.Manifests {
		platforms[m.Platform.OS+"/"+m.Platform.Architecture] = true
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(cf.Config.Entrypoint, " ") != "/keywarden" || cf.Config.User != "65532:65532" {
			t.Errorf("%s: entrypoint %v, user %q", m.Platform, cf.Config.Entrypoint, cf.Config.User)
		}
		if cf.Config.Labels["org.opencontainers.image.version"] != releaseVersion || cf.Config.Labels["org.opencontainers.image.revision"] != revision {
			t.Errorf("%s: labels %v", m.Platform, cf.Config.Labels)
		}
		if m.Platform.Architecture == "amd64" {
			// The binary in the image is the components' and runs.
			bin := filepath.Join(dir, "keywarden-from-image")
			extractFile(t, img, "keywarden", bin)
			if o, _ := run(nil, bin, "--help"); !strings.Contains(o, "verifier") {
				t.Errorf("the image's /keywarden --help:\n%s", o)
			}
		}
	}
	if len(platforms) != 2 || !platforms["linux/amd64"] || !platforms["linux/arm64"] {
		t.Errorf("the image's platforms: %v", platforms)
	}

	// The SBOM: beside the image in dist/ and attached to it.
	sbom, err := os.ReadFile(filepath.Join(out, "keywarden.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name, Version string
		} `json:"components"`
	}
	if err := json.Unmarshal(sbom, &bom); err != nil || bom.BOMFormat != "CycloneDX" {
		t.Fatalf("keywarden.cdx.json: %v", err)
	}
	names := map[string]bool{}
	for _, c := range bom.Components {
		names[c.Name] = true
	}
	for _, want := range []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "std"} {
		if !names[want] {
			t.Errorf("the SBOM lists no %s", want)
		}
	}
	refs, err := remote.Referrers(pinned)
	if err != nil {
		t.Fatal(err)
	}
	rm, _ := refs.IndexManifest()
	attached := false
	var sbomRef name.Digest
	for _, r := range rm.Manifests {
		a, err := remote.Image(pinned.Context().Digest(r.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := a.Layers()
		for _, l := range layers {
			if mt, _ := l.MediaType(); mt == release.SBOMMediaType && bytes.Equal(layerBytes(t, l), sbom) {
				attached, sbomRef = true, pinned.Context().Digest(r.Digest.String())
			}
		}
	}
	if !attached {
		t.Errorf("no referrer of %s holds the SBOM (referrers: %d)", pinned, len(rm.Manifests))
	}

	// The chart: pulled from the registry by helm, it renders the image
	// by digest, and the API server takes what it renders.
	pull := filepath.Join(dir, "pulled")
	if err := os.MkdirAll(pull, 0o755); err != nil {
		t.Fatal(err)
	}
	helmEnv := []string{"HELM_CACHE_HOME=" + filepath.Join(dir, "helm-cache"), "HELM_CONFIG_HOME=" + filepath.Join(dir, "helm-config"), "HELM_DATA_HOME=" + filepath.Join(dir, "helm-data")}
	chartVersion := strings.TrimPrefix(releaseVersion, "v")
	pulled := must(helmEnv, helm, "pull", "oci://"+reg+"/charts/keywarden", "--version", chartVersion, "--plain-http", "--destination", pull)
	chartDigest := digestIn(t, pulled)
	kubeVersion, err := harness.KubeVersion()
	if err != nil {
		t.Fatal(err)
	}
	rendered := must(helmEnv, helm, "template", "keywarden", filepath.Join(pull, "keywarden-"+chartVersion+".tgz"), "--namespace", "keywarden-system", "--kube-version", kubeVersion, "--set", "console.enabled=true")
	want := reg + "/keywarden:" + releaseVersion + "@" + digest.String() // by tag and digest
	if n := strings.Count(rendered, want); n != 3 {
		t.Errorf("the pulled chart renders %q %d times, want 3 (controller, verifier, console)", want, n)
	}
	if o, err := e.kubectlIn(rendered, "apply", "--dry-run=server", "-f", "-"); err != nil {
		t.Errorf("the API server refuses the chart's rendering: %v\n%s", err, o)
	}

	// The static manifests: each names the image by digest, and the API
	// server takes each.
	files, _ := filepath.Glob(filepath.Join(out, "manifests", "*.yaml"))
	if len(files) != 5 {
		t.Errorf("static manifests: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Every variant but the add-on owner-binding runs the image.
		runs := filepath.Base(f) != "keywarden-owner-binding.yaml"
		if strings.Contains(string(b), want) != runs || strings.Contains(string(b), "keywarden:dev") {
			t.Errorf("%s does not name the released image by digest", filepath.Base(f))
		}
		if o, err := e.kubectlIn("", "apply", "--dry-run=server", "-f", f); err != nil {
			t.Errorf("the API server refuses %s: %v\n%s", filepath.Base(f), err, o)
		}
	}

	// The signatures, as cosign verifies them with the committed public
	// key and the release's version, and not with another key or as
	// another version (an older release re-tagged as this one).
	chartRef := pinned.Context().Registry.Repo("keywarden", "charts", "keywarden").Digest(chartDigest)
	for _, d := range []name.Digest{pinned, chartRef, sbomRef} {
		must(nil, cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "-a", "version="+releaseVersion, d.String())
		if _, err := run(nil, cosign, "verify", "--key", other, "--insecure-ignore-tlog=true", "--allow-http-registry", d.String()); err == nil {
			t.Errorf("%s verified with a key that did not sign it", d)
		}
		if _, err := run(nil, cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "-a", "version=v9.9.9", d.String()); err == nil {
			t.Errorf("%s verified as v9.9.9", d)
		}
	}
	sums := filepath.Join(out, "checksums.txt")
	must(nil, cosign, "verify-blob", "--key", pub, "--insecure-ignore-tlog=true", "--signature", sums+".sig", sums)
	// Attack: a tampered image index under the release's tag is not
	// what was signed.
	tampered := mutate.Annotations(idx, map[string]string{"org.opencontainers.image.version": "v9.9.9"}).(v1.ImageIndex)
	if err := remote.WriteIndex(ref, tampered); err != nil {
		t.Fatal(err)
	}
	if _, err := run(nil, cosign, "verify", "--key", pub, "--insecure-ignore-tlog=true", "--allow-http-registry", ref.String()); err == nil {
		t.Error("cosign verified a tampered index under the release's tag")
	}
	// Attack: a file changed after the release fails its checksum, and a
	// checksums.txt rewritten to match fails its signature.
	manifest := filepath.Join(out, "manifests", "keywarden.yaml")
	b, _ := os.ReadFile(manifest)
	if err := os.WriteFile(manifest, append(b, "# changed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if bad := checkSums(t, out); len(bad) != 1 || bad[0] != "manifests/keywarden.yaml" {
		t.Errorf("files failing their checksum after one was changed: %v", bad)
	}
	s, _ := os.ReadFile(sums)
	if err := os.WriteFile(sums, append(s, "0000  extra\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(nil, cosign, "verify-blob", "--key", pub, "--insecure-ignore-tlog=true", "--signature", sums+".sig", sums); err == nil {
		t.Error("cosign verified a changed checksums.txt")
	}
	e.note("release: refused with a wrong password or a key that is not the committed one's pair; the image for %d platforms and its SBOM (%d components) among its referrers, the chart pulled by helm and rendered, %d static manifests taken by the API server; image, chart and checksums.txt verified by cosign with the committed key and the version, not with another key nor as another version; a tampered index, file and checksums.txt refused",
		len(platforms), len(bom.Components), len(files))
}

func mustTag(t interface{ Fatal(...any) }, s string) name.Tag {
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// digestIn finds the digest helm pull prints.
func digestIn(t interface{ Fatalf(string, ...any) }, out string) string {
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "sha256:") {
			return f
		}
	}
	t.Fatalf("helm pull printed no digest:\n%s", out)
	return ""
}

func layerBytes(t interface{ Fatal(...any) }, l v1.Layer) []byte {
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// extractFile writes the image's file at path to dst.
func extractFile(t interface{ Fatal(...any) }, img v1.Image, path, dst string) {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal("no " + path + " in the image")
		}
		if strings.TrimPrefix(h.Name, "/") != path {
			continue
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
}

// checkSums reads checksums.txt as sha256sum -c does and returns the
// files that fail it.
func checkSums(t interface{ Fatal(...any) }, dir string) []string {
	f, err := os.Open(filepath.Join(dir, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var bad []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatal("checksums.txt: " + sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != sum {
			bad = append(bad, file)
		}
	}
	return bad
}
