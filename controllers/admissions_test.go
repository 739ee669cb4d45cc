package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/policy"
)

func TestAdmissions(t *testing.T) {
	var s admissions
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	for _, step := range []struct {
		name string
		do   func()
		want map[types.UID]bool
	}{
		{"nothing admitted", func() {}, map[types.UID]bool{}},
		{"a is being issued", func() { s.reserve(a, "uid-a") }, map[types.UID]bool{"uid-a": true}},
		{"b is being issued", func() { s.reserve(b, "uid-b") }, map[types.UID]bool{"uid-a": true, "uid-b": true}},
		{"a's status records it", func() { s.confirm(a) }, map[types.UID]bool{"uid-a": false, "uid-b": true}},
		{"b's pass left it unissued", func() { s.forget(b) }, map[types.UID]bool{"uid-a": false}},
		{"confirming a key not admitted adds nothing", func() { s.confirm(b) }, map[types.UID]bool{"uid-a": false}},
		{"a was recreated and is being issued again", func() { s.reserve(a, "uid-a2") }, map[types.UID]bool{"uid-a2": true}},
		{"the cache shows a issued", func() { s.forget(a) }, map[types.UID]bool{}},
	} {
		step.do()
		got := s.snapshot()
		if len(got) != len(step.want) {
			t.Fatalf("%s: snapshot %v, want %v", step.name, got, step.want)
		}
		for uid, tentative := range step.want {
			if g, ok := got[uid]; !ok || g != tentative {
				t.Fatalf("%s: snapshot %v, want %v", step.name, got, step.want)
			}
		}
	}
}

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
			ok, ahead, tentative := admitAmong(holder(&self), tc.peers, tc.admitted, tc.moved, tc.limit)
			if ok != tc.ok || ahead != tc.ahead || tentative != tc.wantTentative {
				t.Errorf("admitAmong = %v, %d, %v; want %v, %d, %v", ok, ahead, tentative, tc.ok, tc.ahead, tc.wantTentative)
			}
		})
	}
}

// TestAdmitDecidesAgainAfterATentativePlace follows an owner with a limit
// of one key through admit: the younger key is admitted before the cache
// shows the older one, the older key is then refused while the younger one
// holds the place being issued, is decided again shortly, and takes the
// place once the younger key's pass ends without issuing it.
func TestAdmitDecidesAgainAfterATentativePlace(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	newKey := func(name string, created time.Time) *keywardenv1alpha1.APIKey {
		return &keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created)},
			Spec:       keywardenv1alpha1.APIKeySpec{Owner: "team", Role: "reader", DisplayName: name},
		}
	}
	older, younger := newKey("older", t0), newKey("younger", t0.Add(time.Minute))
	c := fake.NewClientBuilder().WithScheme(NewScheme()).
		WithIndex(&keywardenv1alpha1.APIKey{}, ownerIndex, func(o client.Object) []string {
			return []string{ownerOf(o.(*keywardenv1alpha1.APIKey))}
		}).
		WithObjects(younger).Build()
	r := &APIKeyReconciler{Client: c}
	ctx := context.Background()
	pol := policy.Policy{MaxActiveKeysPerOwner: 1}

	admit := func(k *keywardenv1alpha1.APIKey) *pass {
		t.Helper()
		p := &pass{key: k.DeepCopy(), policy: pol}
		done, err := r.admit(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if done != (p.outcome.Phase == keywardenv1alpha1.PhaseRefused) {
			t.Fatalf("admit(%s): done %v with outcome %q", k.Name, done, p.outcome.Phase)
		}
		return p
	}

	if p := admit(younger); p.outcome.Phase != "" {
		t.Fatalf("younger key refused with room: %+v", p.outcome)
	}
	if got := r.admitted.snapshot(); !got["uid-younger"] {
		t.Fatalf("younger key not reserved as being issued: %v", got)
	}
	if err := c.Create(ctx, older.DeepCopy()); err != nil {
		t.Fatal(err)
	}

	p := admit(older)
	if p.outcome.Phase != keywardenv1alpha1.PhaseRefused || p.requeueAfter != admissionRecheck {
		t.Fatalf("older key while the younger is being issued: phase %q, requeue after %v; want Refused, %v", p.outcome.Phase, p.requeueAfter, admissionRecheck)
	}
	if len(p.events) != 1 || p.events[0].reason != keywardenv1alpha1.EventKeyRefused {
		t.Fatalf("events %+v, want one KeyRefused", p.events)
	}

	// The younger key's pass ends without issuing it (a Secret of the same
	// name belongs to someone else, say).
	unissued := &pass{key: younger.DeepCopy()}
	r.settleAdmission(unissued, nil)
	if p := admit(older); p.outcome.Phase != "" {
		t.Fatalf("older key refused once the place was free: %+v", p.outcome)
	}

	// Had the younger key been issued instead, the refusal would stand,
	// with nothing left to wait for.
	r.admitted.forget(types.NamespacedName{Namespace: "ns", Name: "older"})
	r.admitted.reserve(types.NamespacedName{Namespace: "ns", Name: "younger"}, younger.UID)
	issued := &pass{key: younger.DeepCopy()}
	issued.key.Status.KeyHash = "sha256:x"
	r.settleAdmission(issued, nil)
	if p := admit(older); p.outcome.Phase != keywardenv1alpha1.PhaseRefused || p.requeueAfter != 0 {
		t.Fatalf("older key with the younger issued: phase %q, requeue after %v; want Refused and no recheck", p.outcome.Phase, p.requeueAfter)
	}
}
