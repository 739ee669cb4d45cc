// Package lifecycle holds the pure rules of an APIKey's lifecycle: what a
// reconcile pass decides from what it observed (Decide), and the kstatus
// conditions that describe the outcome. Nothing here talks to the API
// server.
package lifecycle

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Outcome is what a reconcile pass concluded.
type Outcome struct {
	// Phase is the key's phase after the pass.
	Phase keywardenv1alpha1.APIKeyPhase
	// Reason and Message explain a phase other than Active, a stall or
	// progress.
	Reason  string
	Message string
	// Progressing is set while more work is scheduled (Reconciling=True).
	Progressing bool
	// Stalled is set when only a person can resolve the situation.
	Stalled bool
	// Refused, for an Active key, says why a change of its spec was
	// refused: the key stays Ready with its previous grant, and Stalled
	// reports the refusal, so that kubectl and GitOps tools show that the
	// declared state is not in effect.
	Refused *Refusal
	// Err is a transient error; the pass is retried with backoff.
	Err error
}

// Refusal is a refused change: a condition reason and a message.
type Refusal struct {
	Reason, Message string
	// Ungranted is set when the key is granted no role (issued before
	// grants were recorded, its spec asked for a role its class refuses):
	// it verifies no request, and is not Ready.
	Ungranted bool
}

// SetConditions writes the Ready, Reconciling and Stalled conditions and the
// observed generation that describe the outcome of a pass for an object of
// the given generation. observedGeneration moves only after a pass that
// completed or stalled, not after a transient error.
func SetConditions(status *keywardenv1alpha1.APIKeyStatus, generation int64, o Outcome) {
	set := func(typ string, s metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation,
		})
	}
	remove := func(typ string) { apimeta.RemoveStatusCondition(&status.Conditions, typ) }

	switch {
	case o.Err != nil && apimeta.IsStatusConditionTrue(status.Conditions, keywardenv1alpha1.ConditionStalled):
		// A stalled key stays stalled through a transient error: its
		// conditions are left as they are, so that kstatus, Flux and Argo
		// CD do not read it as progressing for one pass (and the stall is
		// not counted again). The pass is retried.
		return
	case o.Err != nil:
		reason := o.Reason
		if reason == "" {
			reason = keywardenv1alpha1.ReasonReconcileError
		}
		set(keywardenv1alpha1.ConditionReady, metav1.ConditionFalse, reason, o.Err.Error())
		set(keywardenv1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, "Retrying after an error: "+o.Err.Error())
		remove(keywardenv1alpha1.ConditionStalled)
		if status.Phase == "" {
			status.Phase = keywardenv1alpha1.PhasePending
		}
		return
	case o.Stalled:
		set(keywardenv1alpha1.ConditionReady, metav1.ConditionFalse, o.Reason, o.Message)
		set(keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue, o.Reason, o.Message)
		remove(keywardenv1alpha1.ConditionReconciling)
	case o.Progressing:
		set(keywardenv1alpha1.ConditionReady, metav1.ConditionFalse, o.Reason, o.Message)
		set(keywardenv1alpha1.ConditionReconciling, metav1.ConditionTrue, o.Reason, o.Message)
		remove(keywardenv1alpha1.ConditionStalled)
	case o.Phase == keywardenv1alpha1.PhaseActive:
		msg := o.Message
		if msg == "" {
			msg = "The key is issued and its Secret is in place"
		}
		remove(keywardenv1alpha1.ConditionReconciling)
		if r := o.Refused; r != nil && r.Ungranted {
			set(keywardenv1alpha1.ConditionReady, metav1.ConditionFalse, r.Reason,
				"The key is in its Secret but is granted no role, so it verifies no request, until its spec fits its class (see Stalled)")
			set(keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue, r.Reason, r.Message)
			break
		}
		if o.Refused != nil {
			set(keywardenv1alpha1.ConditionReady, metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued,
				msg+"; it keeps its previous grant, as a change of its spec was refused (see Stalled)")
			set(keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue, o.Refused.Reason, o.Refused.Message)
			break
		}
		set(keywardenv1alpha1.ConditionReady, metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued, msg)
		remove(keywardenv1alpha1.ConditionStalled)
	case o.Phase == keywardenv1alpha1.PhaseRevoked:
		// Revoked as the spec declares: the declared state is reached and
		// nothing more is to be done. Ready goes (it means a key in its
		// Secret, which a revoked key no longer has), and with neither
		// Reconciling nor Stalled, kstatus, Flux and Argo CD read the key
		// as current; the phase says which state it is.
		remove(keywardenv1alpha1.ConditionReady)
		remove(keywardenv1alpha1.ConditionReconciling)
		remove(keywardenv1alpha1.ConditionStalled)
	default:
		set(keywardenv1alpha1.ConditionReady, metav1.ConditionFalse, o.Reason, o.Message)
		remove(keywardenv1alpha1.ConditionReconciling)
		remove(keywardenv1alpha1.ConditionStalled)
	}
	status.Phase = o.Phase
	status.ObservedGeneration = generation
}
