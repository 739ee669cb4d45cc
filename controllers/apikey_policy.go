package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
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

// ownerOf is the owner a key counts against: its granted owner once a
// grant is recorded, its declared owner before.
func ownerOf(k *keywardenv1alpha1.APIKey) string {
	if k.Status.Role != "" {
		return k.Status.Owner
	}
	return k.Spec.Owner
}

// issued reports whether a key was issued: it holds a key, or held one and
// is being reissued. An issued key keeps its grant and its place under its
// owner's limit until it expires, is revoked or is deleted.
func issued(st *keywardenv1alpha1.APIKeyStatus) bool {
	return st.KeyHash != "" || st.IssuedAt != nil
}

// reconcileClass resolves the policy that applies to the key: for a key not
// issued yet, the class its spec names or the default class; for an issued
// key, the class its spec names or the one it was issued under.
func (r *APIKeyReconciler) reconcileClass(ctx context.Context, p *pass) (bool, error) {
	var classes keywardenv1alpha1.APIKeyClassList
	if err := r.List(ctx, &classes); err != nil {
		return true, fmt.Errorf("listing APIKeyClasses: %w", err)
	}
	k := p.key
	if issued(&k.Status) {
		p.policy, p.violation = policy.ResolveIssued(&k.Spec, policy.Granted(&k.Spec, &k.Status), classes.Items)
	} else {
		p.policy, p.violation = policy.Resolve(k.Spec.ClassName, classes.Items)
	}
	if p.violation == nil {
		// A class that does not admit the key's namespace is, for this
		// key, a class that does not resolve: nothing is issued or
		// granted under it.
		v, err := namespaceViolation(ctx, r.namespaceReader(), p.policy, k.Namespace)
		if err != nil {
			return true, err
		}
		p.violation = v
		if v != nil && len(r.Namespaces) > 0 {
			// No watch of the namespace's labels: look again.
			p.requeue(limitRecheck)
		}
	}
	return false, nil
}

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

// reconcileGrant decides, for an issued key (also while it is reissued),
// whether its grant (recorded in status, the only thing the verifier
// reads) follows a change of its spec: each part the class and the owner's
// limit allow is granted (event GrantChanged), each other part keeps its
// granted value and is reported in Stalled while the key stays Ready. It
// also records whether the grant still fits its class (ClassCompliant). A
// key issued before grants were recorded gets the grant its spec gave it
// then, with no new key.
func (r *APIKeyReconciler) reconcileGrant(ctx context.Context, p *pass) (bool, error) {
	k := p.key
	st := &k.Status
	if !issued(st) {
		return false, nil
	}
	if st.IssuedAt == nil {
		// A hash without an issuance time (a status restored by hand):
		// count the key's lifetime from now.
		st.IssuedAt = p.stamp()
	}
	granted := policy.Granted(&k.Spec, st)
	var roomErr error
	d := policy.Decide(granted, &k.Spec, p.policy, p.violation, st.IssuedAt.Time, func(owner string) *policy.Violation {
		v, err := r.roomFor(ctx, p, owner)
		if err != nil {
			roomErr = err
		}
		return v
	})
	if roomErr != nil {
		return true, roomErr
	}
	d.Grant.Record(st)
	if len(d.Changes) > 0 {
		p.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventGrantChanged, "Grant",
			"The key's grant changed: "+strings.Join(d.Changes, ", "))
	}
	if v := d.Refused; v != nil {
		p.refused = &lifecycle.Refusal{Reason: v.Reason, Message: v.Message}
		if d.Refuses(keywardenv1alpha1.ReasonActiveKeyLimit) {
			// Room under the new owner's limit sends no event to this
			// key (it counts against its granted owner): look again.
			p.requeue(limitRecheck)
		}
		if c := apimeta.FindStatusCondition(st.Conditions, keywardenv1alpha1.ConditionStalled); c == nil || c.Message != v.Message {
			p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventGrantChangeRefused, "Grant",
				"A change of the key's spec was refused and the key keeps its grant: "+v.Message)
		}
	}
	v := p.violation
	if v == nil {
		if v = p.policy.CheckAccess(d.Grant.Role, d.Grant.Scopes); v == nil {
			v = p.policy.CheckExpiry(d.Grant.ExpiresAt, st.IssuedAt.Time)
		}
	}
	setCompliance(k, v)
	return false, nil
}

// reconcilePolicy enforces, for a key never issued, its class: a key the
// class does not allow is Stalled with the rule's reason, and a key over
// its owner's active-key limit is Refused. An issued key, even one being
// reissued, keeps its grant and its place (reconcileGrant).
func (r *APIKeyReconciler) reconcilePolicy(ctx context.Context, p *pass) (bool, error) {
	k := p.key
	if issued(&k.Status) {
		if k.Status.KeyHash == "" && p.violation != nil {
			// Being reissued, but its class is gone or ambiguous: no
			// policy to issue under (the key's prefix is the class's).
			r.stallOnPolicy(p, p.violation)
			return true, nil
		}
		return false, nil
	}
	v := p.violation
	if v == nil {
		v = p.policy.Check(&k.Spec, p.now)
	}
	if v != nil {
		r.stallOnPolicy(p, v)
		return true, nil
	}
	return r.admit(ctx, p)
}

// stallOnPolicy reports a key its class does not let be issued.
func (r *APIKeyReconciler) stallOnPolicy(p *pass, v *policy.Violation) {
	if !hasCondition(p.key, keywardenv1alpha1.ConditionStalled, v.Reason) {
		p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventPolicyViolation, "Issue", v.Message)
	}
	p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhasePending, Stalled: true, Reason: v.Reason, Message: v.Message}
}

// admit applies the owner's active-key limit to a key not issued yet, and
// reserves its place when it admits it (see place). A key refused only
// because of a place still being issued is decided again shortly, in case
// that issuance fails.
func (r *APIKeyReconciler) admit(ctx context.Context, p *pass) (bool, error) {
	k := p.key
	nn := client.ObjectKeyFromObject(k)
	ok, ahead, tentative, err := r.place(ctx, p, k.Spec.Owner, func(string) { r.admitted.reserve(nn, k.UID) })
	if err != nil {
		return true, err
	}
	if !ok {
		v := policy.LimitViolation(k.Spec.Owner, k.Namespace, ahead, p.policy.MaxActiveKeysPerOwner)
		if k.Status.Phase != keywardenv1alpha1.PhaseRefused {
			p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventKeyRefused, "Issue", v.Message)
		}
		p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseRefused, Stalled: true, Reason: v.Reason, Message: v.Message}
		if tentative {
			p.requeue(admissionRecheck)
		}
		return true, nil
	}
	return false, nil
}

// roomFor decides, like admit, whether an issued key may be reassigned to
// the owner, and reserves its place under that owner when it may.
func (r *APIKeyReconciler) roomFor(ctx context.Context, p *pass, owner string) (*policy.Violation, error) {
	k := p.key
	nn := client.ObjectKeyFromObject(k)
	ok, ahead, _, err := r.place(ctx, p, owner, func(ownerKey string) { r.admitted.reserveMove(nn, k.UID, ownerKey) })
	if err != nil || ok {
		return nil, err
	}
	return policy.LimitViolation(owner, k.Namespace, ahead, p.policy.MaxActiveKeysPerOwner), nil
}

// place decides whether the key has a place among the owner's active keys
// under the pass's policy, and takes it (take, given namespace/owner) when
// it has. It reads the owner's keys from the cache together with the keys
// this process admitted that the cache does not show issued yet, all under
// the owner's lock, so that concurrent passes never give an owner more keys
// than the limit; the lock is not held while the key is issued.
func (r *APIKeyReconciler) place(ctx context.Context, p *pass, owner string, take func(ownerKey string)) (ok bool, ahead int, tentative bool, err error) {
	k := p.key
	ownerKey := k.Namespace + "/" + owner
	unlock := r.owners.lock(ownerKey)
	defer unlock()
	admitted, moved := r.admitted.snapshot(), r.admitted.movedTo(ownerKey)
	var peers keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &peers, client.InNamespace(k.Namespace), client.MatchingFields{ownerIndex: owner}); err != nil {
		return false, 0, false, fmt.Errorf("listing the keys of owner %s: %w", owner, err)
	}
	ok, ahead, tentative = admitAmong(holder(k), peers.Items, admitted, moved, p.policy.MaxActiveKeysPerOwner)
	if ok {
		take(ownerKey)
	}
	return ok, ahead, tentative, nil
}

// limitRecheck is when an issued key whose reassignment the new owner's
// limit refused is decided again.
const limitRecheck = time.Minute

// admissionRecheck is when a key refused while one of its owner's keys was
// still being issued is decided again.
const admissionRecheck = 2 * time.Second

// admitAmong applies the active-key limit to a key given its owner's keys
// (which may include the key itself; policy.Admit skips it), the keys
// this process admitted, by UID (true while still being issued), which
// count as issued whatever the peers' status says, and the issued keys
// this process reassigned to the owner, which the peers may not list yet.
// tentative reports that a refusal counted a key still being issued.
func admitAmong(self policy.Holder, peers []keywardenv1alpha1.APIKey, admitted map[types.UID]bool, moved []types.UID, limit int) (ok bool, ahead int, tentative bool) {
	others := make([]policy.Holder, 0, len(peers)+len(moved))
	listed := make(map[types.UID]bool, len(peers))
	for i := range peers {
		listed[peers[i].UID] = true
	}
	for _, uid := range moved {
		// Reassigned to this owner, listed under the previous one.
		if !listed[uid] && uid != self.UID {
			others = append(others, policy.Holder{UID: uid, Issued: true})
			tentative = tentative || admitted[uid]
		}
	}
	for i := range peers {
		h := holder(&peers[i])
		being, in := admitted[h.UID]
		if in && !h.Issued && !h.Gone && h.UID != self.UID {
			tentative = tentative || being
		}
		h.Issued = h.Issued || in
		others = append(others, h)
	}
	ok, ahead = policy.Admit(self, others, limit)
	return ok, ahead, tentative && !ok
}

// holder is what the active-key limit needs of a key.
func holder(k *keywardenv1alpha1.APIKey) policy.Holder {
	return policy.Holder{
		UID:     k.UID,
		Created: k.CreationTimestamp.Time,
		Issued:  issued(&k.Status),
		Gone:    lifecycle.Ending(k),
	}
}

// setCompliance records whether an issued key still fits its class.
func setCompliance(k *keywardenv1alpha1.APIKey, v *policy.Violation) {
	c := metav1.Condition{
		Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionTrue, ObservedGeneration: k.Generation,
		Reason: keywardenv1alpha1.ReasonCompliant, Message: "The key fits its class",
	}
	if v != nil {
		c.Status, c.Reason = metav1.ConditionFalse, v.Reason
		c.Message = "The key was issued but no longer fits its class: " + v.Message
	}
	apimeta.SetStatusCondition(&k.Status.Conditions, c)
}

// keysOfClassChange enqueues every APIKey that is not terminal when a class
// changes: the change may resolve a stall, or change compliance.
func (r *APIKeyReconciler) keysOfClassChange(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.liveKeys(ctx)
}

// liveKeys lists the APIKeys that are not terminal (expired or revoked),
// in the cache, as requests.
func (r *APIKeyReconciler) liveKeys(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, opts...); err != nil {
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
	if err := r.List(ctx, &classes); err != nil {
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
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, client.InNamespace(k.Namespace), client.MatchingFields{ownerIndex: ownerOf(k)}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if peer := &list.Items[i]; peer.Status.Phase == keywardenv1alpha1.PhaseRefused && peer.UID != k.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: peer.Namespace, Name: peer.Name}})
		}
	}
	return reqs
}
