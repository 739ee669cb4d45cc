package leasefence

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// lease is a lock that stores its record in memory and fails writes
// while failing is set.
type lease struct {
	id      string
	rec     resourcelock.LeaderElectionRecord
	failing bool
}

func (l *lease) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r := l.rec
	return &r, nil, nil
}

func (l *lease) Create(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.Update(context.Background(), r)
}

func (l *lease) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	if l.failing {
		return errors.New("the API server is unreachable")
	}
	l.rec = r
	return nil
}

func (l *lease) RecordEvent(string) {}
func (l *lease) Identity() string   { return l.id }
func (l *lease) Describe() string   { return "test/lease" }

func TestHeld(t *testing.T) {
	const valid = 10 * time.Second
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	mine := resourcelock.LeaderElectionRecord{HolderIdentity: "me"}
	theirs := resourcelock.LeaderElectionRecord{HolderIdentity: "other"}
	type step struct {
		at      time.Duration // after start
		create  bool
		rec     resourcelock.LeaderElectionRecord
		failing bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
		at    time.Duration
		want  bool
	}{
		{name: "never written", at: 0, want: false},
		{name: "acquired by creating the lease", steps: []step{{at: 0, create: true, rec: mine}}, at: time.Second, want: true},
		{name: "renewed a moment ago", steps: []step{{at: 0, rec: mine}, {at: 2 * time.Second, rec: mine}}, at: 3 * time.Second, want: true},
		{name: "just within the renew deadline", steps: []step{{at: 0, rec: mine}}, at: valid - time.Nanosecond, want: true},
		{name: "at the renew deadline", steps: []step{{at: 0, rec: mine}}, at: valid, want: false},
		{name: "woken from a pause longer than the lease", steps: []step{{at: 0, rec: mine}}, at: 20 * time.Second, want: false},
		{name: "renewals failing since", steps: []step{{at: 0, rec: mine}, {at: 4 * time.Second, rec: mine, failing: true}, {at: 8 * time.Second, rec: mine, failing: true}}, at: 11 * time.Second, want: false},
		{name: "a failed renewal keeps the last one", steps: []step{{at: 0, rec: mine}, {at: 2 * time.Second, rec: mine, failing: true}}, at: 5 * time.Second, want: true},
		{name: "released", steps: []step{{at: 0, rec: mine}, {at: time.Second, rec: resourcelock.LeaderElectionRecord{}}}, at: 2 * time.Second, want: false},
		{name: "released, the answer lost", steps: []step{{at: 0, rec: mine}, {at: time.Second, rec: resourcelock.LeaderElectionRecord{}, failing: true}}, at: 2 * time.Second, want: false},
		{name: "written naming another holder", steps: []step{{at: 0, rec: mine}, {at: time.Second, rec: theirs}}, at: 2 * time.Second, want: false},
		{name: "renewed after being paused", steps: []step{{at: 0, rec: mine}, {at: 30 * time.Second, rec: mine}}, at: 31 * time.Second, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := &lease{id: "me"}
			now := start
			l := New(inner, valid)
			l.now = func() time.Time { return now }
			for _, s := range tc.steps {
				now = start.Add(s.at)
				inner.failing = s.failing
				write := l.Update
				if s.create {
					write = l.Create
				}
				err := write(context.Background(), s.rec)
				if (err != nil) != s.failing {
					t.Fatalf("write at %s: %v", s.at, err)
				}
			}
			now = start.Add(tc.at)
			if got := l.Held(); got != tc.want {
				t.Errorf("Held() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNilLockIsAlwaysHeld(t *testing.T) {
	var l *Lock
	if !l.Held() {
		t.Fatal("without leader election, the fence must stay open")
	}
	c := fake.NewClientBuilder().Build()
	if l.Client(c) != c {
		t.Fatal("without leader election, the client must be the one given")
	}
}

// TestClient writes through the fenced client with the lease held, then
// after it lapsed: every kind of write is refused and leaves the object
// as it was; reads go on.
func TestClient(t *testing.T) {
	inner := &lease{id: "me"}
	now := time.Now()
	l := New(inner, 10*time.Second)
	l.now = func() time.Time { return now }
	if err := l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	base := fake.NewClientBuilder().WithStatusSubresource(&corev1.Pod{}).Build()
	c := l.Client(base)
	ctx := context.Background()
	nn := types.NamespacedName{Namespace: "ns", Name: "s"}
	secret := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}, StringData: map[string]string{"k": "v"}}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}

	// Held: writes go through.
	if err := c.Create(ctx, secret()); err != nil {
		t.Fatalf("create while held: %v", err)
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create while held: %v", err)
	}
	pod.Status.Message = "held"
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatalf("status update while held: %v", err)
	}

	now = now.Add(20 * time.Second) // paused past the lease
	writes := map[string]func() error{
		"create": func() error {
			s := secret()
			s.Name = "other"
			return c.Create(ctx, s)
		},
		"update": func() error {
			s := &corev1.Secret{}
			if err := c.Get(ctx, nn, s); err != nil {
				return err
			}
			s.Labels = map[string]string{"changed": "yes"}
			return c.Update(ctx, s)
		},
		"patch": func() error {
			return c.Patch(ctx, secret(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"changed":"yes"}}}`)))
		},
		"delete":        func() error { return c.Delete(ctx, secret()) },
		"delete all of": func() error { return c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace("ns")) },
		"status update": func() error {
			p := pod.DeepCopy()
			p.Status.Message = "stale"
			return c.Status().Update(ctx, p)
		},
		"status patch": func() error {
			return c.Status().Patch(ctx, pod.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"message":"stale"}}`)))
		},
		"subresource patch": func() error {
			return c.SubResource("status").Patch(ctx, pod.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"message":"stale"}}`)))
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrNotHeld) {
			t.Errorf("%s after the lease lapsed: got %v, want ErrNotHeld", name, err)
		}
	}
	// Nothing changed, as the API server (here the fake) has it; reads
	// still answer.
	var got corev1.Secret
	if err := c.Get(ctx, nn, &got); err != nil {
		t.Fatalf("read after the lease lapsed: %v", err)
	}
	if len(got.Labels) != 0 {
		t.Errorf("the Secret was changed after the lease lapsed: labels %v", got.Labels)
	}
	var others corev1.SecretList
	if err := base.List(ctx, &others); err != nil || len(others.Items) != 1 {
		t.Errorf("Secrets after the lease lapsed: %d (%v), want only the one created while held", len(others.Items), err)
	}
	var p corev1.Pod
	if err := base.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "p"}, &p); err != nil || p.Status.Message != "held" {
		t.Errorf("pod status after the lease lapsed: %q (%v), want %q", p.Status.Message, err, "held")
	}

	// A write is given until the end of the certain lease to be sent.
	now = now.Add(-20 * time.Second) // back within the lease
	var deadline time.Time
	timed := l.Client(interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
		Create: func(ctx context.Context, _ client.WithWatch, _ client.Object, _ ...client.CreateOption) error {
			deadline, _ = ctx.Deadline()
			return nil
		},
	}))
	if err := timed.Create(ctx, secret()); err != nil {
		t.Fatal(err)
	}
	if deadline.IsZero() || !deadline.Equal(l.until) {
		t.Errorf("a write may be sent until %v, want the end of the certain lease %v", deadline, l.until)
	}
	now = now.Add(20 * time.Second)

	// Renewed (the lease was still this replica's): writes go through.
	if err := l.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if err := writes["patch"](); err != nil {
		t.Fatalf("patch after renewing: %v", err)
	}
}
