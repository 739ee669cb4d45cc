package controllers

import "sync"

// keyedMutex serialises work per key (here: per namespace and owner) and
// forgets keys nobody holds, so that it does not grow with the number of
// owners ever seen.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

// lock locks the key and returns the function that unlocks it.
func (m *keyedMutex) lock(key string) (unlock func()) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*keyedLock{}
	}
	l := m.locks[key]
	if l == nil {
		l = &keyedLock{}
		m.locks[key] = l
	}
	l.refs++
	m.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, key)
		}
		m.mu.Unlock()
	}
}
