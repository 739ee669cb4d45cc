package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/reconnect"
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
// Cached objects keep only what Keywarden reads (see TrimForCache).
func CacheOptions() cache.Options {
	return cache.Options{
		// After an outage, the informers list again within half a second
		// of the API server's return, not after the reflector's backoff
		// (up to 30 s): keys created meanwhile are issued at once.
		NewInformer: func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
			return toolscache.NewSharedIndexInformer(reconnect.Patient(lw, nil), obj, resync, indexers)
		},
		DefaultTransform: TrimForCache,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Label: labels.SelectorFromSet(labels.Set{
					keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue,
				}),
				Transform: TrimSecretForCache,
			},
		},
	}
}

// CacheOptionsFor are CacheOptions for a manager that watches only the
// given namespaces (all when none): namespaced objects are listed and
// watched in those namespaces alone.
func CacheOptionsFor(namespaces []string) cache.Options {
	o := CacheOptions()
	o.DefaultNamespaces = Namespaces(namespaces)
	return o
}

// Namespaces is a cache's DefaultNamespaces for the given namespaces: nil,
// every namespace, when there are none.
func Namespaces(namespaces []string) map[string]cache.Config {
	if len(namespaces) == 0 {
		return nil
	}
	m := make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		m[ns] = cache.Config{}
	}
	return m
}

// TrimForCache drops from an object what the controller never reads and
// what can be large: managed fields, the copy of the whole object that
// client-side kubectl apply keeps in an annotation, and, of an APIKey, all
// its labels, annotations and owner references (up to 256 KiB each, which
// any namespace editor may write, and which the controller never reads: the
// Secret's come from spec.secretTemplate, which the CRD bounds). Patches are
// computed between two copies that both lack them, so they never remove
// them. The strings that APIKeys repeat are shared between them.
func TrimForCache(in any) (any, error) {
	if k, ok := in.(*keywardenv1alpha1.APIKey); ok {
		k.SetLabels(nil)
		k.SetAnnotations(nil)
		k.SetOwnerReferences(nil)
		internAPIKey(k, cacheStrings)
	}
	if o, ok := in.(metav1.Object); ok {
		o.SetManagedFields(nil)
		if a := o.GetAnnotations(); a != nil {
			if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
				delete(a, corev1.LastAppliedConfigAnnotation)
				if len(a) == 0 {
					o.SetAnnotations(nil)
				}
			}
		}
	}
	return in, nil
}

// TrimSecretForCache keeps of a Secret only what the controller reads of
// it: its name, UID and controller reference when an APIKey is its
// controller. Labels and annotations, which a secretTemplate may make
// large, only select it on the server; finalizers and other owner
// references are anyone's to add to a Secret labelled as Keywarden's, in
// any number, and no business of Keywarden's.
func TrimSecretForCache(in any) (any, error) {
	if o, ok := in.(metav1.Object); ok {
		o.SetManagedFields(nil)
		o.SetLabels(nil)
		o.SetAnnotations(nil)
		o.SetFinalizers(nil)
		var kept []metav1.OwnerReference
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil && ref.Kind == keywardenv1alpha1.APIKeyKind &&
			ref.APIVersion == keywardenv1alpha1.GroupVersion.String() && len(ref.Name) <= 253 {
			kept = []metav1.OwnerReference{{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller}}
		}
		o.SetOwnerReferences(kept)
	}
	return in, nil
}

// The manager's defaults for how hard it drives the API server, which the
// benchmarks (make bench) measure.
const (
	// DefaultMaxConcurrentReconciles is how many APIKeys are reconciled at
	// once.
	DefaultMaxConcurrentReconciles = 16
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst bound the manager's
	// requests to the API server.
	DefaultKubeAPIQPS   = 500
	DefaultKubeAPIBurst = 1000
)
