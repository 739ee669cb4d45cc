package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// admissions remembers the keys this process admitted under their owner's
// active-key limit until the cache shows them issued: first while a pass
// issues the key (tentative), then once its status records the key. The
// limit, decided from the cache, counts them as issued, so that passes
// deciding an owner's keys one after the other never admit more than the
// limit even though each holds the owner's lock only for the decision.
type admissions struct {
	mu sync.Mutex
	m  map[types.NamespacedName]admittedKey
}

type admittedKey struct {
	uid       types.UID
	tentative bool
	// movedTo is, for an issued key being reassigned, the namespace/owner
	// it was admitted under: the cache lists the key under its previous
	// owner until it shows the new grant.
	movedTo string
}

// reserve notes that a pass admitted the key and is issuing it.
func (s *admissions) reserve(nn types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[types.NamespacedName]admittedKey{}
	}
	s.m[nn] = admittedKey{uid: uid, tentative: true}
}

// reserveMove notes that a pass admitted an issued key under a new owner
// (namespace/owner) and is recording the reassignment.
func (s *admissions) reserveMove(nn types.NamespacedName, uid types.UID, owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[types.NamespacedName]admittedKey{}
	}
	s.m[nn] = admittedKey{uid: uid, tentative: true, movedTo: owner}
}

// movedTo returns the UIDs of the keys admitted under the owner
// (namespace/owner) by a reassignment the cache does not show yet.
func (s *admissions) movedTo(owner string) []types.UID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []types.UID
	for _, a := range s.m {
		if a.movedTo == owner {
			out = append(out, a.uid)
		}
	}
	return out
}

// confirm notes that the key's status records it issued; a key not
// reserved is left alone.
func (s *admissions) confirm(nn types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.m[nn]; ok {
		a.tentative = false
		s.m[nn] = a
	}
}

// forget drops the key: the cache shows it issued, or it is gone, or the
// pass that admitted it ended without issuing it.
func (s *admissions) forget(nn types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, nn)
}

// snapshot returns the admitted keys not yet seen issued in the cache, by
// UID, true for those still being issued. Taken before the cache is read,
// it misses no issued key: a key leaves it only once the cache shows it
// issued, or when it was not issued.
func (s *admissions) snapshot() map[types.UID]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[types.UID]bool, len(s.m))
	for _, a := range s.m {
		out[a.uid] = a.tentative
	}
	return out
}
