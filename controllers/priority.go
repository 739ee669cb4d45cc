package controllers

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Routine work waits behind the rest in the controller's queue: a key
// created, revoked (in its spec, or reported in its status), deleted or
// expiring goes ahead of the passes of scheduled rotations, of the
// controller's own progress written in status, and of the verifier's
// lastUsedAt. Thousands of keys rotating at once then delay one another,
// not issuance and revocation.

// routineKeyUpdate is whether an update of an APIKey is routine: neither
// its spec (generation) nor its deletion changed, no revocation appeared
// in its status, and no rotation is under way (a rotation, once started
// at its pace, completes ahead of new work: its previous key's grace
// begins only then).
func routineKeyUpdate(e event.UpdateEvent) bool {
	old, ok1 := e.ObjectOld.(*keywardenv1alpha1.APIKey)
	cur, ok2 := e.ObjectNew.(*keywardenv1alpha1.APIKey)
	if !ok1 || !ok2 {
		return false
	}
	rotating := cur.Status.Rotation != nil && cur.Status.Rotation.Next != nil
	return old.Generation == cur.Generation &&
		old.DeletionTimestamp.Equal(cur.DeletionTimestamp) &&
		(old.Status.Revocation == nil) == (cur.Status.Revocation == nil) &&
		!rotating
}

// freesPlace is whether an event of an APIKey may free a place under its
// owner's active-key limit for the owner's refused keys: it went, or its
// phase or its granted owner changed. Other updates (a label, a use
// recorded) free none, and would make every refused key of the owner be
// looked at again.
func freesPlace(e event.UpdateEvent) bool {
	old, ok1 := e.ObjectOld.(*keywardenv1alpha1.APIKey)
	cur, ok2 := e.ObjectNew.(*keywardenv1alpha1.APIKey)
	if !ok1 || !ok2 {
		return true
	}
	return old.Status.Phase != cur.Status.Phase || old.GrantedOwner() != cur.GrantedOwner() ||
		!old.DeletionTimestamp.Equal(cur.DeletionTimestamp)
}

// routineSecretUpdate is whether an update of a key's Secret is routine:
// every update is (a rotation writing the next key, or someone changing
// it, which the next pass repairs); its creation and deletion are not.
func routineSecretUpdate(event.UpdateEvent) bool { return true }

// behindWhen enqueues as its handler does, but an update that routine
// says is routine goes behind the other requests.
type behindWhen struct {
	handler.EventHandler
	routine func(event.UpdateEvent) bool
}

func (b behindWhen) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok && b.routine(e) {
		q = lowPriority{pq}
	}
	b.EventHandler.Update(ctx, e, q)
}

// lowPriority adds every request at low priority (or lower).
type lowPriority struct {
	priorityqueue.PriorityQueue[reconcile.Request]
}

func (q lowPriority) AddWithOpts(o priorityqueue.AddOpts, items ...reconcile.Request) {
	if o.Priority == nil || *o.Priority > handler.LowPriority {
		o.Priority = ptr.To(handler.LowPriority)
	}
	q.PriorityQueue.AddWithOpts(o, items...)
}

func (q lowPriority) Add(r reconcile.Request) { q.AddWithOpts(priorityqueue.AddOpts{}, r) }

func (q lowPriority) AddAfter(r reconcile.Request, d time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{After: d}, r)
}

func (q lowPriority) AddRateLimited(r reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{RateLimited: true}, r)
}

// routineResult is a pass's result, behind the rest when its wake-up is
// for routine work. Otherwise it is at the default priority, whatever the
// priority the pass was handed out at: a key's expiry is not routine
// because the pass that asked for it was.
func routineResult(after time.Duration, routine bool) reconcile.Result {
	res := reconcile.Result{RequeueAfter: after}
	if after > 0 {
		res.Priority = ptr.To(0)
		if routine {
			res.Priority = ptr.To(handler.LowPriority)
		}
	}
	return res
}

var _ handler.EventHandler = behindWhen{}

// DefaultScheduledRotationsPerSecond is how many scheduled rotations the
// controller starts a second, at most, by default.
const DefaultScheduledRotationsPerSecond = 10

// routineGate paces the scheduled rotations the controller starts: each
// key due takes the next free moment, and waits for it. Rotations asked
// for in a key's spec are not paced.
type routineGate struct {
	mu     sync.Mutex
	lim    *rate.Limiter
	booked map[types.NamespacedName]booking
}

// booking is a key's moment, and the reservation that holds it.
type booking struct {
	at time.Time
	r  *rate.Reservation
}

// staleBooking is how long past its moment a booking is still honoured:
// a key is woken at its moment, and one that comes much later (it rotated
// for another reason meanwhile, and is due again) takes a new moment.
const staleBooking = time.Minute

func newRoutineGate(perSecond float64) *routineGate {
	if perSecond <= 0 {
		perSecond = DefaultScheduledRotationsPerSecond
	}
	return &routineGate{lim: rate.NewLimiter(rate.Limit(perSecond), 1), booked: map[types.NamespacedName]booking{}}
}

// admit reports whether the key may start its scheduled rotation now, and
// otherwise how long until its moment.
func (g *routineGate) admit(key types.NamespacedName, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.booked[key]; ok {
		switch {
		case now.Before(b.at):
			return false, b.at.Sub(now)
		case now.Sub(b.at) < staleBooking:
			delete(g.booked, key)
			return true, 0
		}
		delete(g.booked, key)
	}
	r := g.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	g.booked[key] = booking{at: now.Add(d), r: r}
	return false, d
}

// forget drops a key's moment and gives it back to the pace (the key is
// gone).
func (g *routineGate) forget(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.booked[key]; ok {
		b.r.Cancel()
		delete(g.booked, key)
	}
}
