package controllers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"
)

// crdFile reads a CRD of config/crd as this release generates it.
func crdFile(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &crd.Object); err != nil {
		t.Fatal(err)
	}
	return crd
}

// without is the CRD without the fields under the path of its first
// version's schema, as an older release installed it.
func without(t *testing.T, crd *unstructured.Unstructured, under string, fields ...string) *unstructured.Unstructured {
	t.Helper()
	old := crd.DeepCopy()
	versions, _, _ := unstructured.NestedSlice(old.Object, "spec", "versions")
	v0 := versions[0].(map[string]any)
	for _, f := range fields {
		unstructured.RemoveNestedField(v0, "schema", "openAPIV3Schema", "properties", under, "properties", f)
	}
	versions[0] = v0
	if err := unstructured.SetNestedSlice(old.Object, versions, "spec", "versions"); err != nil {
		t.Fatal(err)
	}
	return old
}

func TestCheckCRDs(t *testing.T) {
	keys, classes := crdFile(t, "keywarden.dev_apikeys.yaml"), crdFile(t, "keywarden.dev_apikeyclasses.yaml")
	for _, tc := range []struct {
		name    string
		crds    []*unstructured.Unstructured
		wantErr string
	}{
		{"this release's CRDs", []*unstructured.Unstructured{keys, classes}, ""},
		{"an APIKey CRD before grants and serials", []*unstructured.Unstructured{without(t, keys, "status", "owner", "role", "keySerial"), classes},
			"apikeys.keywarden.dev is older than this manager (it lacks status.owner, status.role, status.keySerial)"},
		{"an APIKeyClass CRD before namespace selectors", []*unstructured.Unstructured{keys, without(t, classes, "spec", "namespaceSelector")},
			"apikeyclasses.keywarden.dev is older than this manager (it lacks spec.namespaceSelector)"},
		{"no APIKey CRD", []*unstructured.Unstructured{classes}, "not found"},
		{"no APIKeyClass CRD", []*unstructured.Unstructured{keys}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder()
			for _, crd := range tc.crds {
				b = b.WithObjects(crd)
			}
			err := CheckCRDs(t.Context(), b.Build())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckCRDs = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CheckCRDs = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}
