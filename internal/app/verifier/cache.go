package verifier

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
)

// cacheOptions are the verifier's cache: APIKeys only, in the given
// namespaces (all when none), each trimmed to what verification reads.
func cacheOptions(namespaces []string) cache.Options {
	return cache.Options{DefaultTransform: TrimForVerifier, DefaultNamespaces: controllers.Namespaces(namespaces)}
}

// TrimForVerifier keeps of an APIKey only what the verifier reads: its
// identity, the grant a key issued before grants were recorded takes from
// its spec (owner, role, scopes, expiry) with its revocation and usage
// tracking, and its status, of whose conditions only whether it fits its
// class. Every replica holds one for every key, and all the rest is free
// text a namespace editor writes (labels and annotations of up to 256 KiB
// each, the display name, the description, the Secret's template) or
// messages: a tenant cannot make a verifier hold more than a few hundred
// bytes a key. What is kept is an allow-list: a field added to the API is
// left out until the verifier needs it.
func TrimForVerifier(in any) (any, error) {
	trimmed, err := controllers.TrimForCache(in) // shares the strings keys repeat
	if err != nil {
		return nil, err
	}
	k, ok := trimmed.(*keywardenv1alpha1.APIKey)
	if !ok {
		return trimmed, nil
	}
	out := &keywardenv1alpha1.APIKey{
		TypeMeta: k.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace, Name: k.Name, UID: k.UID, ResourceVersion: k.ResourceVersion,
			Generation: k.Generation, DeletionTimestamp: k.DeletionTimestamp,
		},
		Spec: keywardenv1alpha1.APIKeySpec{
			Owner: k.Spec.Owner, Role: k.Spec.Role, Scopes: k.Spec.Scopes, ExpiresAt: k.Spec.ExpiresAt, Lifetime: k.Spec.Lifetime,
			Revoked: k.Spec.Revoked, TrackLastUsed: k.Spec.TrackLastUsed,
		},
		Status: k.Status,
	}
	out.Status.Conditions = nil
	if c := apimeta.FindStatusCondition(k.Status.Conditions, keywardenv1alpha1.ConditionClassCompliant); c != nil {
		out.Status.Conditions = []metav1.Condition{{Type: c.Type, Status: c.Status}}
	}
	return out, nil
}
