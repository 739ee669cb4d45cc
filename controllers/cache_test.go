package controllers

import (
	"context"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func TestTrimForCache(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	for _, tc := range []struct {
		name        string
		obj         metav1.Object
		annotations map[string]string // want
	}{
		// An APIKey's labels and annotations are its author's, up to 256 KiB
		// each, and the controller reads none of them.
		{"APIKey applied with kubectl", &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed, Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, "team": "payments",
		}, Labels: map[string]string{"team": "payments"}}}, nil},
		{"only the applied configuration", &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{"spec":{}}`,
		}}}, nil},
		{"class marked default", &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed, Annotations: map[string]string{
			keywardenv1alpha1.AnnotationDefaultClass: "true",
		}}}, map[string]string{keywardenv1alpha1.AnnotationDefaultClass: "true"}},
		{"Secret metadata", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := TrimForCache(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			o := out.(metav1.Object)
			if o.GetManagedFields() != nil {
				t.Error("managed fields kept")
			}
			if !maps.Equal(o.GetAnnotations(), tc.annotations) || (o.GetAnnotations() == nil) != (tc.annotations == nil) {
				t.Errorf("annotations %v, want %v", o.GetAnnotations(), tc.annotations)
			}
			if _, isKey := o.(*keywardenv1alpha1.APIKey); isKey && o.GetLabels() != nil {
				t.Errorf("an APIKey's labels kept: %v", o.GetLabels())
			}
		})
	}
	if out, err := TrimForCache("not an object"); err != nil || out != "not an object" {
		t.Errorf("a value that is not an object: %v, %v", out, err)
	}
}

func TestTrimSecretForCache(t *testing.T) {
	controller := true
	owner := metav1.OwnerReference{APIVersion: keywardenv1alpha1.GroupVersion.String(), Kind: keywardenv1alpha1.APIKeyKind, Name: "k", UID: "u", Controller: &controller}
	// Anyone who may update the Secret may add owner references and
	// finalizers: only an APIKey controller's reference is read.
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "padding", UID: "p"}
	in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "k", UID: "s", OwnerReferences: []metav1.OwnerReference{other, owner, other}, Finalizers: []string{"example.com/padding"},
		Labels:        map[string]string{keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue},
		Annotations:   map[string]string{"note": "x"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "keywarden"}},
	}}
	out, err := TrimSecretForCache(in)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	if m.Labels != nil || m.Annotations != nil || m.ManagedFields != nil || m.Finalizers != nil {
		t.Errorf("kept %v, %v, %v, %v", m.Labels, m.Annotations, m.ManagedFields, m.Finalizers)
	}
	// A controller reference that is not an APIKey's, however long, is not
	// kept.
	foreign := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: strings.Repeat("K", 100<<10), Name: "x", UID: "f", Controller: &controller}
	out, err = TrimSecretForCache(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "k", OwnerReferences: []metav1.OwnerReference{foreign}}})
	if err != nil {
		t.Fatal(err)
	}
	if refs := out.(*metav1.PartialObjectMetadata).OwnerReferences; len(refs) != 0 {
		t.Errorf("kept a foreign controller reference: %d", len(refs))
	}
	if m.Name != "k" || m.UID != "s" || len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != owner.UID || metav1.GetControllerOf(m) == nil {
		t.Errorf("lost what the controller reads: %+v", m.ObjectMeta)
	}
}

// TestKeyOfSecret: a Secret's event enqueues the APIKey that controls it,
// in the Secret's namespace, and nothing for a Secret no APIKey controls.
func TestKeyOfSecret(t *testing.T) {
	yes, no := true, false
	ref := func(apiVersion, kind, name string, controller *bool) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: "u", Controller: controller}
	}
	gv := keywardenv1alpha1.GroupVersion.String()
	tests := []struct {
		name string
		refs []metav1.OwnerReference
		want string
	}{
		{"controlled by an APIKey", []metav1.OwnerReference{ref(gv, "APIKey", "web", &yes)}, "team-a/web"},
		{"owned, not controlled", []metav1.OwnerReference{ref(gv, "APIKey", "web", &no)}, ""},
		{"no owner", nil, ""},
		{"controlled by another kind", []metav1.OwnerReference{ref(gv, "APIKeyClass", "web", &yes)}, ""},
		{"an APIKey of another group", []metav1.OwnerReference{ref("example.com/v1alpha1", "APIKey", "web", &yes)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-key", OwnerReferences: tt.refs}}
			var got string
			for _, r := range keyOfSecret(context.Background(), s) {
				got += r.String()
			}
			if got != tt.want {
				t.Errorf("enqueued %q, want %q", got, tt.want)
			}
		})
	}
}
