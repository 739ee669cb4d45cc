// Package v1alpha1 contains the keywarden.dev/v1alpha1 API: APIKey, an API
// key declared as a Kubernetes resource, issued by the Keywarden controller
// into a Secret and verified by the Keywarden verifier.
//
// +kubebuilder:object:generate=true
// +groupName=keywarden.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "keywarden.dev", Version: "v1alpha1"}

	// SchemeBuilder registers these types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds these types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &APIKey{}, &APIKeyList{}, &APIKeyClass{}, &APIKeyClassList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
