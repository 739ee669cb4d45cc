package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// staleVersions remembers, for each APIKey this process has just written,
// the resourceVersions its writes replaced. Until the informer delivers the
// write, the cache still holds one of them, and a pass started from it would
// redo work already done and fail on the optimistic lock. Reconcile skips
// such passes; the informer's event for the write starts the next one.
//
// Versions are only compared for equality: the cache moves forward, so once
// it holds any other version of the object (or none) it holds the write or
// a later one, and the entry is forgotten.
type staleVersions struct {
	mu     sync.Mutex
	byName map[types.NamespacedName][]string
}

// record notes that the object's versions were replaced by this process's
// writes.
func (s *staleVersions) record(nn types.NamespacedName, versions []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[types.NamespacedName][]string{}
	}
	s.byName[nn] = versions
}

// stale reports whether the version is one this process wrote over. It
// forgets the object's entry once the cache shows any other version.
func (s *staleVersions) stale(nn types.NamespacedName, version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, ok := s.byName[nn]
	if !ok {
		return false
	}
	for _, v := range vs {
		if v == version {
			return true
		}
	}
	delete(s.byName, nn)
	return false
}

// forget drops the object's entry.
func (s *staleVersions) forget(nn types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byName, nn)
}
