package controllers

import (
	"context"
	"fmt"
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

// ownerField indexes APIKeys by spec.owner, in the cache and (as a
// selectable field of the CRD) in the API server.
const ownerField = "spec.owner"

// reconcilePolicy resolves the key's class and, for a key not issued yet,
// enforces it: a key the class does not allow is Stalled with the rule's
// reason, and a key over its owner's active-key limit is Refused. For an
// issued key it only reports, in ClassCompliant, whether the key still fits.
func (r *APIKeyReconciler) reconcilePolicy(ctx context.Context, p *pass) (bool, error) {
	k := p.key
	var classes keywardenv1alpha1.APIKeyClassList
	if err := r.List(ctx, &classes); err != nil {
		return true, fmt.Errorf("listing APIKeyClasses: %w", err)
	}
	pol, v := policy.Resolve(k.Spec.ClassName, classes.Items)
	if v == nil {
		p.policy = pol
		k.Status.Scopes = pol.EffectiveScopes(&k.Spec)
	}

	if k.Status.KeyHash != "" {
		if v == nil {
			v = pol.Check(&k.Spec, k.Status.IssuedAt.Time)
		}
		setCompliance(k, v)
		return false, nil
	}
	if v == nil {
		v = pol.Check(&k.Spec, p.now)
	}
	if v != nil {
		if !hasCondition(k, keywardenv1alpha1.ConditionStalled, v.Reason) {
			p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventPolicyViolation, "Issue", v.Message)
		}
		p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhasePending, Stalled: true, Reason: v.Reason, Message: v.Message}
		return true, nil
	}
	return r.admit(ctx, p)
}

// admit applies the owner's active-key limit. It reads the owner's keys
// from the cache together with the keys this process admitted that the
// cache does not show issued yet, and reserves the key's place when it
// admits it, all under the owner's lock, so that concurrent passes never
// issue more keys than the limit; the lock is not held while the key is
// issued. A key refused only because of a place still being issued is
// decided again shortly, in case that issuance fails.
func (r *APIKeyReconciler) admit(ctx context.Context, p *pass) (bool, error) {
	k := p.key
	unlock := r.owners.lock(k.Namespace + "/" + k.Spec.Owner)
	defer unlock()
	admitted := r.admitted.snapshot()
	var peers keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &peers, client.InNamespace(k.Namespace), client.MatchingFields{ownerField: k.Spec.Owner}); err != nil {
		return true, fmt.Errorf("listing the keys of owner %s: %w", k.Spec.Owner, err)
	}
	limit := p.policy.MaxActiveKeysPerOwner
	ok, ahead, tentative := admitAmong(holder(k), peers.Items, admitted, limit)
	if !ok {
		msg := fmt.Sprintf("owner %s already holds %d active keys (limit %d); the key is issued once one of them expires, is revoked or is deleted", k.Spec.Owner, ahead, limit)
		if k.Status.Phase != keywardenv1alpha1.PhaseRefused {
			p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventKeyRefused, "Issue", msg)
		}
		p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseRefused, Stalled: true, Reason: keywardenv1alpha1.ReasonActiveKeyLimit, Message: msg}
		if tentative {
			p.requeueAfter = admissionRecheck
		}
		return true, nil
	}
	r.admitted.reserve(client.ObjectKeyFromObject(k), k.UID)
	return false, nil
}

// admissionRecheck is when a key refused while one of its owner's keys was
// still being issued is decided again.
const admissionRecheck = 2 * time.Second

// admitAmong applies the active-key limit to a key given its owner's keys
// (which may include the key itself; policy.Admit skips it) and the keys
// this process admitted, by UID (true while still being issued), which
// count as issued whatever the peers' status says. tentative reports that
// a refusal counted a key still being issued.
func admitAmong(self policy.Holder, peers []keywardenv1alpha1.APIKey, admitted map[types.UID]bool, limit int) (ok bool, ahead int, tentative bool) {
	others := make([]policy.Holder, 0, len(peers))
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
		Issued:  k.Status.KeyHash != "",
		Gone: !k.DeletionTimestamp.IsZero() || k.Spec.Revoked ||
			k.Status.Phase == keywardenv1alpha1.PhaseExpired || k.Status.Phase == keywardenv1alpha1.PhaseRevoked,
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
		c.Message = "The key was issued but no longer fits its class, which changed: " + v.Message
	}
	apimeta.SetStatusCondition(&k.Status.Conditions, c)
}

// keysOfClassChange enqueues every APIKey that is not terminal when a class
// changes: the change may resolve a stall, or change compliance.
func (r *APIKeyReconciler) keysOfClassChange(ctx context.Context, _ client.Object) []reconcile.Request {
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		switch list.Items[i].Status.Phase {
		case keywardenv1alpha1.PhaseExpired, keywardenv1alpha1.PhaseRevoked:
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// refusedPeers enqueues the refused keys of the changed key's owner: a key
// that expires, is revoked or goes makes room for them.
func (r *APIKeyReconciler) refusedPeers(ctx context.Context, obj client.Object) []reconcile.Request {
	k, ok := obj.(*keywardenv1alpha1.APIKey)
	if !ok {
		return nil
	}
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, client.InNamespace(k.Namespace), client.MatchingFields{ownerField: k.Spec.Owner}); err != nil {
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
