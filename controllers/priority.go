package controllers

import (
	"context"
	"time"

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
// its spec (generation) nor its deletion changed, and no revocation
// appeared in its status.
func routineKeyUpdate(e event.UpdateEvent) bool {
	old, ok1 := e.ObjectOld.(*keywardenv1alpha1.APIKey)
	cur, ok2 := e.ObjectNew.(*keywardenv1alpha1.APIKey)
	if !ok1 || !ok2 {
		return false
	}
	return old.Generation == cur.Generation &&
		old.DeletionTimestamp.Equal(cur.DeletionTimestamp) &&
		(old.Status.Revocation == nil) == (cur.Status.Revocation == nil)
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
// for routine work.
func routineResult(after time.Duration, routine bool) reconcile.Result {
	res := reconcile.Result{RequeueAfter: after}
	if routine && after > 0 {
		res.Priority = ptr.To(handler.LowPriority)
	}
	return res
}

var _ handler.EventHandler = behindWhen{}
