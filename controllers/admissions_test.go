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
	"keywarden.dev/keywarden/internal/lifecycle"
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
			return []string{o.(*keywardenv1alpha1.APIKey).GrantedOwner()}
		}).
		WithObjects(younger).Build()
	r := &APIKeyReconciler{Client: c}
	ctx := context.Background()
	pol := policy.Policy{MaxActiveKeysPerOwner: 1}

	admit := func(k *keywardenv1alpha1.APIKey) lifecycle.Decision {
		t.Helper()
		o := &lifecycle.Observed{Key: k.DeepCopy(), Now: t0, Policy: pol, Owners: map[string]*lifecycle.OwnerKeys{}}
		var reserved bool
		d, err := r.decide(ctx, o, &reserved)
		if err != nil {
			t.Fatal(err)
		}
		if reserved != (d.Secret == lifecycle.SecretIssue) {
			t.Fatalf("decide(%s): reserved %v with action %v and outcome %+v", k.Name, reserved, d.Secret, d.Outcome)
		}
		return d
	}
	refused := func(d lifecycle.Decision) bool { return d.Outcome.Phase == keywardenv1alpha1.PhaseRefused }

	if d := admit(younger); refused(d) {
		t.Fatalf("younger key refused with room: %+v", d.Outcome)
	}
	if got := r.admitted.snapshot(); !got["uid-younger"] {
		t.Fatalf("younger key not reserved as being issued: %v", got)
	}
	if err := c.Create(ctx, older.DeepCopy()); err != nil {
		t.Fatal(err)
	}

	d := admit(older)
	if !refused(d) || d.RequeueAfter != lifecycle.AdmissionRecheck {
		t.Fatalf("older key while the younger is being issued: phase %q, requeue after %v; want Refused, %v", d.Outcome.Phase, d.RequeueAfter, lifecycle.AdmissionRecheck)
	}
	if len(d.Events) != 1 || d.Events[0].Reason != keywardenv1alpha1.EventKeyRefused {
		t.Fatalf("events %+v, want one KeyRefused", d.Events)
	}

	// The younger key's pass ends without issuing it (a Secret of the same
	// name belongs to someone else, say).
	r.settleAdmission(younger.DeepCopy(), nil)
	if d := admit(older); refused(d) {
		t.Fatalf("older key refused once the place was free: %+v", d.Outcome)
	}

	// Had the younger key been issued instead, the refusal would stand,
	// with nothing left to wait for.
	r.admitted.forget(types.NamespacedName{Namespace: "ns", Name: "older"})
	r.admitted.reserve(types.NamespacedName{Namespace: "ns", Name: "younger"}, younger.UID)
	issued := younger.DeepCopy()
	issued.Status.KeyHash = "sha256:x"
	r.settleAdmission(issued, nil)
	if d := admit(older); !refused(d) || d.RequeueAfter != 0 {
		t.Fatalf("older key with the younger issued: phase %q, requeue after %v; want Refused and no recheck", d.Outcome.Phase, d.RequeueAfter)
	}
}
