package keys

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The scanning pattern finds every generated key wherever it is written,
// and nothing that only looks like one; a key with a wrong checksum is
// found (a regular expression cannot check it) and told apart by Check.
func TestScanPattern(t *testing.T) {
	prefixes := []string{"kw_", "pdm_", "kw_"}
	re := regexp.MustCompile(ScanPattern(prefixes))
	for _, prefix := range []string{"kw_", "pdm_"} {
		for range 200 {
			raw, err := Generate(prefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{
				raw,
				`{"key":"` + raw + `"}`,
				"export API_KEY=" + raw + "\n",
				"https://api.example.com/v1?key=" + raw + "&x=1",
				"Authorization: Bearer " + raw,
				"key: '" + raw + "' # staging",
			} {
				m := re.FindStringSubmatch(text)
				if m == nil || m[1] != raw {
					t.Fatalf("%s key not found in %q: %v", prefix, text, m)
				}
			}
			other, err := Generate(prefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, sep := range []string{",", " ", "\n", ";"} {
				if m := re.FindAllStringSubmatch(raw+sep+other, -1); len(m) != 2 || m[0][1] != raw || m[1][1] != other {
					t.Fatalf("two keys separated by %q: found %d", sep, len(m))
				}
			}
			// A wrong checksum: found, and refused by Check.
			last := raw[len(raw)-1]
			wrong := raw[:len(raw)-1] + string(alphabet[(strings.IndexByte(alphabet, last)+1)%len(alphabet)])
			if m := re.FindStringSubmatch(wrong); m == nil {
				t.Fatal("a key with a wrong checksum is not a candidate")
			}
			if Check([]byte(wrong)) == nil {
				t.Fatal("Check accepts a key with a wrong checksum")
			}
			for name, lookalike := range map[string]string{
				"another prefix":            "kx_" + raw[len(prefix):],
				"the prefix inside a word":  "x" + raw,
				"after an underscore":       "a_" + raw,
				"one character short":       raw[:len(raw)-1],
				"one character long":        raw + "A",
				"a character out of base62": raw[:10] + "-" + raw[11:],
				"the prefix in upper case":  strings.ToUpper(prefix) + raw[len(prefix):],
			} {
				if re.MatchString(lookalike) {
					t.Errorf("%s: %s matches", prefix, name)
				}
			}
		}
	}
}

// The committed gitleaks rule is the generator's for the default prefix,
// and, read as gitleaks reads its configuration, finds a key.
func TestCommittedGitleaksRule(t *testing.T) {
	b, err := os.ReadFile("../../docs/secret-scanning/gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != GitleaksConfig([]string{DefaultPrefix}) {
		t.Fatal("docs/secret-scanning/gitleaks.toml is not what hack/secretscan generates: run go run ./hack/secretscan -gitleaks kw_ > docs/secret-scanning/gitleaks.toml")
	}
	var cfg struct {
		Extend struct {
			UseDefault bool `toml:"useDefault"`
		} `toml:"extend"`
		Rules []struct {
			ID          string   `toml:"id"`
			Regex       string   `toml:"regex"`
			SecretGroup int      `toml:"secretGroup"`
			Keywords    []string `toml:"keywords"`
		} `toml:"rules"`
	}
	if _, err := toml.Decode(string(b), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Extend.UseDefault || len(cfg.Rules) != 1 || cfg.Rules[0].ID != "keywarden-api-key" || cfg.Rules[0].SecretGroup != 1 {
		t.Fatalf("configuration %+v", cfg)
	}
	raw, err := Generate(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(cfg.Rules[0].Regex).FindStringSubmatch("token=" + raw + ";")
	if m == nil || m[1] != raw || !strings.Contains(raw, cfg.Rules[0].Keywords[0]) {
		t.Fatal("the committed rule does not find a generated key")
	}
}
