package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func TestRoutineKeyUpdate(t *testing.T) {
	key := func(f func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
		k := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "k", Generation: 1, ResourceVersion: "1"}}
		if f != nil {
			f(k)
		}
		return k
	}
	now := metav1.Now()
	tests := []struct {
		name    string
		new     func(*keywardenv1alpha1.APIKey)
		routine bool
	}{
		{"the controller's progress in status", func(k *keywardenv1alpha1.APIKey) {
			k.ResourceVersion, k.Status.Phase = "2", keywardenv1alpha1.PhaseActive
		}, true},
		{"the verifier's lastUsedAt", func(k *keywardenv1alpha1.APIKey) { k.ResourceVersion, k.Status.LastUsedAt = "2", &now }, true},
		{"a change of the spec (a revocation, a new grant)", func(k *keywardenv1alpha1.APIKey) { k.ResourceVersion, k.Generation = "2", 2 }, false},
		{"a reported key's revocation in status", func(k *keywardenv1alpha1.APIKey) {
			k.ResourceVersion, k.Status.Revocation = "2", &keywardenv1alpha1.Revocation{Reason: "KeyReported"}
		}, false},
		{"the deletion", func(k *keywardenv1alpha1.APIKey) { k.ResourceVersion, k.DeletionTimestamp = "2", &now }, false},
		{"a rotation's next key recorded", func(k *keywardenv1alpha1.APIKey) {
			k.ResourceVersion = "2"
			k.Status.Rotation = &keywardenv1alpha1.RotationStatus{Next: &keywardenv1alpha1.RecordedKey{KeyHash: "sha256:x"}}
		}, false},
	}
	for _, tt := range tests {
		if got := routineKeyUpdate(event.UpdateEvent{ObjectOld: key(nil), ObjectNew: key(tt.new)}); got != tt.routine {
			t.Errorf("%s: routine %v, want %v", tt.name, got, tt.routine)
		}
	}
}

func TestFreesPlace(t *testing.T) {
	old := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "k", Generation: 1}}
	old.Status.Phase, old.Status.Owner, old.Status.Role = keywardenv1alpha1.PhaseActive, "team", "reader"
	now := metav1.Now()
	for _, tt := range []struct {
		name  string
		new   func(*keywardenv1alpha1.APIKey)
		frees bool
	}{
		{"a label", func(k *keywardenv1alpha1.APIKey) { k.Labels = map[string]string{"x": "y"} }, false},
		{"a use recorded", func(k *keywardenv1alpha1.APIKey) { k.Status.LastUsedAt = &now }, false},
		{"a spec edit not granted yet", func(k *keywardenv1alpha1.APIKey) { k.Generation, k.Spec.Owner = 2, "other" }, false},
		{"expired or revoked", func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRevoked }, true},
		{"given to another owner", func(k *keywardenv1alpha1.APIKey) { k.Status.Owner = "other" }, true},
		{"being deleted", func(k *keywardenv1alpha1.APIKey) { k.DeletionTimestamp = &now }, true},
	} {
		cur := old.DeepCopy()
		tt.new(cur)
		if got := freesPlace(event.UpdateEvent{ObjectOld: old, ObjectNew: cur}); got != tt.frees {
			t.Errorf("%s: frees a place %v, want %v", tt.name, got, tt.frees)
		}
	}
}

// TestRoutineWaitsBehind: in the controller's priority queue, a routine
// update queued first is handed out after a key created later, and a
// routine pass's wake-up is asked for at low priority.
func TestRoutineWaitsBehind(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	ctx := context.Background()
	old := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rotating", Generation: 1, ResourceVersion: "1"}}
	progressed := old.DeepCopy()
	progressed.ResourceVersion = "2"
	h := behindWhen{&handler.EnqueueRequestForObject{}, routineKeyUpdate}
	h.Update(ctx, event.UpdateEvent{ObjectOld: old, ObjectNew: progressed}, q)
	h.Create(ctx, event.CreateEvent{Object: &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "new"}}}, q)
	revoked := progressed.DeepCopy()
	revoked.Name, revoked.Generation, revoked.ResourceVersion = "revoked", 2, "3"
	h.Update(ctx, event.UpdateEvent{ObjectOld: progressed, ObjectNew: revoked}, q)

	var order []string
	var priorities []int
	for range 3 {
		r, p, _ := q.GetWithPriority()
		order, priorities = append(order, r.Name), append(priorities, p)
		q.Done(r)
	}
	if order[2] != "rotating" || priorities[2] != handler.LowPriority || priorities[0] != 0 || priorities[1] != 0 {
		t.Errorf("handed out %v at priorities %v, want the routine update last, at %d", order, priorities, handler.LowPriority)
	}

	if res := routineResult(time.Minute, true); res.Priority == nil || *res.Priority != handler.LowPriority {
		t.Errorf("a routine wake-up at priority %v", res.Priority)
	}
	if res := routineResult(time.Minute, false); res.Priority == nil || *res.Priority != 0 {
		t.Errorf("an expiry's wake-up at priority %v, want the default whatever the pass's", res.Priority)
	}
}

// TestRoutineGate: scheduled rotations come due at once; each takes the
// next free moment and starts then, not before, whatever wakes it.
func TestRoutineGate(t *testing.T) {
	g := newRoutineGate(2)
	now := time.Unix(1_800_000_000, 0)
	key := func(i int) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)} }
	var waits []time.Duration
	for i := range 5 {
		ok, wait := g.admit(key(i), now)
		if ok != (i == 0) {
			t.Fatalf("key %d admitted %v at once", i, ok)
		}
		waits = append(waits, wait)
	}
	if want := []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	// Woken early (another event), a key keeps its moment.
	if ok, wait := g.admit(key(2), now.Add(400*time.Millisecond)); ok || wait != 600*time.Millisecond {
		t.Errorf("a key woken early: %v, %v", ok, wait)
	}
	if ok, _ := g.admit(key(2), now.Add(time.Second)); !ok {
		t.Error("a key at its moment not admitted")
	}
	g.forget(key(3))
	if len(g.booked) != 2 {
		t.Errorf("%d moments kept, want those of keys 1 and 4", len(g.booked))
	}
	// A key that comes long after its moment takes a new one.
	if ok, wait := g.admit(key(1), now.Add(10*time.Minute)); !ok || wait != 0 {
		t.Errorf("a key long past its moment, with the pace free: %v, %v", ok, wait)
	}
	if ok, _ := g.admit(key(4), now.Add(10*time.Minute)); ok {
		t.Error("a stale moment let a key skip the pace")
	}
}
