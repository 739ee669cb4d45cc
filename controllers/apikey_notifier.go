package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/leasefence"
	"keywarden.dev/keywarden/internal/notify"
	"keywarden.dev/keywarden/internal/policy"
)

// Delivery timing: a receiver whose delivery failed is tried again after
// 1 s, doubling up to a minute; a class whose shared secret cannot be
// read is looked at again every 30 s; a key whose receiver is busy with
// another key's notification waits half a second.
const (
	notifyRetryFirst = time.Second
	notifyRetryMax   = time.Minute
	notifySecretWait = 30 * time.Second
	notifyBusyWait   = 500 * time.Millisecond
)

// NotifyReconciler delivers the notifications of keys whose class names a
// receiver, in its own controller and queue: a receiver that hangs or
// fails holds up only notifications, never a key's issue, revocation or
// verification. What each key's receiver acknowledged is recorded in the
// key's status.notified, where a restarted or newly elected controller
// finds it: a notification is sent at least once, with the same id each
// time. A deleted key's last notifications (its deletion's among them)
// are kept in the leader's memory only: best effort, for an hour.
type NotifyReconciler struct {
	// Client reads keys and classes from the cache and writes
	// status.notified (fenced by the lease).
	client.Client
	// Secrets reads the classes' shared secrets from the API server: the
	// manager's cache holds only keys' Secrets.
	Secrets client.Reader
	// Namespace holds the shared secrets: the controller's own.
	Namespace string
	Sender    *notify.Sender
	Lease     *leasefence.Lock
	Clock     clock.Clock
	// MaxConcurrentReconciles is how many keys' notifications are sent at
	// once; 4 when zero.
	MaxConcurrentReconciles int
	// Delivered counts deliveries by class and result, when set.
	Delivered *prometheus.CounterVec

	mu        sync.Mutex
	receivers map[string]*receiverState
	// gone are deleted keys, as last seen, whose notifications (their
	// deletion's among them) are still to be sent: held in memory, for
	// at most goneFor.
	gone map[types.NamespacedName]*goneKey
}

// goneKey is a deleted key as last seen, and when it was.
type goneKey struct {
	key  *keywardenv1alpha1.APIKey
	seen time.Time
}

// How long, and for how many deleted keys at once, the notifications of
// a deleted key are tried.
const (
	goneFor = time.Hour
	maxGone = 10000
)

// keyDeleted keeps the last state of a deleted key granted under a class,
// and has its notifications sent.
func (r *NotifyReconciler) keyDeleted(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	k, ok := e.Object.(*keywardenv1alpha1.APIKey)
	if !ok || k.Status.ClassName == "" {
		return
	}
	class := &keywardenv1alpha1.APIKeyClass{}
	if err := r.Get(ctx, types.NamespacedName{Name: k.Status.ClassName}, class); err != nil || class.Spec.Notifications == nil {
		return
	}
	nn := client.ObjectKeyFromObject(k)
	r.mu.Lock()
	if r.gone == nil {
		r.gone = map[types.NamespacedName]*goneKey{}
	}
	full := len(r.gone) >= maxGone
	if !full {
		r.gone[nn] = &goneKey{key: k.DeepCopy(), seen: r.Clock.Now()}
	}
	r.mu.Unlock()
	if full {
		logf.FromContext(ctx).Info("Not sending the notifications of a deleted key: too many deleted keys wait for theirs",
			"namespace", k.Namespace, "name", k.Name, "waiting", maxGone)
		return
	}
	q.Add(reconcile.Request{NamespacedName: nn})
}

// NewNotificationMetrics registers the delivery counter with reg.
func NewNotificationMetrics(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keywarden_notifications_total",
		Help: "Notifications of keys' lifecycle sent to their class's receiver, by class and result (delivered, failed, no_secret).",
	}, []string{"class", "result"})
	return c, reg.Register(c)
}

// SetupWithManager runs the notifier as the controller apikey-notify.
func (r *NotifyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Sender == nil {
		r.Sender = &notify.Sender{}
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("apikey-notify").
		For(&keywardenv1alpha1.APIKey{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(e event.CreateEvent) bool { return classed(e.Object) },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
			UpdateFunc:  func(e event.UpdateEvent) bool { return classed(e.ObjectNew) && notifiable(e.ObjectOld, e.ObjectNew) },
		})).
		Watches(&keywardenv1alpha1.APIKeyClass{}, handler.EnqueueRequestsFromMapFunc(r.keysOfClass),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(e event.UpdateEvent) bool {
					o, n := e.ObjectOld.(*keywardenv1alpha1.APIKeyClass), e.ObjectNew.(*keywardenv1alpha1.APIKeyClass)
					return n.Status.NotifyingSince != nil && (o.Status.NotifyingSince == nil || o.Generation != n.Generation)
				},
				CreateFunc:  func(e event.CreateEvent) bool { return false },
				DeleteFunc:  func(event.DeleteEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		// A key's deletion: its last state is kept for the notifications
		// still due and the deletion's own.
		Watches(&keywardenv1alpha1.APIKey{}, handler.Funcs{DeleteFunc: r.keyDeleted}).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// classed is whether a key is granted under a class: only such a key can
// have a receiver.
func classed(o client.Object) bool {
	k, ok := o.(*keywardenv1alpha1.APIKey)
	return ok && k.Status.ClassName != ""
}

// notifiable is whether an update can make a notification due or change
// what was acknowledged: its history, its expiry, its phase, its class or
// its acknowledgements changed. A use recorded or a label does not.
func notifiable(o, n client.Object) bool {
	old, ok1 := o.(*keywardenv1alpha1.APIKey)
	cur, ok2 := n.(*keywardenv1alpha1.APIKey)
	if !ok1 || !ok2 {
		return true
	}
	return !sameLastTransition(old, cur) ||
		!old.Status.ExpiresAt.Equal(cur.Status.ExpiresAt) || old.Status.Phase != cur.Status.Phase ||
		old.Status.ClassName != cur.Status.ClassName || len(old.Status.Notified) != len(cur.Status.Notified)
}

// sameLastTransition is whether two states of a key end their history
// with the same transition (history is capped, so its length alone does
// not tell).
func sameLastTransition(a, b *keywardenv1alpha1.APIKey) bool {
	ha, hb := a.Status.History, b.Status.History
	if len(ha) != len(hb) {
		return false
	}
	if len(ha) == 0 {
		return true
	}
	x, y := ha[len(ha)-1], hb[len(hb)-1]
	return x.Event == y.Event && x.At.Equal(&y.At)
}

// keysOfClass enqueues the keys granted under a class that began
// notifying or changed.
func (r *NotifyReconciler) keysOfClass(ctx context.Context, obj client.Object) []reconcile.Request {
	var list keywardenv1alpha1.APIKeyList
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Status.ClassName == obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// Reconcile sends the key's due notifications that its receiver has not
// acknowledged, in order, and records those it acknowledged in one write;
// a failure stops the pass, which is tried again later from the first
// one not acknowledged. It then waits for the key's next expiry warning.
//
// A class's receiver is sent one notification at a time, and after a
// failure nothing until its backoff ends: a receiver that hangs holds one
// worker, never the notifications of other classes, and one that is down
// is tried by one key, not by every key that has something for it.
func (r *NotifyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.Lease != nil && !r.Lease.Held() {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	key := &keywardenv1alpha1.APIKey{}
	err := r.Get(ctx, req.NamespacedName, key)
	if gone := r.goneKey(req.NamespacedName); gone != nil && (apierrors.IsNotFound(err) || err == nil && key.UID != gone.key.UID) {
		return r.reconcileGone(ctx, req.NamespacedName, gone)
	}
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if key.Status.ClassName == "" {
		return ctrl.Result{}, nil
	}
	class := &keywardenv1alpha1.APIKeyClass{}
	if err := r.Get(ctx, types.NamespacedName{Name: key.Status.ClassName}, class); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if class.Spec.Notifications == nil || class.Status.NotifyingSince == nil {
		return ctrl.Result{}, nil
	}
	warning := policy.FromClass(class).ExpiryWarning
	now := r.Clock.Now()
	due := notify.Due(key, warning, class.Status.NotifyingSince.Time, now)
	pending := notify.Pending(due, key.Status.Notified)
	next := ctrl.Result{}
	if at := notify.NextWarning(key, warning, now); !at.IsZero() {
		next.RequeueAfter = at.Sub(now) + time.Second
	}
	if len(pending) == 0 {
		return next, nil
	}
	d := r.deliver(ctx, class, due, pending, key.Status.Notified, now)
	if d.acknowledged {
		if err := r.acknowledge(ctx, key, d.notified); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch {
	case d.wait > 0:
		return ctrl.Result{RequeueAfter: d.wait}, nil
	case d.stopped:
		// Looked at again by whoever leads.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return next, nil
}

// delivery is what a pass of deliver did.
type delivery struct {
	// notified are the ids acknowledged, those the receiver took in this
	// pass among them; acknowledged, whether it took any.
	notified     []string
	acknowledged bool
	// claimed: the class's receiver was free to be sent to.
	claimed bool
	// stopped: the replica stopped leading before all were sent.
	stopped bool
	// wait, when set, is how long before the key is looked at again: its
	// receiver busy with another key, the class without a shared secret,
	// or the backoff after a failure.
	wait time.Duration
}

// deliver sends the pending notifications to the class's receiver, in
// order, once the receiver is claimed, and stops at the first failure.
// The receiver is left alone afterwards for its backoff when one failed.
func (r *NotifyReconciler) deliver(ctx context.Context, class *keywardenv1alpha1.APIKeyClass, due, pending []notify.Event, notified []string, now time.Time) delivery {
	d := delivery{notified: notified}
	if d.wait = r.claim(class.Name, now); d.wait > 0 {
		return d
	}
	d.claimed = true
	log := logf.FromContext(ctx).WithValues("class", class.Name)
	secrets, err := r.signingSecrets(ctx, class.Name, now)
	if err != nil {
		r.count(class.Name, "no_secret")
		r.release(class.Name, now, notifySecretWait)
		log.Info("Not sending the class's notifications: its shared secret cannot be read; create it with kubectl keywarden shared-secret rotate "+class.Name,
			"secret", r.Namespace+"/"+notify.SecretName(class.Name), "reason", err.Error(), "after", notifySecretWait.String())
		d.wait = notifySecretWait
		return d
	}
	n := class.Spec.Notifications
	var failed error
	for _, e := range pending {
		// A replica that stopped leading sends nothing more: the next
		// leader sends what is left.
		if r.Lease != nil && !r.Lease.Held() {
			d.stopped = true
			break
		}
		if err := r.Sender.Send(ctx, n.URL, n.CABundle, e, secrets, r.Clock.Now()); err != nil {
			failed = fmt.Errorf("sending %s (id %s): %w", e.Type, e.ID, err)
			r.count(class.Name, "failed")
			break
		}
		r.count(class.Name, "delivered")
		d.notified, d.acknowledged = notify.Acknowledge(due, d.notified, e.ID), true
	}
	if failed != nil {
		d.wait = r.backoff(class.Name)
		log.Info("A notification was not delivered; trying again", "after", d.wait.String(), "reason", failed.Error())
	}
	r.release(class.Name, r.Clock.Now(), d.wait)
	return d
}

func (r *NotifyReconciler) goneKey(nn types.NamespacedName) *goneKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone[nn]
}

func (r *NotifyReconciler) forgetGone(nn types.NamespacedName, g *goneKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone[nn] == g {
		delete(r.gone, nn)
	}
}

// reconcileGone sends the notifications of a deleted key, from its last
// state: those still due, then its deletion. What the receiver
// acknowledges is kept with that state, in memory; a key whose receiver
// fails for longer than goneFor, or whose controller stops leading or
// restarts meanwhile, has them given up.
func (r *NotifyReconciler) reconcileGone(ctx context.Context, nn types.NamespacedName, g *goneKey) (ctrl.Result, error) {
	log := logf.FromContext(ctx).WithValues("class", g.key.Status.ClassName)
	now := r.Clock.Now()
	if now.Sub(g.seen) > goneFor {
		r.forgetGone(nn, g)
		log.Info("Gave up the notifications of a deleted key: its receiver did not take them", "after", goneFor.String())
		return ctrl.Result{}, nil
	}
	class := &keywardenv1alpha1.APIKeyClass{}
	if err := r.Get(ctx, types.NamespacedName{Name: g.key.Status.ClassName}, class); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetGone(nn, g)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if class.Spec.Notifications == nil || class.Status.NotifyingSince == nil {
		r.forgetGone(nn, g)
		return ctrl.Result{}, nil
	}
	due := notify.DueAtDeletion(g.key, policy.FromClass(class).ExpiryWarning, class.Status.NotifyingSince.Time, now)
	pending := notify.Pending(due, g.key.Status.Notified)
	if len(pending) == 0 {
		r.forgetGone(nn, g)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	d := r.deliver(ctx, class, due, pending, g.key.Status.Notified, now)
	if !d.claimed {
		return ctrl.Result{RequeueAfter: d.wait}, nil
	}
	r.mu.Lock()
	g.key.Status.Notified = d.notified
	r.mu.Unlock()
	// Looked at again: to forget it once all are taken, then to handle a
	// key created under its name since.
	return ctrl.Result{RequeueAfter: max(d.wait, time.Second)}, nil
}

// acknowledge writes status.notified alone, as a merge patch: the key's
// other status fields, which the key's controller writes, are left as
// they are whatever this pass read. Should the key have been deleted and
// created again under its name since, the ids written are of the old
// key's notifications, which the new key's never share: they hold back
// none of its notifications, and go with its first acknowledgement.
func (r *NotifyReconciler) acknowledge(ctx context.Context, key *keywardenv1alpha1.APIKey, notified []string) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"notified": notified}})
	if err != nil {
		return err
	}
	err = r.Status().Patch(ctx, key, client.RawPatch(types.MergePatchType, patch))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// signingSecrets reads the class's shared secret from the API server, at
// each pass that has something to send: a rotation, after a leak, signs
// from the next notification on. A class without one is read again only
// after notifySecretWait.
func (r *NotifyReconciler) signingSecrets(ctx context.Context, class string, now time.Time) ([][]byte, error) {
	s := &corev1.Secret{}
	if err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: notify.SecretName(class)}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errors.Join(notify.ErrNoSecret, err)
		}
		return nil, err
	}
	if s.Type != notify.SecretType {
		return nil, fmt.Errorf("%w: Secret %s/%s is of type %s, not %s", notify.ErrNoSecret, s.Namespace, s.Name, s.Type, notify.SecretType)
	}
	return notify.SigningSecrets(s, now)
}

// receiverState is what the notifier knows of a class's receiver.
type receiverState struct {
	busy     bool      // a notification is on its way to it
	failures int       // deliveries failed in a row
	retryAt  time.Time // nothing is sent to it before
}

// claim takes the class's receiver for one pass, or says how long to wait.
func (r *NotifyReconciler) claim(class string, now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.receivers == nil {
		r.receivers = map[string]*receiverState{}
	}
	st := r.receivers[class]
	if st == nil {
		st = &receiverState{}
		r.receivers[class] = st
	}
	switch {
	case st.busy:
		return notifyBusyWait
	case now.Before(st.retryAt):
		return st.retryAt.Sub(now)
	}
	st.busy = true
	return 0
}

// release gives the class's receiver back, to be sent to again after wait.
func (r *NotifyReconciler) release(class string, now time.Time, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.receivers[class]
	st.busy, st.retryAt = false, now.Add(wait)
	if wait == 0 {
		st.failures = 0
	}
}

// backoff is how long the class's receiver is left alone after another
// failure: 1 s, doubling up to a minute.
func (r *NotifyReconciler) backoff(class string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.receivers[class]
	wait := notifyRetryFirst << min(st.failures, 6)
	st.failures++
	return min(wait, notifyRetryMax)
}

func (r *NotifyReconciler) count(class, result string) {
	if r.Delivered != nil {
		r.Delivered.WithLabelValues(class, result).Inc()
	}
}
