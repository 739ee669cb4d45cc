package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// nextKeys holds, in memory only, the values of the next keys of the
// rotations this process recorded, from the pass that records one in
// status to the pass that, having read that status back, writes it into
// the Secret. A value lost with a restart is never needed: the rotation
// records another next key.
type nextKeys struct {
	mu sync.Mutex
	m  map[types.NamespacedName]heldKey
}

type heldKey struct {
	uid               types.UID
	hash, raw, sealed string
}

// hold keeps the value of the key's next key, replacing any other.
func (n *nextKeys) hold(nn types.NamespacedName, uid types.UID, hash, raw, sealed string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[types.NamespacedName]heldKey{}
	}
	n.m[nn] = heldKey{uid: uid, hash: hash, raw: raw, sealed: sealed}
}

// get returns the held value of the key's next key of that hash.
func (n *nextKeys) get(nn types.NamespacedName, uid types.UID, hash string) (heldKey, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.m[nn]
	if !ok || h.uid != uid || h.hash != hash {
		return heldKey{}, false
	}
	return h, true
}

// forget drops the key's held value: its rotation completed or ended, or
// the APIKey is gone.
func (n *nextKeys) forget(nn types.NamespacedName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.m, nn)
}
