package lifecycle

import (
	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Terminal reports whether a phase ends a key's life: nothing brings an
// Expired or Revoked key back (a new APIKey does). The controller leaves
// such keys where they are, and class and namespace changes do not wake
// them.
func Terminal(phase keywardenv1alpha1.APIKeyPhase) bool {
	return phase == keywardenv1alpha1.PhaseExpired || phase == keywardenv1alpha1.PhaseRevoked
}

// Ending reports whether a key has reached the end of its life or is
// asked to: terminal, revoked in its spec, or being deleted. An ending key
// holds no place under its owner's active-key limit.
func Ending(k *keywardenv1alpha1.APIKey) bool {
	return Terminal(k.Status.Phase) || Revoked(k) || !k.DeletionTimestamp.IsZero()
}

// Revoked reports whether the key is revoked or asked to be: in its spec,
// or by a revocation the verifier recorded in its status.
func Revoked(k *keywardenv1alpha1.APIKey) bool {
	return k.Spec.Revoked || k.Status.Revocation != nil
}

// Standing is what an APIKey's object says of a use of its key, before
// the time of the use is known (which may find an Active key past its
// expiry).
type Standing uint8

const (
	// StandingActive: the key verifies, until its expiry.
	StandingActive Standing = iota
	// StandingRevoked: revoked, or asked to be: never again.
	StandingRevoked
	// StandingExpired: the controller recorded its expiry.
	StandingExpired
	// StandingNotActive: not issued yet, being reissued, or being
	// deleted.
	StandingNotActive
)

// StandingOf is the key's standing. The verifier answers from it, so a
// revocation in the spec, or in status by the verifier, takes effect before
// the controller has recorded it.
func StandingOf(k *keywardenv1alpha1.APIKey) Standing {
	switch {
	case Revoked(k) || k.Status.Phase == keywardenv1alpha1.PhaseRevoked:
		return StandingRevoked
	case k.Status.Phase == keywardenv1alpha1.PhaseExpired:
		return StandingExpired
	case k.Status.Phase == keywardenv1alpha1.PhaseActive && k.DeletionTimestamp.IsZero() && !k.Ungranted():
		// (A key granted no role is not active: it verifies nothing.)
		return StandingActive
	}
	return StandingNotActive
}
