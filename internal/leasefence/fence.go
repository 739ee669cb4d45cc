// Package leasefence keeps a replica that may have lost its leader lease
// from writing.
//
// A leader learns that it lost its lease only when it next tries to renew
// it. A replica paused longer than the lease (SIGSTOP, a frozen cgroup, a
// long stop of the world, a suspended machine) wakes still believing it
// leads: until its renewal fails, its workers act on a cache from before
// the pause while another replica leads. Lock records when this replica
// last wrote its own lease record; for the renew deadline after that write
// began, no other candidate can have taken the lease over (they wait the
// longer lease duration from when they saw the write), and the fenced
// client writes only then, each write given that long to be sent.
//
// Time is measured twice, by the monotonic clock (which a change of the
// wall clock does not move) and by the wall clock (which, unlike the
// monotonic clock, goes on while a machine is suspended): the lease is
// held only while both say so. The fence narrows the window in which a
// former leader writes; the preconditions on the controller's writes
// (resourceVersion, UID) stay the guard for what remains.
package leasefence

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNotHeld is what a fenced write returns while the lease is uncertain.
var ErrNotHeld = errors.New("this replica has not renewed its leader lease within the renew deadline (it was paused, or cut off from the API server) and may no longer lead: nothing is written until it renews the lease or steps down")

// Lock is a leader-election lock that remembers this replica's renewals.
type Lock struct {
	resourcelock.Interface

	valid time.Duration
	now   func() time.Time

	mu    sync.Mutex
	until time.Time
}

// New wraps lock. valid is how long after a renewal began the lease is
// certainly this replica's: at most the renew deadline, which leader
// election keeps shorter than the lease duration.
func New(lock resourcelock.Interface, valid time.Duration) *Lock {
	return &Lock{Interface: lock, valid: valid, now: time.Now}
}

// Create records the acquisition of a new lease record.
func (l *Lock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return l.wrote(rec, func() error { return l.Interface.Create(ctx, rec) })
}

// Update records a renewal, an acquisition or a release.
func (l *Lock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return l.wrote(rec, func() error { return l.Interface.Update(ctx, rec) })
}

func (l *Lock) wrote(rec resourcelock.LeaderElectionRecord, write func() error) error {
	began := l.now()
	if rec.HolderIdentity != l.Identity() {
		// Released or handed over: uncertain from the moment it is sent,
		// whether or not the answer comes back.
		l.mu.Lock()
		l.until = time.Time{}
		l.mu.Unlock()
		return write()
	}
	if err := write(); err != nil {
		// The lease is as it was: still certain until the last renewal
		// runs out.
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = began.Add(l.valid)
	return nil
}

// Held reports whether this replica certainly holds the lease now. A nil
// Lock (no leader election) always does.
func (l *Lock) Held() bool {
	_, held := l.deadline()
	return held
}

// deadline is when the lease stops being certain, by the clock the writes
// are timed with, and whether it is certain now.
func (l *Lock) deadline() (time.Time, bool) {
	if l == nil {
		return time.Time{}, true
	}
	l.mu.Lock()
	until := l.until
	l.mu.Unlock()
	if until.IsZero() {
		return until, false
	}
	now := l.now()
	// Monotonic, and wall clock alone (Round(0) drops the monotonic
	// reading): both must leave time.
	held := now.Before(until) && now.Round(0).Before(until.Round(0))
	return until, held
}

// fence returns ctx bounded by the end of the certain lease, or
// ErrNotHeld: a write that waits (the client's rate limiter, the API
// server's queues) is not sent once another replica may lead.
func (l *Lock) fence(ctx context.Context) (context.Context, context.CancelFunc, error) {
	until, held := l.deadline()
	if !held {
		return nil, nil, ErrNotHeld
	}
	ctx, cancel := context.WithDeadline(ctx, until)
	return ctx, cancel, nil
}

// Client returns c whose writes (of objects and of their subresources)
// fail with ErrNotHeld unless the lease is held when they are sent. Reads
// pass through. With a nil Lock, c itself.
func (l *Lock) Client(c client.Client) client.Client {
	if l == nil {
		return c
	}
	return &fenced{Client: c, l: l}
}

type fenced struct {
	client.Client
	l *Lock
}

func (f *fenced) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.Create(ctx, obj, opts...)
}

func (f *fenced) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.Delete(ctx, obj, opts...)
}

func (f *fenced) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.Update(ctx, obj, opts...)
}

func (f *fenced) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.Patch(ctx, obj, patch, opts...)
}

func (f *fenced) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.Apply(ctx, obj, opts...)
}

func (f *fenced) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.Client.DeleteAllOf(ctx, obj, opts...)
}

func (f *fenced) Status() client.SubResourceWriter {
	return &fencedSub{SubResourceClient: f.Client.SubResource("status"), l: f.l}
}

func (f *fenced) SubResource(name string) client.SubResourceClient {
	return &fencedSub{SubResourceClient: f.Client.SubResource(name), l: f.l}
}

type fencedSub struct {
	client.SubResourceClient
	l *Lock
}

func (f *fencedSub) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.SubResourceClient.Create(ctx, obj, sub, opts...)
}

func (f *fencedSub) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.SubResourceClient.Update(ctx, obj, opts...)
}

func (f *fencedSub) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.SubResourceClient.Patch(ctx, obj, patch, opts...)
}

func (f *fencedSub) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	ctx, cancel, err := f.l.fence(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return f.SubResourceClient.Apply(ctx, obj, opts...)
}
