// Package controllers holds Keywarden's reconcilers.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/leasefence"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/seal"
)

// APIKeyReconciler issues, keeps, expires and revokes the keys declared by
// APIKey objects.
type APIKeyReconciler struct {
	// Client reads from the informer cache (APIKeys, and Secrets as
	// metadata only) and writes to the API server.
	client.Client
	// APIReader reads from the API server directly: Secret data, which is
	// never cached, and Secret metadata the cache may not have seen yet.
	APIReader client.Reader
	// Recorder emits Kubernetes Events.
	Recorder events.EventRecorder
	// Namespaces, when set, are the only namespaces the manager watches
	// (--namespaces): Namespace objects are then read one by one through
	// APIReader, never listed, and a key a class's namespaceSelector
	// refuses is looked at again every minute instead of on label changes.
	Namespaces []string
	// Metrics counts what passes did; nothing is counted when nil.
	Metrics *Metrics
	// Seals seals the Secrets the controller writes and proves the seal of
	// a Secret before its key is adopted.
	Seals *seal.Store
	// Clock is the time source; the real clock when nil.
	Clock clock.PassiveClock
	// Lease, when set, is the leader lease Client's writes are fenced by:
	// while this replica may no longer lead, passes wait instead of
	// failing on every write.
	Lease *leasefence.Lock
	// MaxConcurrentReconciles is how many APIKeys are reconciled at once.
	MaxConcurrentReconciles int
	// ScheduledRotationsPerSecond paces the scheduled rotations the
	// controller starts (DefaultScheduledRotationsPerSecond when 0).
	ScheduledRotationsPerSecond float64

	// owners serialises the admission decisions of each owner's keys.
	owners keyedMutex
	// written holds the versions of APIKeys this process has just written
	// over, so that passes started from them are skipped.
	written staleVersions
	// admitted holds the keys this process admitted under their owner's
	// limit until the cache shows them issued.
	admitted admissions
	// next holds the values of the next keys of rotations this process
	// recorded, until they are in their Secrets.
	next nextKeys
	// routine paces scheduled rotations; none when nil.
	routine *routineGate
}

// staleRecheck is when a pass skipped for a stale cache looks again, should
// the informer's event for the write never come.
const staleRecheck = time.Second

// leaseRecheck is when a pass put off for an uncertain lease looks again.
const leaseRecheck = time.Second

// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeyclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers the reconciler. Secrets are watched as metadata
// only; the manager's cache is expected to select only Secrets labelled
// app.kubernetes.io/managed-by=keywarden (see cmd).
func (r *APIKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Seals == nil {
		return errors.New("the APIKey controller needs a sealing-key store")
	}
	r.routine = newRoutineGate(r.ScheduledRotationsPerSecond)
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &keywardenv1alpha1.APIKey{}, ownerIndex,
		func(o client.Object) []string { return []string{o.(*keywardenv1alpha1.APIKey).GrantedOwner()} })
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&keywardenv1alpha1.APIKey{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return !routineKeyUpdate(e) },
		})).
		// Routine updates of a key go behind the rest (see priority.go).
		Watches(&keywardenv1alpha1.APIKey{}, behindWhen{&handler.EnqueueRequestForObject{}, routineKeyUpdate},
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				DeleteFunc:  func(event.DeleteEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
				UpdateFunc:  routineKeyUpdate,
			})).
		WatchesMetadata(&corev1.Secret{}, behindWhen{handler.EnqueueRequestsFromMapFunc(keyOfSecret), routineSecretUpdate}).
		Watches(&keywardenv1alpha1.APIKey{}, handler.EnqueueRequestsFromMapFunc(r.refusedPeers),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
				UpdateFunc:  freesPlace,
			})).
		Watches(&keywardenv1alpha1.APIKeyClass{}, handler.EnqueueRequestsFromMapFunc(r.keysOfClassChange))
	if len(r.Namespaces) == 0 {
		b = b.WatchesMetadata(namespaceMetadata(), handler.EnqueueRequestsFromMapFunc(r.keysOfNamespaceChange),
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).Complete(r)
}

// namespaceReader reads Namespaces: from the cache, or, when the manager
// watches only some namespaces, one by one from the API server.
func (r *APIKeyReconciler) namespaceReader() client.Reader {
	if len(r.Namespaces) > 0 {
		return r.APIReader
	}
	return r.Client
}

// namespaceMetadata is a Namespace as its metadata: what a class's
// namespaceSelector reads.
func namespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// Reconcile names the whole life of a key: it observes the APIKey and its
// world, decides in one pure function what the key's status, Secret,
// events and next wake-up are (lifecycle.Decide), acts on the Secret, and
// writes the status once, at the end of the pass. An action that learns
// something (the Secret it created, one it ran into) adds it to what was
// observed, and the pass decides again.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := &keywardenv1alpha1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.forget(req.NamespacedName)
			r.admitted.forget(req.NamespacedName)
			r.next.forget(req.NamespacedName)
			if r.routine != nil {
				r.routine.forget(req.NamespacedName)
			}
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Lease.Held() {
		// Woken from a pause longer than its lease, or cut off from the
		// API server: another replica may lead, and this one's cache may
		// be from before. It steps down or renews within the renew
		// deadline; the writes of a pass already under way are refused.
		return ctrl.Result{RequeueAfter: leaseRecheck}, nil
	}
	if r.written.stale(req.NamespacedName, key.ResourceVersion) {
		// This process wrote a newer version, which the cache has not
		// delivered yet; its event starts the next pass.
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	}
	if key.Status.KeyHash != "" || !key.DeletionTimestamp.IsZero() {
		r.admitted.forget(req.NamespacedName)
	}
	if !key.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, key)
	}
	var replaced []string
	if !controllerutil.ContainsFinalizer(key, keywardenv1alpha1.Finalizer) {
		base := key.DeepCopy()
		controllerutil.AddFinalizer(key, keywardenv1alpha1.Finalizer)
		if err := r.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		replaced = append(replaced, base.ResourceVersion)
		r.written.record(req.NamespacedName, replaced)
	}

	o, err := r.observe(ctx, key)
	if err != nil {
		return r.finish(ctx, key, lifecycle.Decision{Status: *key.Status.DeepCopy()}, replaced, err, "")
	}
	d, err := r.decideAndAct(ctx, o)
	return r.finish(ctx, key, d, replaced, err, o.Policy.ClassName)
}

// maxRounds bounds the decisions of one pass: issuing after deleting a
// tampered Secret and running into another takes four.
const maxRounds = 8

// decideAndAct decides, acts on the Secret, and decides again while an
// action learns something the decision depends on.
func (r *APIKeyReconciler) decideAndAct(ctx context.Context, o *lifecycle.Observed) (lifecycle.Decision, error) {
	var reserved bool
	for range maxRounds {
		d, err := r.decide(ctx, o, &reserved)
		if err != nil {
			return d, err
		}
		more, err := r.act(ctx, o, &d)
		if err != nil || !more {
			return d, err
		}
	}
	return lifecycle.Decision{Status: *o.Key.Status.DeepCopy()}, errors.New("the pass did not settle; retrying")
}

// decide decides, reading the keys of each owner the decision asks for
// and taking the place it reserves, once (reserved). An owner's lock is
// held from reading its keys until the place is reserved, never while the
// Secret is written, and for one owner at a time.
func (r *APIKeyReconciler) decide(ctx context.Context, o *lifecycle.Observed, reserved *bool) (lifecycle.Decision, error) {
	locked, unlock := "", func() {}
	defer func() { unlock() }()
	for {
		d := lifecycle.Decide(o)
		if d.Err != nil {
			return d, d.Err
		}
		need := d.NeedOwner
		if rs := d.Reserve; need == "" && rs != nil && !*reserved && rs.Owner != locked {
			// Decided from an owner's keys read under a lock released
			// since: read them again under it.
			need = rs.Owner
		}
		if need == "" {
			if rs := d.Reserve; rs != nil && !*reserved {
				nn, ownerKey := client.ObjectKeyFromObject(o.Key), ownerPlace(o.Policy, o.Key.Namespace, rs.Owner)
				if rs.Move {
					r.admitted.reserveMove(nn, o.Key.UID, ownerKey)
				} else {
					r.admitted.reserve(nn, o.Key.UID)
				}
				*reserved = true
			}
			return d, nil
		}
		unlock()
		var err error
		if unlock, err = r.observeOwner(ctx, o, need); err != nil {
			return d, err
		}
		locked = need
	}
}

// finish writes the decided status with the conditions of its outcome (or
// of the pass's error) if it changed, and emits the decision's events once
// the status is persisted.
func (r *APIKeyReconciler) finish(ctx context.Context, key *keywardenv1alpha1.APIKey, d lifecycle.Decision, replaced []string, err error, class string) (ctrl.Result, error) {
	if d.Hold && err == nil {
		// Waiting for a restore's status: nothing is written meanwhile.
		return ctrl.Result{RequeueAfter: d.RequeueAfter}, nil
	}
	base := key.DeepCopy()
	o := d.Outcome
	o.Err = err
	if err != nil {
		// A failed pass records no transition (the phase stays as it
		// was): its retry decides them again, and only the pass that
		// succeeds emits their Events and writes them into the history.
		d.Status.History = base.Status.History
		d.Events = nil
	}
	key.Status = d.Status
	lifecycle.SetConditions(&key.Status, key.Generation, o)
	after := d.RequeueAfter
	if !equality.Semantic.DeepEqual(base.Status, key.Status) {
		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		switch perr := r.Status().Patch(ctx, key, patch); {
		case perr == nil:
			r.written.record(client.ObjectKeyFromObject(key), append(replaced, base.ResourceVersion))
		case apierrors.IsConflict(perr) && err == nil:
			// The pass started from a copy that is no longer current
			// (the cache lags behind another writer): the newer version
			// triggers a pass of its own, and this one's effects are
			// idempotent. Its events are not emitted, and an admission it
			// made stands until the next pass decides again.
			ctrl.LoggerFrom(ctx).V(1).Info("Status changed during the pass; retrying")
			if after == 0 || after > 100*time.Millisecond {
				after = 100 * time.Millisecond
			}
			return ctrl.Result{RequeueAfter: after}, nil
		default:
			return ctrl.Result{}, kerrors.NewAggregate([]error{err, fmt.Errorf("writing status: %w", perr)})
		}
	}
	r.settleAdmission(key, err)
	if err == nil {
		// A failed pass is retried and decides again: only the pass that
		// succeeds is counted.
		r.Metrics.recordPass(base, key, d.Events, class)
	}
	for _, e := range d.Events {
		r.Recorder.Eventf(key, nil, e.Type, e.Reason, e.Action, "%s", e.Note)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return routineResult(after, d.Routine), nil
}

// settleAdmission confirms the admission of a key whose status now records
// it issued, and forgets that of a key the pass left unissued without an
// error. A pass that failed keeps its admission: it may have written the
// key's Secret, and its retry decides again.
func (r *APIKeyReconciler) settleAdmission(key *keywardenv1alpha1.APIKey, err error) {
	nn := client.ObjectKeyFromObject(key)
	switch {
	case key.Status.KeyHash != "":
		r.admitted.confirm(nn)
	case err == nil:
		r.admitted.forget(nn)
	}
}
