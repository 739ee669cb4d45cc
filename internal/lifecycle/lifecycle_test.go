package lifecycle

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func TestSetConditions(t *testing.T) {
	type cond struct {
		status metav1.ConditionStatus
		reason string
	}
	absent := cond{}
	tests := []struct {
		name      string
		before    keywardenv1alpha1.APIKeyStatus
		outcome   Outcome
		phase     keywardenv1alpha1.APIKeyPhase
		observed  int64
		ready     cond
		reconcile cond
		stalled   cond
	}{
		{
			name:      "active",
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseActive},
			phase:     keywardenv1alpha1.PhaseActive,
			observed:  3,
			ready:     cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued},
			reconcile: absent, stalled: absent,
		},
		{
			name:      "progressing",
			outcome:   Outcome{Phase: keywardenv1alpha1.PhasePending, Progressing: true, Reason: keywardenv1alpha1.ReasonReissuing, Message: "m"},
			phase:     keywardenv1alpha1.PhasePending,
			observed:  3,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonReissuing},
			reconcile: cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonReissuing},
			stalled:   absent,
		},
		{
			name:      "stalled clears reconciling",
			before:    keywardenv1alpha1.APIKeyStatus{Conditions: []metav1.Condition{{Type: keywardenv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Issuing"}}},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhasePending, Stalled: true, Reason: keywardenv1alpha1.ReasonSecretConflict, Message: "m"},
			phase:     keywardenv1alpha1.PhasePending,
			observed:  3,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonSecretConflict},
			reconcile: absent,
			stalled:   cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonSecretConflict},
		},
		{
			name:      "active with a refused change: still ready, and stalled on the refusal",
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseActive, Refused: &Refusal{Reason: keywardenv1alpha1.ReasonRoleNotAllowed, Message: "m"}},
			phase:     keywardenv1alpha1.PhaseActive,
			observed:  3,
			ready:     cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued},
			reconcile: absent,
			stalled:   cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonRoleNotAllowed},
		},
		{
			name:      "active and granted no role: not ready, and stalled on the refusal",
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseActive, Refused: &Refusal{Reason: keywardenv1alpha1.ReasonRoleNotAllowed, Message: "m", Ungranted: true}},
			phase:     keywardenv1alpha1.PhaseActive,
			observed:  3,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonRoleNotAllowed},
			reconcile: absent,
			stalled:   cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonRoleNotAllowed},
		},
		{
			name:      "a refusal withdrawn clears stalled",
			before:    keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, Conditions: []metav1.Condition{{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "RoleNotAllowed"}}},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseActive},
			phase:     keywardenv1alpha1.PhaseActive,
			observed:  3,
			ready:     cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued},
			reconcile: absent, stalled: absent,
		},
		{
			name:      "expired: no longer what was declared, so stalled",
			before:    keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: 2},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseExpired, Stalled: true, Reason: keywardenv1alpha1.ReasonExpired, Message: "m"},
			phase:     keywardenv1alpha1.PhaseExpired,
			observed:  3,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonExpired},
			reconcile: absent,
			stalled:   cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonExpired},
		},
		{
			name:      "revoked as declared: nothing left to do, and no key to be ready",
			before:    keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, Conditions: []metav1.Condition{{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "KeyReported"}}},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseRevoked, Reason: keywardenv1alpha1.ReasonRevoked, Message: "m"},
			phase:     keywardenv1alpha1.PhaseRevoked,
			observed:  3,
			ready:     absent,
			reconcile: absent, stalled: absent,
		},
		{
			name:      "refused: waiting for a place, reconciling",
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseRefused, Progressing: true, Reason: keywardenv1alpha1.ReasonActiveKeyLimit, Message: "m"},
			phase:     keywardenv1alpha1.PhaseRefused,
			observed:  3,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonActiveKeyLimit},
			reconcile: cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonActiveKeyLimit},
			stalled:   absent,
		},
		{
			name:      "transient error keeps phase and observedGeneration",
			before:    keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: 2},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhaseRevoked, Err: errors.New("boom")},
			phase:     keywardenv1alpha1.PhaseActive,
			observed:  2,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonReconcileError},
			reconcile: cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonReconcileError},
			stalled:   absent,
		},
		{
			name: "a stalled key stays stalled through a transient error, not progressing for a pass",
			before: keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhasePending, ObservedGeneration: 2, Conditions: []metav1.Condition{
				{Type: keywardenv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "X", ObservedGeneration: 3},
				{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "X", ObservedGeneration: 3},
			}},
			outcome:   Outcome{Phase: keywardenv1alpha1.PhasePending, Err: errors.New("boom")},
			phase:     keywardenv1alpha1.PhasePending,
			observed:  2,
			ready:     cond{metav1.ConditionFalse, "X"},
			reconcile: absent,
			stalled:   cond{metav1.ConditionTrue, "X"},
		},
		{
			name:      "transient error on a new key makes it pending",
			outcome:   Outcome{Err: errors.New("boom")},
			phase:     keywardenv1alpha1.PhasePending,
			observed:  0,
			ready:     cond{metav1.ConditionFalse, keywardenv1alpha1.ReasonReconcileError},
			reconcile: cond{metav1.ConditionTrue, keywardenv1alpha1.ReasonReconcileError},
			stalled:   absent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.before
			SetConditions(&st, 3, tt.outcome)
			if st.Phase != tt.phase {
				t.Errorf("phase = %q, want %q", st.Phase, tt.phase)
			}
			if st.ObservedGeneration != tt.observed {
				t.Errorf("observedGeneration = %d, want %d", st.ObservedGeneration, tt.observed)
			}
			for typ, want := range map[string]cond{
				keywardenv1alpha1.ConditionReady:       tt.ready,
				keywardenv1alpha1.ConditionReconciling: tt.reconcile,
				keywardenv1alpha1.ConditionStalled:     tt.stalled,
			} {
				var got cond
				for _, c := range st.Conditions {
					if c.Type == typ {
						got = cond{c.Status, c.Reason}
						if c.ObservedGeneration != 3 {
							t.Errorf("%s observedGeneration = %d, want 3", typ, c.ObservedGeneration)
						}
					}
				}
				if got != want {
					t.Errorf("%s = %+v, want %+v", typ, got, want)
				}
			}
		})
	}
}
