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
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/policy"
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
	// Seals seals the Secrets the controller writes and proves the seal of
	// a Secret before its key is adopted.
	Seals *seal.Store
	// Clock is the time source; the real clock when nil.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles is how many APIKeys are reconciled at once.
	MaxConcurrentReconciles int

	// owners serialises the admission decisions of each owner's keys.
	owners keyedMutex
	// written holds the versions of APIKeys this process has just written
	// over, so that passes started from them are skipped.
	written staleVersions
	// admitted holds the keys this process admitted under their owner's
	// limit until the cache shows them issued.
	admitted admissions
}

// staleRecheck is when a pass skipped for a stale cache looks again, should
// the informer's event for the write never come.
const staleRecheck = time.Second

// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;delete
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
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &keywardenv1alpha1.APIKey{}, ownerIndex,
		func(o client.Object) []string { return []string{ownerOf(o.(*keywardenv1alpha1.APIKey))} })
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&keywardenv1alpha1.APIKey{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&keywardenv1alpha1.APIKey{}, handler.EnqueueRequestsFromMapFunc(r.refusedPeers)).
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

// pass carries one reconcile pass of one APIKey: the object as read, the
// status being computed, and what to do once the status is written.
type pass struct {
	key     *keywardenv1alpha1.APIKey
	now     time.Time
	outcome lifecycle.Outcome
	// requeueAfter schedules the next pass for a known moment (an expiry);
	// set through requeue.
	requeueAfter time.Duration
	// events are emitted once the status that reports them is persisted.
	events []event
	// policy is the key's class policy, once resolved, or violation why
	// it does not resolve.
	policy    policy.Policy
	violation *policy.Violation
	// refused, for an issued key, is the change of its spec that was not
	// granted.
	refused *lifecycle.Refusal
	// replaced are the versions of the key the pass's writes replaced.
	replaced []string
	// replacedTampered is set once the pass deleted a Secret whose value
	// Keywarden did not seal.
	replacedTampered bool
}

type event struct{ typ, reason, action, note string }

// stamp is the pass's time as status stores it, to the second, so that what
// the pass computes from it is what later passes read back.
func (p *pass) stamp() *metav1.Time {
	return &metav1.Time{Time: p.now.Truncate(time.Second)}
}

// requeue schedules the next pass within d at the latest: the earliest
// wake-up any step of the pass asks for wins.
func (p *pass) requeue(d time.Duration) {
	if d > 0 && (p.requeueAfter == 0 || d < p.requeueAfter) {
		p.requeueAfter = d
	}
}

func (p *pass) emit(typ, reason, action, note string) {
	p.events = append(p.events, event{typ, reason, action, note})
}

// phase is one step of a reconcile pass. It returns done when the pass is
// complete and later phases must not run.
type phase func(ctx context.Context, p *pass) (done bool, err error)

// Reconcile brings one APIKey towards its declared state and writes its
// status once, at the end of the pass.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	key := &keywardenv1alpha1.APIKey{}
	if err := r.Get(ctx, req.NamespacedName, key); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.forget(req.NamespacedName)
			r.admitted.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
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
	p := &pass{key: key, now: r.Clock.Now()}
	if !controllerutil.ContainsFinalizer(key, keywardenv1alpha1.Finalizer) {
		base := key.DeepCopy()
		controllerutil.AddFinalizer(key, keywardenv1alpha1.Finalizer)
		if err := r.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		p.replaced = append(p.replaced, base.ResourceVersion)
		r.written.record(req.NamespacedName, p.replaced)
	}

	base := key.DeepCopy()
	defer func() {
		retErr = r.finish(ctx, base, p, retErr)
		if retErr == nil && p.requeueAfter > 0 {
			result.RequeueAfter = p.requeueAfter
		}
	}()

	for _, step := range []phase{
		r.reconcileTerminal, r.reconcileClass, r.reconcileGrant, r.reconcileExpiry, r.reconcilePolicy, r.reconcileSecret,
	} {
		if done, err := step(ctx, p); err != nil || done {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// finish computes the conditions from the pass's outcome, writes the status
// if it changed, and emits the pass's events once the status is persisted.
func (r *APIKeyReconciler) finish(ctx context.Context, base *keywardenv1alpha1.APIKey, p *pass, err error) error {
	o := p.outcome
	o.Err = err
	if o.Phase == keywardenv1alpha1.PhaseActive {
		o.Refused = p.refused
	}
	lifecycle.SetConditions(&p.key.Status, p.key.Generation, o)
	if !equality.Semantic.DeepEqual(base.Status, p.key.Status) {
		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		switch perr := r.Status().Patch(ctx, p.key, patch); {
		case perr == nil:
			nn := client.ObjectKeyFromObject(p.key)
			p.replaced = append(p.replaced, base.ResourceVersion)
			r.written.record(nn, p.replaced)
		case apierrors.IsConflict(perr) && err == nil:
			// The pass started from a copy that is no longer current
			// (the cache lags behind another writer): the newer version
			// triggers a pass of its own, and this one's effects are
			// idempotent. Its events are not emitted, and an admission it
			// made stands until the next pass decides again.
			ctrl.LoggerFrom(ctx).V(1).Info("Status changed during the pass; retrying")
			p.requeue(100 * time.Millisecond)
			return nil
		default:
			return kerrors.NewAggregate([]error{err, fmt.Errorf("writing status: %w", perr)})
		}
	}
	r.settleAdmission(p, err)
	for _, e := range p.events {
		r.Recorder.Eventf(p.key, nil, e.typ, e.reason, e.action, "%s", e.note)
	}
	return err
}

// settleAdmission confirms the admission of a key whose status now records
// it issued, and forgets that of a key the pass left unissued without an
// error. A pass that failed keeps its admission: it may have written the
// key's Secret, and its retry decides again.
func (r *APIKeyReconciler) settleAdmission(p *pass, err error) {
	nn := client.ObjectKeyFromObject(p.key)
	switch {
	case p.key.Status.KeyHash != "":
		r.admitted.confirm(nn)
	case err == nil:
		r.admitted.forget(nn)
	}
}

// reconcileTerminal keeps Expired and Revoked keys where they are and
// revokes keys whose spec says so. It sets the Revoked phase and revokedAt,
// and deletes the Secret. A key whose status already records the phase had
// its Secret deleted by the pass that recorded it: only a Secret created
// since is left, which the cache shows (its event started this pass), so the
// API server is not asked again on every pass of every expired key.
func (r *APIKeyReconciler) reconcileTerminal(ctx context.Context, p *pass) (bool, error) {
	st := &p.key.Status
	switch {
	case st.Phase == keywardenv1alpha1.PhaseExpired:
		p.outcome = expiredOutcome(st.ExpiresAt)
		return true, r.deleteCachedSecret(ctx, p.key)
	case st.Phase == keywardenv1alpha1.PhaseRevoked:
		p.outcome = revokedOutcome()
		return true, r.deleteCachedSecret(ctx, p.key)
	case p.key.Spec.Revoked:
		if st.RevokedAt == nil {
			st.RevokedAt = p.stamp()
		}
		p.outcome = revokedOutcome()
		p.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyRevoked, "Revoke",
			"The key was revoked and its Secret deleted")
	default:
		return false, nil
	}
	return true, r.deleteSecret(ctx, p.key)
}

func revokedOutcome() lifecycle.Outcome {
	return lifecycle.Outcome{
		Phase:   keywardenv1alpha1.PhaseRevoked,
		Reason:  keywardenv1alpha1.ReasonRevoked,
		Message: "The key is revoked; create a new APIKey to restore access",
	}
}

func expiredOutcome(at *metav1.Time) lifecycle.Outcome {
	msg := "The key expired; create a new APIKey to restore access"
	if at != nil {
		msg = fmt.Sprintf("The key expired at %s; create a new APIKey to restore access", at.UTC().Format(time.RFC3339))
	}
	return lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseExpired, Reason: keywardenv1alpha1.ReasonExpired, Message: msg}
}

// reconcileExpiry expires the key when its expiry is reached (Expired
// phase, Secret deleted) and otherwise schedules the pass that will expire
// it. An issued key's expiry is its granted one; a key not issued yet knows
// only an absolute spec.expiresAt, and one being reissued keeps its grant's.
func (r *APIKeyReconciler) reconcileExpiry(ctx context.Context, p *pass) (bool, error) {
	st := &p.key.Status
	if st.IssuedAt == nil {
		st.ExpiresAt = p.key.Spec.ExpiresAt.DeepCopy()
	}
	if !policy.Expired(st.ExpiresAt, p.now) {
		if st.ExpiresAt != nil {
			// A little past the moment, so that the pass sees it expired
			// even if the clocks disagree by a hair.
			p.requeue(st.ExpiresAt.Sub(p.now) + 10*time.Millisecond)
		}
		return false, nil
	}
	p.outcome = expiredOutcome(st.ExpiresAt)
	note := "The key expired and its Secret was deleted"
	if st.KeyHash == "" {
		note = "The key expired before it was issued"
	}
	p.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyExpired, "Expire", note)
	return true, r.deleteSecret(ctx, p.key)
}
