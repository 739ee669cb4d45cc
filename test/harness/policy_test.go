package harness

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TestVerifierStatusPolicyHoldsEveryField: the admission policy that holds
// the verifier's status writes to lastUsedAt and revocations names every
// other field of the status, each held still. A field added to the status
// and forgotten here would be one a stolen verifier token could write.
func TestVerifierStatusPolicyHoldsEveryField(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "verifier_status_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	same := regexp.MustCompile(`has\(object\.status\.(\w+)\) == has\(oldObject\.status\.(\w+)\) &&\s+\(!has\(object\.status\.(\w+)\) \|\| object\.status\.(\w+) == oldObject\.status\.(\w+)\)`)
	for _, m := range same.FindAllStringSubmatch(string(b), -1) {
		if m[1] != m[2] || m[1] != m[3] || m[1] != m[4] || m[1] != m[5] {
			t.Errorf("a rule compares different fields: %s", m[0])
			continue
		}
		held[m[1]] = true
	}
	writable := []string{"lastUsedAt", "revocation"}
	st := reflect.TypeFor[keywardenv1alpha1.APIKeyStatus]()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		switch {
		case slices.Contains(writable, name):
			if held[name] {
				t.Errorf("the policy holds status.%s still: the verifier writes it", name)
			}
		case !held[name]:
			t.Errorf("the policy does not hold status.%s still: a stolen verifier token could write it", name)
		}
	}
	if len(held) < 10 {
		t.Fatalf("only %d fields held: the rules were not read", len(held))
	}
}
