// Package verify answers whether a presented API key is valid, whose it is
// and what it may do. It keeps a compact in-memory index of the APIKeys an
// informer delivers, keyed by key hash, so that a verification is one SHA-256
// and one map lookup, with no API call and no list scan. The Keywarden
// manager serves it over HTTP (see Handler); a Go service can embed it with
// an informer of its own (see Index.Watch).
package verify

import (
	"crypto/sha256"
	"slices"
	"time"
	"unsafe"

	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
)

// Code says why a key is not valid. The set is closed: clients may switch
// on it.
type Code string

const (
	// CodeMalformed: wrong prefix, length, alphabet or checksum; decided
	// from the key alone.
	CodeMalformed Code = "MALFORMED"
	// CodeNotFound: well-formed, but no APIKey holds it.
	CodeNotFound Code = "NOT_FOUND"
	// CodeExpired: the key's expiry has passed.
	CodeExpired Code = "EXPIRED"
	// CodeRevoked: the key was revoked.
	CodeRevoked Code = "REVOKED"
	// CodeNotActive: the key's APIKey is not active (pending, refused or
	// being deleted).
	CodeNotActive Code = "NOT_ACTIVE"
	// CodeInsufficientScope: the key lacks a required scope.
	CodeInsufficientScope Code = "INSUFFICIENT_SCOPE"
	// CodeWrongRole: the key's role is not the required one.
	CodeWrongRole Code = "WRONG_ROLE"
	// CodeWrongNamespace: the key belongs to a namespace the caller does
	// not trust (or the caller trusts none).
	CodeWrongNamespace Code = "WRONG_NAMESPACE"
	// CodeWrongClass: the key was not issued under a class the caller
	// trusts.
	CodeWrongClass Code = "WRONG_CLASS"
	// CodeRotated: the key was replaced by a rotation and its grace period
	// has ended; its holder is to use the APIKey's current key.
	CodeRotated Code = "ROTATED"
	// CodeConflict: more than one APIKey records this key's hash, which
	// Keywarden never does itself; the key is refused for all of them
	// until only one is left.
	CodeConflict Code = "CONFLICT"
)

// Codes lists every Code.
var Codes = []Code{CodeMalformed, CodeNotFound, CodeExpired, CodeRevoked, CodeRotated, CodeNotActive, CodeInsufficientScope, CodeWrongRole, CodeWrongNamespace, CodeWrongClass, CodeConflict}

// Request is a key to verify and what the caller requires of it.
//
// Anyone who may create an APIKey in some namespace can mint a key with
// any owner, role and scopes there, so a key is only as trustworthy as
// the namespace (and the class) it was issued in: a request says which it
// accepts. A key must be in one of Namespaces, when any are named, and
// issued under one of Classes, when any are named. With neither named no
// key is accepted (WRONG_NAMESPACE), unless AnyNamespace is set.
type Request struct {
	// Key is the raw key as presented.
	Key string
	// Scopes must all be granted by the key.
	Scopes []string
	// Role, when set, must be the key's role.
	Role string
	// Namespaces whose keys the caller accepts.
	Namespaces []string
	// Classes whose keys the caller accepts (the class the key was
	// issued under, status.className).
	Classes []string
	// AnyNamespace accepts keys of every namespace when neither
	// Namespaces nor Classes are named: only for a cluster where everyone
	// who may create an APIKey anywhere is trusted.
	AnyNamespace bool
}

// Trusts reports whether the request says whose keys it accepts.
func (r *Request) Trusts() bool {
	return len(r.Namespaces) > 0 || len(r.Classes) > 0 || r.AnyNamespace
}

// Result is the answer. When Valid is false only Code (and, for a key that
// was found, KeyPrefix; for a ROTATED key, its APIKey's Namespace and Name)
// is set.
type Result struct {
	Valid     bool
	Code      Code
	Namespace string
	Name      string
	// Class is the class the key was issued under; empty for none.
	Class     string
	Owner     string
	Role      string
	Scopes    []string
	ExpiresAt *time.Time
	KeyPrefix string
	// Previous is set for a key a rotation replaced, valid until
	// ValidUntil: its holder is to move to the current key.
	Previous   bool
	ValidUntil *time.Time
	// TrackLastUsed is set for a valid key whose APIKey opted in to usage
	// tracking.
	TrackLastUsed bool
	// answer is the JSON answer to POST /v1/keys/verify for a valid key,
	// written when the key was indexed: the VerifyResponse of the fields
	// above.
	answer string
}

// Verify checks a request against the index at the time now.
func (ix *Index) Verify(req Request, now time.Time) Result {
	// The key's bytes, without a copy: neither the hash nor the check
	// keeps or changes them.
	raw := unsafe.Slice(unsafe.StringData(req.Key), len(req.Key))
	sum := sha256.Sum256(raw)
	e, shared := ix.lookup(&sum)
	if e == nil {
		// Only well-formed keys are issued, so a key that is found needs
		// no format check; one that is not is told malformed or unknown.
		if keys.Check(raw) != nil {
			return Result{Code: CodeMalformed}
		}
		return Result{Code: CodeNotFound}
	}
	if shared {
		return Result{Code: CodeConflict}
	}
	if code, ok := e.check(req, now); !ok {
		r := Result{Code: code, KeyPrefix: e.keyPrefix}
		if code == CodeRotated {
			// Whose: the use is reported on the APIKey (never to the
			// caller).
			r.Namespace, r.Name = e.namespace, e.name
		}
		return r
	}
	r := Result{
		Valid: true, Namespace: e.namespace, Name: e.name, Class: e.class, Owner: e.owner, Role: e.role,
		Scopes: e.scopes, KeyPrefix: e.keyPrefix, TrackLastUsed: e.trackLastUsed, answer: e.answer,
	}
	if e.expiresAt != nil {
		t := *e.expiresAt
		r.ExpiresAt = &t
	}
	if e.previous {
		t := *e.validUntil
		r.Previous, r.ValidUntil = true, &t
	}
	return r
}

// check applies the key's own state first (revoked, expired, not active),
// then the caller's requirements.
func (e *entry) check(req Request, now time.Time) (Code, bool) {
	switch {
	case e.standing == lifecycle.StandingRevoked:
		return CodeRevoked, false
	case e.expiresAt != nil && !now.Before(*e.expiresAt), e.standing == lifecycle.StandingExpired:
		return CodeExpired, false
	case e.previous && !now.Before(*e.validUntil):
		return CodeRotated, false
	case e.standing != lifecycle.StandingActive:
		return CodeNotActive, false
	case !req.Trusts():
		return CodeWrongNamespace, false
	case len(req.Namespaces) > 0 && !slices.Contains(req.Namespaces, e.namespace):
		return CodeWrongNamespace, false
	case len(req.Classes) > 0 && (e.class == "" || !slices.Contains(req.Classes, e.class)):
		return CodeWrongClass, false
	case req.Role != "" && req.Role != e.role:
		return CodeWrongRole, false
	}
	for _, s := range req.Scopes {
		if _, found := slices.BinarySearch(e.scopes, s); !found {
			return CodeInsufficientScope, false
		}
	}
	return "", true
}
