package controllers

import (
	"maps"
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
		{"APIKey applied with kubectl", &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{ManagedFields: managed, Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, "team": "payments",
		}}}, map[string]string{"team": "payments"}},
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
		})
	}
	if out, err := TrimForCache("not an object"); err != nil || out != "not an object" {
		t.Errorf("a value that is not an object: %v, %v", out, err)
	}
}

func TestTrimSecretForCache(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: keywardenv1alpha1.GroupVersion.String(), Kind: keywardenv1alpha1.APIKeyKind, Name: "k", UID: "u"}
	in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "k", UID: "s", OwnerReferences: []metav1.OwnerReference{owner},
		Labels:        map[string]string{keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue},
		Annotations:   map[string]string{"note": "x"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "keywarden"}},
	}}
	out, err := TrimSecretForCache(in)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	if m.Labels != nil || m.Annotations != nil || m.ManagedFields != nil {
		t.Errorf("kept %v, %v, %v", m.Labels, m.Annotations, m.ManagedFields)
	}
	if m.Name != "k" || m.UID != "s" || len(m.OwnerReferences) != 1 || m.OwnerReferences[0] != owner {
		t.Errorf("lost what the controller reads: %+v", m.ObjectMeta)
	}
}
