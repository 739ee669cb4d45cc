package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The committed template renders into a manifest with what krew reads:
// one platform each, its archive's URI and checksum, and the binary.
func TestRender(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "plugins", "keywarden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := Manifest{Version: "v1.2.3", Homepage: "https://example.com/keywarden", Platforms: []Platform{
		{OS: "linux", Arch: "amd64", URI: "https://example.com/v1.2.3/kubectl-keywarden_linux_amd64.tar.gz", SHA256: strings.Repeat("a", 64), Bin: "kubectl-keywarden"},
		{OS: "windows", Arch: "amd64", URI: "https://example.com/v1.2.3/kubectl-keywarden_windows_amd64.tar.gz", SHA256: strings.Repeat("b", 64), Bin: "kubectl-keywarden.exe"},
	}}
	var b bytes.Buffer
	if err := Render(&b, string(tmpl), m); err != nil {
		t.Fatal(err)
	}
	var got struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct{ Name string }
		Spec       struct {
			Version, Homepage, ShortDescription, Description string
			Platforms                                        []struct {
				Selector         struct{ MatchLabels map[string]string } `json:"selector"`
				URI, SHA256, Bin string
				Files            []struct{ From, To string }
			}
		}
	}
	if err := yaml.UnmarshalStrict(b.Bytes(), &got); err != nil {
		t.Fatalf("the manifest is not the YAML krew reads: %v\n%s", err, b.String())
	}
	if got.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || got.Kind != "Plugin" || got.Metadata.Name != "keywarden" ||
		got.Spec.Version != "v1.2.3" || got.Spec.Homepage != m.Homepage || got.Spec.ShortDescription == "" || len(got.Spec.Platforms) != 2 {
		t.Fatalf("manifest:\n%s", b.String())
	}
	for i, p := range got.Spec.Platforms {
		want := m.Platforms[i]
		if p.Selector.MatchLabels["os"] != want.OS || p.Selector.MatchLabels["arch"] != want.Arch || p.URI != want.URI || p.SHA256 != want.SHA256 ||
			p.Bin != want.Bin || len(p.Files) != 1 || p.Files[0].From != want.Bin {
			t.Errorf("platform %d: %+v, want %+v", i, p, want)
		}
	}
	if strings.Contains(b.String(), "#") {
		t.Error("the template's comments reached the manifest")
	}
}

// A release archive holds the binary under the name the manifest gives,
// and the checksum is the archive's.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-keywarden")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.tar.gz")
	sum, err := archive(path, bin)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Hex(b); sum != want {
		t.Errorf("checksum %s, want the archive's %s", sum, want)
	}
	if err := run("1.0", dir, "https://example.com", "https://example.com"); err == nil || !strings.Contains(err.Error(), "semantic version") {
		t.Errorf("a version krew refuses: %v", err)
	}
	if err := run("v1.0.0", dir, "http://example.com", "https://example.com"); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Errorf("a release URL without TLS: %v", err)
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
