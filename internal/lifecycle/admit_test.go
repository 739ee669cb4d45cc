package lifecycle

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func TestAdmitAmong(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(uid string, created time.Time, mutate ...func(*keywardenv1alpha1.APIKey)) keywardenv1alpha1.APIKey {
		k := keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)}}
		for _, m := range mutate {
			m(&k)
		}
		return k
	}
	issued := func(k *keywardenv1alpha1.APIKey) { k.Status.KeyHash = "sha256:x" }
	revoked := func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }
	self := key("self", t0)
	older, younger := t0.Add(-time.Minute), t0.Add(time.Minute)

	for _, tc := range []struct {
		name          string
		peers         []keywardenv1alpha1.APIKey
		admitted      map[types.UID]bool
		moved         []types.UID
		limit         int
		ok            bool
		ahead         int
		wantTentative bool
	}{
		{name: "room", peers: []keywardenv1alpha1.APIKey{key("p", younger, issued)}, limit: 2, ok: true, ahead: 1},
		{name: "full in the cache", peers: []keywardenv1alpha1.APIKey{key("p", younger, issued)}, limit: 1, ahead: 1},
		{name: "an older key waits ahead", peers: []keywardenv1alpha1.APIKey{key("p", older)}, limit: 1, ahead: 1},
		{name: "a younger key waits behind", peers: []keywardenv1alpha1.APIKey{key("p", younger)}, limit: 1, ok: true},
		{
			name:  "a younger key being issued takes the place",
			peers: []keywardenv1alpha1.APIKey{key("p", younger)}, admitted: map[types.UID]bool{"p": true},
			limit: 1, ahead: 1, wantTentative: true,
		},
		{
			name:  "a younger key whose status records it issued, not seen by the cache yet",
			peers: []keywardenv1alpha1.APIKey{key("p", younger)}, admitted: map[types.UID]bool{"p": false},
			limit: 1, ahead: 1,
		},
		{
			name:  "a key being issued when there is room",
			peers: []keywardenv1alpha1.APIKey{key("p", younger)}, admitted: map[types.UID]bool{"p": true},
			limit: 2, ok: true, ahead: 1,
		},
		{
			name:  "a key being issued counts with one the cache shows issued",
			peers: []keywardenv1alpha1.APIKey{key("p", younger), key("q", older, issued)}, admitted: map[types.UID]bool{"p": true},
			limit: 2, ahead: 2, wantTentative: true,
		},
		{
			name:  "a revoked key does not count, admitted or not",
			peers: []keywardenv1alpha1.APIKey{key("p", younger, revoked)}, admitted: map[types.UID]bool{"p": true},
			limit: 1, ok: true,
		},
		{
			name:  "a key reassigned to the owner that the cache still lists under its previous owner",
			peers: []keywardenv1alpha1.APIKey{key("p", younger, issued)}, admitted: map[types.UID]bool{"m": true}, moved: []types.UID{"m"},
			limit: 2, ahead: 2, wantTentative: true,
		},
		{
			name:  "a reassigned key the cache already lists under the owner counts once",
			peers: []keywardenv1alpha1.APIKey{key("m", older, issued)}, admitted: map[types.UID]bool{"m": false}, moved: []types.UID{"m"},
			limit: 2, ok: true, ahead: 1,
		},
		{
			name:  "the key's own admission does not count",
			peers: []keywardenv1alpha1.APIKey{self, key("p", younger, issued)}, admitted: map[types.UID]bool{"self": true},
			limit: 1, ahead: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, ahead, tentative := AdmitAmong(HolderOf(&self), tc.peers, tc.admitted, tc.moved, tc.limit)
			if ok != tc.ok || ahead != tc.ahead || tentative != tc.wantTentative {
				t.Errorf("AdmitAmong = %v, %d, %v; want %v, %d, %v", ok, ahead, tentative, tc.ok, tc.ahead, tc.wantTentative)
			}
		})
	}
}
