package verifier

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
)

// cacheOptions are the verifier's manager cache, which holds nothing: the
// index has its own watch of APIKeys (verify.Feed) and everything else is
// read from the API server. A read of the cache fails rather than start an
// informer that would hold every object of its kind.
func cacheOptions() cache.Options {
	return cache.Options{ReaderFailOnMissingInformer: true}
}

// TrimForVerifier keeps of an APIKey only what the verifier reads: its
// identity, its revocation and usage tracking, the grant a key issued
// before grants were recorded takes from its spec (owner, role, scopes,
// expiry; nothing of the spec's grant once the grant is recorded), and its
// status but the Secret's reference, of whose conditions only whether it
// fits its class. A list streamed from the API server holds one for every
// key until it ends (then the index keeps its entries alone), and all the
// rest is free text a namespace editor writes (labels and annotations of
// up to 256 KiB each, the display name, the description, the Secret's
// template) or messages: a tenant cannot make a verifier hold more than a
// few hundred bytes a key. What is kept is an allow-list: a field added to
// the API is left out until the verifier needs it.
func TrimForVerifier(in any) (any, error) {
	k, ok := in.(*keywardenv1alpha1.APIKey)
	if !ok {
		return in, nil
	}
	out := &keywardenv1alpha1.APIKey{
		TypeMeta: k.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace, Name: k.Name, UID: k.UID, ResourceVersion: k.ResourceVersion,
			Generation: k.Generation, DeletionTimestamp: k.DeletionTimestamp,
		},
		Spec:   keywardenv1alpha1.APIKeySpec{Revoked: k.Spec.Revoked, TrackLastUsed: k.Spec.TrackLastUsed},
		Status: k.Status,
	}
	if !k.GrantRecorded() {
		// Issued by a release that recorded no grant: the spec says what
		// the key may do until the controller records it.
		s := &out.Spec
		s.Owner, s.Role, s.Scopes, s.ExpiresAt, s.Lifetime = k.Spec.Owner, k.Spec.Role, k.Spec.Scopes, k.Spec.ExpiresAt, k.Spec.Lifetime
	}
	out.Status.SecretRef, out.Status.Conditions = nil, nil
	if c := apimeta.FindStatusCondition(k.Status.Conditions, keywardenv1alpha1.ConditionClassCompliant); c != nil {
		out.Status.Conditions = []metav1.Condition{{Type: c.Type, Status: c.Status}}
	}
	// Shares the strings keys repeat, of what is kept only.
	return controllers.TrimForCache(out)
}
