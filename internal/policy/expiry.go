package policy

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// EffectiveExpiry is a key's effective expiry: spec.expiresAt, or issuedAt plus
// spec.lifetime, or else the expiry recorded at issuance (a class's default
// lifetime), or nil when the key does not expire (or, with a lifetime, has
// not been issued yet).
func EffectiveExpiry(spec *keywardenv1alpha1.APIKeySpec, issuedAt, recorded *metav1.Time) *metav1.Time {
	var t metav1.Time
	switch {
	case spec.ExpiresAt != nil:
		t = *spec.ExpiresAt
	case spec.Lifetime != nil && issuedAt != nil:
		t = metav1.NewTime(issuedAt.Add(spec.Lifetime.Duration))
	case spec.Lifetime == nil && recorded != nil:
		t = *recorded
	default:
		return nil
	}
	return &t
}

// Expired reports whether a key with the given effective expiry is expired
// at now. A key is valid up to, not including, its expiry.
func Expired(expiresAt *metav1.Time, now time.Time) bool {
	return expiresAt != nil && !now.Before(expiresAt.Time)
}
