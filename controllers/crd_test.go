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

func TestCheckAPIKeyCRD(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "keywarden.dev_apikeys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	current := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &current.Object); err != nil {
		t.Fatal(err)
	}
	// The CRD as the previous release installed it: no grant, no serial.
	previous := current.DeepCopy()
	versions, _, _ := unstructured.NestedSlice(previous.Object, "spec", "versions")
	v0 := versions[0].(map[string]any)
	for _, f := range []string{"owner", "role", "keySerial"} {
		unstructured.RemoveNestedField(v0, "schema", "openAPIV3Schema", "properties", "status", "properties", f)
	}
	versions[0] = v0
	if err := unstructured.SetNestedSlice(previous.Object, versions, "spec", "versions"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		crd     *unstructured.Unstructured
		wantErr string
	}{
		{"this release's CRD", current, ""},
		{"the previous release's CRD", previous, "lacks status.owner, status.role, status.keySerial"},
		{"no CRD", nil, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder()
			if tc.crd != nil {
				b = b.WithObjects(tc.crd)
			}
			err := CheckAPIKeyCRD(t.Context(), b.Build())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckAPIKeyCRD = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("CheckAPIKeyCRD = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}
