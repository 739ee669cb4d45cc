package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// NewScheme returns a scheme with the built-in types and Keywarden's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(keywardenv1alpha1.AddToScheme(s))
	return s
}

// CacheOptions are the manager's cache settings. Secrets are cached only
// when labelled app.kubernetes.io/managed-by=keywarden, and the controller
// watches them as metadata only, so the cluster's other Secrets cost the
// manager no memory; Secret data is read from the API server when needed.
// Managed fields are dropped from every cached object.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{
				keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue,
			})},
		},
	}
}
