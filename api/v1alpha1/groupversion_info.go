// Package v1alpha1 contains the keywarden.dev/v1alpha1 API: APIKey, an API
// key declared as a Kubernetes resource, issued by the Keywarden controller
// into a Secret and verified by the Keywarden verifier.
//
// +kubebuilder:object:generate=true
// +groupName=keywarden.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "keywarden.dev", Version: "v1alpha1"}

	// SchemeBuilder registers these types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds these types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
