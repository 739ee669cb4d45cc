package lifecycle

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TestStanding: every phase, with and without a revocation asked in the
// spec and a deletion under way, is terminal, ending and standing as the
// controller and the verifier must both read it.
func TestStanding(t *testing.T) {
	deleting := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	type want struct {
		terminal, ending bool
		standing         Standing
	}
	tests := []struct {
		phase    keywardenv1alpha1.APIKeyPhase
		revoked  bool
		deleting bool
		want     want
	}{
		{"", false, false, want{false, false, StandingNotActive}},
		{keywardenv1alpha1.PhasePending, false, false, want{false, false, StandingNotActive}},
		{keywardenv1alpha1.PhaseRefused, false, false, want{false, false, StandingNotActive}},
		{keywardenv1alpha1.PhaseActive, false, false, want{false, false, StandingActive}},
		{keywardenv1alpha1.PhaseExpired, false, false, want{true, true, StandingExpired}},
		{keywardenv1alpha1.PhaseRevoked, false, false, want{true, true, StandingRevoked}},
		// Revocation asked for, not yet recorded: revoked at once.
		{keywardenv1alpha1.PhaseActive, true, false, want{false, true, StandingRevoked}},
		{keywardenv1alpha1.PhasePending, true, false, want{false, true, StandingRevoked}},
		{keywardenv1alpha1.PhaseExpired, true, false, want{true, true, StandingRevoked}},
		// Being deleted: no longer verifies, holds no place.
		{keywardenv1alpha1.PhaseActive, false, true, want{false, true, StandingNotActive}},
		{keywardenv1alpha1.PhaseRevoked, false, true, want{true, true, StandingRevoked}},
		{keywardenv1alpha1.PhaseExpired, false, true, want{true, true, StandingExpired}},
	}
	for _, tt := range tests {
		// A revocation the verifier recorded in status stands for one in
		// the spec.
		if tt.revoked {
			k := &keywardenv1alpha1.APIKey{}
			k.Status.Phase = tt.phase
			k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: keywardenv1alpha1.ReasonRotatedKeyReused}
			if tt.deleting {
				k.DeletionTimestamp = &deleting
			}
			if got := (want{Terminal(k.Status.Phase), Ending(k), StandingOf(k)}); got != tt.want {
				t.Errorf("phase %q, revocation in status, deleting %v: got %+v, want %+v", tt.phase, tt.deleting, got, tt.want)
			}
		}
		k := &keywardenv1alpha1.APIKey{}
		k.Status.Phase, k.Spec.Revoked = tt.phase, tt.revoked
		if tt.deleting {
			k.DeletionTimestamp = &deleting
		}
		got := want{Terminal(k.Status.Phase), Ending(k), StandingOf(k)}
		if got != tt.want {
			t.Errorf("phase %q, revoked %v, deleting %v: got %+v, want %+v", tt.phase, tt.revoked, tt.deleting, got, tt.want)
		}
	}
}

// A key whose recorded grant has no role (issued before grants were
// recorded, its spec asking for a role its class refuses) verifies
// nothing, but is not ending: it keeps its Secret and its place.
func TestStandingOfAKeyGrantedNoRole(t *testing.T) {
	k := &keywardenv1alpha1.APIKey{}
	k.Spec.Role = "admin"
	k.Status.Phase, k.Status.Owner = keywardenv1alpha1.PhaseActive, "team"
	if got := StandingOf(k); got != StandingNotActive || Ending(k) {
		t.Errorf("granted no role: standing %v, ending %v; want not active, not ending", got, Ending(k))
	}
	k.Status.Role = "reader"
	if got := StandingOf(k); got != StandingActive {
		t.Errorf("granted a role: standing %v, want active", got)
	}
	k.Status.Owner, k.Status.Role = "", ""
	if got := StandingOf(k); got != StandingActive {
		t.Errorf("issued before grants were recorded: standing %v, want active (from its spec)", got)
	}
}
