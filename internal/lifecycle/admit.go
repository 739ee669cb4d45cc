package lifecycle

import (
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/policy"
)

// AdmitAmong applies the active-key limit to a key given its owner's keys
// (which may include the key itself; policy.Admit skips it), the keys
// this process admitted, by UID (true while still being issued), which
// count as issued whatever the peers' status says, and the issued keys
// this process reassigned to the owner, which the peers may not list yet.
// tentative reports that a refusal counted a key still being issued.
func AdmitAmong(self policy.Holder, peers []keywardenv1alpha1.APIKey, admitted map[types.UID]bool, moved []types.UID, limit int) (ok bool, ahead int, tentative bool) {
	others := make([]policy.Holder, 0, len(peers)+len(moved))
	listed := make(map[types.UID]bool, len(peers))
	for i := range peers {
		listed[peers[i].UID] = true
	}
	for _, uid := range moved {
		// Reassigned to this owner, listed under the previous one.
		if !listed[uid] && uid != self.UID {
			others = append(others, policy.Holder{UID: uid, Issued: true})
			tentative = tentative || admitted[uid]
		}
	}
	for i := range peers {
		h := HolderOf(&peers[i])
		being, in := admitted[h.UID]
		if in && !h.Issued && !h.Gone && h.UID != self.UID {
			tentative = tentative || being
		}
		h.Issued = h.Issued || in
		others = append(others, h)
	}
	ok, ahead = policy.Admit(self, others, limit)
	return ok, ahead, tentative && !ok
}

// HolderOf is what the active-key limit needs of a key.
func HolderOf(k *keywardenv1alpha1.APIKey) policy.Holder {
	return policy.Holder{
		UID:     k.UID,
		Created: k.CreationTimestamp.Time,
		Issued:  Issued(&k.Status),
		Gone:    Ending(k),
	}
}
