package controllers

import (
	"strings"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// clone returns a copy of s in memory of its own, as a decoder would.
func clone(s string) string { return strings.Clone(s) }

func TestInterner(t *testing.T) {
	in := newInterner(2, 5)
	a1, a2 := clone("alpha"), clone("alpha")
	long := clone("longer than five")
	for _, tc := range []struct {
		name string
		give string
		same string // the string it must return, by identity
	}{
		{"first sight keeps it", a1, a1},
		{"a copy gets the first", a2, a1},
		{"too long: returned as is", long, long},
		{"second string kept", clone("beta"), ""},
		{"full: a new one returned as is", clone("gamma"), ""},
	} {
		got := in.intern(tc.give)
		if got != tc.give {
			t.Fatalf("%s: intern changed the value %q to %q", tc.name, tc.give, got)
		}
		if want := tc.same; want == "" {
			want = tc.give
			if !sameString(got, want) {
				t.Errorf("%s: not the string given", tc.name)
			}
		} else if !sameString(got, want) {
			t.Errorf("%s: not the shared copy", tc.name)
		}
	}
	if len(in.m) != 2 {
		t.Errorf("holds %d strings, want at most 2", len(in.m))
	}
}

func TestInternAPIKeyKeepsValues(t *testing.T) {
	newKey := func() *keywardenv1alpha1.APIKey {
		k := &keywardenv1alpha1.APIKey{
			TypeMeta:   metav1.TypeMeta{APIVersion: clone("keywarden.dev/v1alpha1"), Kind: clone("APIKey")},
			ObjectMeta: metav1.ObjectMeta{Namespace: clone("team-a"), Name: clone("k"), Finalizers: []string{clone(keywardenv1alpha1.Finalizer)}},
			Spec:       keywardenv1alpha1.APIKeySpec{Owner: clone("o"), Role: clone("reader"), Scopes: []keywardenv1alpha1.Scope{"logs:read"}},
			Status: keywardenv1alpha1.APIKeyStatus{
				Phase: keywardenv1alpha1.PhaseActive, Scopes: []keywardenv1alpha1.Scope{"logs:read"},
				SecretRef:  &keywardenv1alpha1.SecretReference{Name: clone("k"), UID: "u"},
				Conditions: []metav1.Condition{{Type: clone("Ready"), Status: metav1.ConditionTrue, Reason: clone("KeyIssued"), Message: clone("The key is issued")}},
			},
		}
		return k
	}
	in := newInterner(100, 256)
	first, second := newKey(), newKey()
	internAPIKey(first, in)
	internAPIKey(second, in)
	if !equality.Semantic.DeepEqual(second, newKey()) {
		t.Fatal("interning changed the object's values")
	}
	for name, pair := range map[string][2]string{
		"namespace":         {first.Namespace, second.Namespace},
		"finalizer":         {first.Finalizers[0], second.Finalizers[0]},
		"role":              {first.Spec.Role, second.Spec.Role},
		"condition message": {first.Status.Conditions[0].Message, second.Status.Conditions[0].Message},
	} {
		if !sameString(pair[0], pair[1]) {
			t.Errorf("%s is not shared between the two keys", name)
		}
	}
	if !sameString(second.Status.SecretRef.Name, second.Name) {
		t.Error("the Secret's name is not the key's own name string")
	}
}
