package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestSetImageValues(t *testing.T) {
	values := `# The image.
image:
  repository: keywarden
  tag: dev # quote a numeric tag
  digest: ""
  pullPolicy: IfNotPresent

controller:
  image:
    repository: elsewhere
`
	got, err := SetImageValues([]byte(values), "ghcr.io/example/keywarden", "1.0", "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	want := `# The image.
image:
  repository: "ghcr.io/example/keywarden"
  tag: "1.0"
  digest: "sha256:abc"
  pullPolicy: IfNotPresent

controller:
  image:
    repository: elsewhere
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for name, bad := range map[string]string{
		"no digest":   "image:\n  repository: a\n  tag: b\n",
		"twice":       "image:\n  repository: a\n  tag: b\n  digest: c\n  tag: d\n",
		"only nested": "controller:\n  image:\n    repository: a\n    tag: b\n    digest: c\n",
	} {
		if _, err := SetImageValues([]byte(bad), "r", "t", "d"); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}

// packaged is a chart as helm package writes it.
func packaged(t *testing.T, chartYAML string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{"keywarden/Chart.yaml": chartYAML, "keywarden/values.yaml": "image: {}\n", "keywarden/charts/sub/Chart.yaml": "name: sub\nversion: 9.9.9\n"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPushChart(t *testing.T) {
	host := testRegistry(t)
	tgz := packaged(t, "apiVersion: v2\nname: keywarden\nversion: 1.2.0\nappVersion: v1.2.0\ndescription: API keys\n")
	repo, _ := name.NewRepository(host + "/charts/keywarden")
	d, err := PushChart(repo, tgz, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	// The tag is the chart's version, and names what was pushed.
	desc, err := remote.Head(repo.Tag("1.2.0"))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != d.DigestStr() {
		t.Errorf("the tag names %s, the push returned %s", desc.Digest, d.DigestStr())
	}
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != ChartConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != ChartContentMediaType {
		t.Fatalf("the manifest is not a Helm chart's: %+v", m)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(config), `"appVersion":"v1.2.0"`) || !strings.Contains(string(config), `"name":"keywarden"`) {
		t.Errorf("the config: %s", config)
	}
	layer, err := img.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := layer.Compressed()
	var got bytes.Buffer
	_, _ = got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), tgz) {
		t.Error("the layer is not the packaged chart")
	}

	// A repository that does not end in the chart's name is one Helm
	// cannot pull from.
	wrong, _ := name.NewRepository(host + "/charts/other")
	if _, err := PushChart(wrong, tgz, time.Now()); err == nil {
		t.Error("a chart pushed under another name")
	}
	if _, err := PushChart(repo, packaged(t, "name: keywarden\n"), time.Now()); err == nil {
		t.Error("a chart without a version pushed")
	}
}

func TestAttachSBOM(t *testing.T) {
	host := testRegistry(t)
	subject := pushRandom(t, host+"/keywarden/keywarden:v1.0.0")
	sbom := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`)
	d, err := AttachSBOM(subject, sbom, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(subject)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != d.DigestStr() {
		t.Fatalf("the image's referrers: %+v", im.Manifests)
	}
	img, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	// The artifact type is the manifest's (the in-process registry lists
	// the config's media type instead, as OCI's spec did before 1.1).
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"artifactType":"application/vnd.cyclonedx+json"`) || !strings.Contains(string(raw), `"subject":{"mediaType"`) {
		t.Errorf("the SBOM's manifest: %s", raw)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v %v", layers, err)
	}
	rc, _ := layers[0].Uncompressed()
	var got bytes.Buffer
	_, _ = got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), sbom) {
		t.Errorf("the SBOM read back: %s", got.Bytes())
	}
}
