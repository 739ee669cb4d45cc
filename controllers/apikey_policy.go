package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/policy"
)

// ownerIndex indexes the cached APIKeys by the owner whose active-key
// limit they count against: the granted owner of an issued key, the
// declared owner of a key not issued yet.
const ownerIndex = "keywarden.dev/owner"

// namespaceViolation reports whether the policy refuses keys of the
// namespace, reading the namespace's labels through c (the cache, or the
// API server with --namespaces) only when the policy selects namespaces.
func namespaceViolation(ctx context.Context, c client.Reader, pol policy.Policy, namespace string) (*policy.Violation, error) {
	if !pol.ChecksNamespace() {
		return nil, nil
	}
	ns := namespaceMetadata()
	if err := c.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return pol.CheckNamespace(namespace, ns.Labels), nil
}

// keyOfSecret enqueues the APIKey that controls a Secret. The cache keeps
// of a Secret only an APIKey's controller reference (TrimSecretForCache),
// so the reference is read as it is, without the REST mapping of its kind
// that a generic owner handler looks up for every event.
func keyOfSecret(_ context.Context, o client.Object) []reconcile.Request {
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil || ref.Kind != keywardenv1alpha1.APIKeyKind || ref.APIVersion != keywardenv1alpha1.GroupVersion.String() {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
}

// keysOfClassChange enqueues every APIKey that is not terminal when a class
// changes: the change may resolve a stall, or change compliance.
func (r *APIKeyReconciler) keysOfClassChange(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.liveKeys(ctx)
}

// liveKeys lists the APIKeys that are not terminal (expired or revoked),
// in the cache, as requests. The cache's objects are read without a copy
// (every key of the cluster, for a class's change): nothing here writes
// to them.
func (r *APIKeyReconciler) liveKeys(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if lifecycle.Terminal(list.Items[i].Status.Phase) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// keysOfNamespaceChange enqueues the APIKeys of a namespace whose labels
// changed, when some class selects namespaces: the change may admit a
// stalled key, or take a namespace out of an issued key's class.
func (r *APIKeyReconciler) keysOfNamespaceChange(ctx context.Context, obj client.Object) []reconcile.Request {
	var classes keywardenv1alpha1.APIKeyClassList
	if err := r.List(ctx, &classes, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	if !slices.ContainsFunc(classes.Items, func(c keywardenv1alpha1.APIKeyClass) bool { return c.Spec.NamespaceSelector != nil }) {
		return nil
	}
	return r.liveKeys(ctx, client.InNamespace(obj.GetName()))
}

// refusedPeers enqueues the refused keys of the changed key's owner: a key
// that expires, is revoked or goes makes room for them.
func (r *APIKeyReconciler) refusedPeers(ctx context.Context, obj client.Object) []reconcile.Request {
	k, ok := obj.(*keywardenv1alpha1.APIKey)
	if !ok {
		return nil
	}
	// In every namespace: under a class that counts across namespaces, a
	// key going in one makes room in the others, for keys of the same
	// class only (a key naming no class may be under the default one).
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, client.MatchingFields{ownerIndex: k.GrantedOwner()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	class := policy.ClassOf(k, "")
	var reqs []reconcile.Request
	for i := range list.Items {
		peer := &list.Items[i]
		if peer.Status.Phase != keywardenv1alpha1.PhaseRefused || peer.UID == k.UID {
			continue
		}
		if pc := policy.ClassOf(peer, ""); peer.Namespace != k.Namespace && pc != class && pc != "" && class != "" {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: peer.Namespace, Name: peer.Name}})
	}
	return reqs
}

// observe reads what a pass of the key decides from: the class policy
// (not for a key that ended or is revoked), and the Secret at its name,
// with its data where the decision needs it. The cache is read first; the
// API server too for a key whose Secret must not be taken for missing
// because the cache has not seen it (an issued key's, or one to delete on
// revocation). Before a key is issued only the cache is read: a Secret it
// has not seen yet makes the create fail, and the Secret is read from the
// API server then.
func (r *APIKeyReconciler) observe(ctx context.Context, key *keywardenv1alpha1.APIKey) (*lifecycle.Observed, error) {
	o := &lifecycle.Observed{
		Key: key, Now: r.Clock.Now(), NamespacesUnwatched: len(r.Namespaces) > 0,
		Owners: map[string]*lifecycle.OwnerKeys{},
	}
	if g := r.routine; g != nil {
		nn, now := client.ObjectKeyFromObject(key), o.Now
		o.Pace = func() (bool, time.Duration) { return g.admit(nn, now) }
	}
	st := &key.Status
	ended := lifecycle.Terminal(st.Phase) || lifecycle.Revoked(key)
	if !ended {
		var classes keywardenv1alpha1.APIKeyClassList
		if err := r.List(ctx, &classes); err != nil {
			return nil, fmt.Errorf("listing APIKeyClasses: %w", err)
		}
		o.DefaultClass = policy.DefaultClassName(classes.Items)
		if lifecycle.Issued(st) {
			o.Policy, o.Violation = policy.ResolveIssued(&key.Spec, policy.Granted(&key.Spec, st), classes.Items)
			o.GrantClass = policy.GrantClass(st, classes.Items)
		} else {
			o.Policy, o.Violation = policy.Resolve(key.Spec.ClassName, classes.Items)
		}
		if o.Violation == nil {
			// A class that does not admit the key's namespace is, for
			// this key, a class that does not resolve: nothing is issued
			// or granted under it.
			v, err := namespaceViolation(ctx, r.namespaceReader(), o.Policy, key.Namespace)
			if err != nil {
				return nil, err
			}
			o.Violation = v
		}
	}
	readers := []client.Reader{r.Client}
	if !lifecycle.Terminal(st.Phase) && (st.KeyHash != "" || lifecycle.Revoked(key)) {
		readers = append(readers, r.APIReader)
	}
	m, cached, err := r.secretMeta(ctx, key, readers...)
	if err != nil {
		return nil, err
	}
	if o.Secret, err = r.observeSecret(ctx, key, m, cached, !ended); err != nil {
		return nil, err
	}
	if rot := st.Rotation; !ended && rot != nil && rot.Next != nil {
		_, o.NextHeld = r.next.get(client.ObjectKeyFromObject(key), key.UID, rot.Next.KeyHash)
	} else {
		r.next.forget(client.ObjectKeyFromObject(key))
	}
	return o, nil
}

// observeSecret describes the Secret of the given metadata (nil when there
// is none). For a key that lives on, an owned Secret that is not the one
// status records, or has changed since, or is being rotated, is read
// through the API server (Secret data is never cached), and, before a key
// is recorded, its seal is checked.
func (r *APIKeyReconciler) observeSecret(ctx context.Context, key *keywardenv1alpha1.APIKey, m *metav1.PartialObjectMetadata, cached, live bool) (*lifecycle.Secret, error) {
	if m == nil {
		return nil, nil
	}
	st := &key.Status
	s := &lifecycle.Secret{Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion, Owned: ownedBy(m, key), Created: m.CreationTimestamp.Time}
	// The cache holds only labelled Secrets (and keeps none of their
	// labels): one read from the API server may have lost them.
	s.Unlabelled = !cached && s.Owned && !labelled(m, key)
	if !s.Owned && live {
		// Whether anything controls it, as the API server shows it (the
		// cache keeps only an APIKey's controller reference).
		if cached {
			full, _, err := r.secretMeta(ctx, key, r.APIReader)
			if err != nil {
				return nil, err
			}
			if full == nil || full.UID != m.UID {
				s.Read, s.Gone = true, true
				return s, nil
			}
			m = full
		}
		s.Controlled = metav1.GetControllerOfNoCopy(m) != nil
	}
	rotating := st.Rotation != nil && st.Rotation.Next != nil
	switch {
	case !live, !s.Owned && s.Controlled:
		// Another object's Secret: never read.
		return s, nil
	case s.Owned && st.KeyHash != "" && lifecycle.Recorded(st, s) && !rotating:
		return s, nil
	}
	sk, err := r.readKey(ctx, key, m.UID)
	switch {
	case apierrors.IsNotFound(err):
		s.Read, s.Gone = true, true
		return s, nil
	case err != nil:
		return nil, err
	}
	s.Read, s.Deleting, s.Hash, s.Prefix, s.Restored = true, sk.deleting, sk.hash, sk.prefix, sk.restored
	if st.KeyHash == "" && sk.hash != "" && !sk.deleting {
		if s.Sealed, err = r.Seals.Verify(ctx, key.UID, st.KeySerial, sk.hash, sk.seal); err != nil {
			return nil, fmt.Errorf("checking the seal of Secret %s: %w", m.Name, err)
		}
	}
	return s, nil
}

// observeOwner locks the owner's place under the active-key limit and
// reads its keys: the keys this process admitted (taken first, so that no
// key issued meanwhile is missed) and its keys from the cache, in the
// namespace or, for a class that counts across namespaces, the class's in
// every namespace. The caller unlocks once the decision's place is
// reserved.
func (r *APIKeyReconciler) observeOwner(ctx context.Context, o *lifecycle.Observed, owner string) (unlock func(), err error) {
	place := ownerPlace(o.Policy, o.Key.Namespace, owner)
	unlock = r.owners.lock(place)
	ok := &lifecycle.OwnerKeys{Admitted: r.admitted.snapshot(), Moved: r.admitted.movedTo(place)}
	var peers keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &peers, ownerKeysIn(o.Policy, o.Key.Namespace, owner)...); err != nil {
		unlock()
		return func() {}, fmt.Errorf("listing the keys of owner %s: %w", owner, err)
	}
	ok.Peers = peersUnder(o.Policy, o.DefaultClass, peers.Items)
	o.Owners[owner] = ok
	return unlock, nil
}

// ownerPlace names an owner's place under the limit, which one lock
// guards: the owner in the key's namespace, or, for a class that counts
// across namespaces, the owner under the class (a name no namespace can
// have).
func ownerPlace(p policy.Policy, namespace, owner string) string {
	if p.LimitAcrossNamespaces {
		return "class " + p.ClassName + "/" + owner
	}
	return namespace + "/" + owner
}

// ownerKeysIn selects the keys that count toward an owner's limit under
// p, before peersUnder filters them: the owner's in the namespace, or in
// every namespace watched.
func ownerKeysIn(p policy.Policy, namespace, owner string) []client.ListOption {
	opts := []client.ListOption{client.MatchingFields{ownerIndex: owner}}
	if !p.LimitAcrossNamespaces {
		opts = append(opts, client.InNamespace(namespace))
	}
	return opts
}

// peersUnder are the listed keys that count under p: all of them in a
// namespace, only the class's across namespaces.
func peersUnder(p policy.Policy, defaultClass string, keys []keywardenv1alpha1.APIKey) []keywardenv1alpha1.APIKey {
	if !p.LimitAcrossNamespaces {
		return keys
	}
	return slices.DeleteFunc(keys, func(k keywardenv1alpha1.APIKey) bool { return policy.ClassOf(&k, defaultClass) != p.ClassName })
}
