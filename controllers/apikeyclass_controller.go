package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/policy"
)

// APIKeyClassReconciler reports in each class's status whether the class can
// be used: a default class is unusable while another class is a default too,
// and a class whose namespaceSelector cannot be evaluated admits no key.
type APIKeyClassReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeyclasses,verbs=get;list;watch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeyclasses/status,verbs=get;update;patch

// SetupWithManager registers the reconciler. Any class change re-evaluates
// every default class, since a new default makes the others ambiguous.
func (r *APIKeyClassReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&keywardenv1alpha1.APIKeyClass{}).
		Watches(&keywardenv1alpha1.APIKeyClass{}, handler.EnqueueRequestsFromMapFunc(r.defaultClasses)).
		Complete(r)
}

// Reconcile sets the class's Ready condition and observedGeneration, and
// writes its status once, when it changed.
func (r *APIKeyClassReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	class := &keywardenv1alpha1.APIKeyClass{}
	if err := r.Get(ctx, req.NamespacedName, class); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var all keywardenv1alpha1.APIKeyClassList
	if err := r.List(ctx, &all); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing APIKeyClasses: %w", err)
	}
	base := class.DeepCopy()
	ready := metav1.Condition{
		Type: keywardenv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: class.Generation,
		Reason: "Valid", Message: "The class can be used",
	}
	if defaults := policy.DefaultClasses(all.Items); class.IsDefault() && len(defaults) > 1 {
		ready.Status, ready.Reason = metav1.ConditionFalse, keywardenv1alpha1.ReasonAmbiguousDefaultClass
		ready.Message = policy.AmbiguousDefaultMessage(defaults)
	} else if problem := policy.NamespaceSelectorProblem(class); problem != "" {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, keywardenv1alpha1.ReasonInvalidNamespaceSelector, problem
	}
	apimeta.SetStatusCondition(&class.Status.Conditions, ready)
	// A class that cannot be used waits for a person to fix it: Stalled,
	// so that kstatus, Flux and Argo CD report it as failed rather than
	// as progressing for ever.
	if ready.Status == metav1.ConditionFalse {
		stalled := ready
		stalled.Type, stalled.Status = keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue
		apimeta.SetStatusCondition(&class.Status.Conditions, stalled)
	} else {
		apimeta.RemoveStatusCondition(&class.Status.Conditions, keywardenv1alpha1.ConditionStalled)
	}
	class.Status.ObservedGeneration = class.Generation
	class.Status.NotifyingSince = notifyingSince(class, time.Now())
	if equality.Semantic.DeepEqual(base.Status, class.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Status().Patch(ctx, class, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

func (r *APIKeyClassReconciler) defaultClasses(ctx context.Context, _ client.Object) []reconcile.Request {
	var all keywardenv1alpha1.APIKeyClassList
	if err := r.List(ctx, &all); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, c := range all.Items {
		if c.IsDefault() || apimeta.IsStatusConditionFalse(c.Status.Conditions, keywardenv1alpha1.ConditionReady) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
		}
	}
	return reqs
}

// notifyingSince is when the class began notifying: kept once recorded;
// its creation when it named a receiver from the start (keys created with
// it are told of from their first transition), otherwise now. Unset when
// the class names no receiver.
func notifyingSince(class *keywardenv1alpha1.APIKeyClass, now time.Time) *metav1.Time {
	switch {
	case class.Spec.Notifications == nil:
		return nil
	case class.Status.NotifyingSince != nil:
		return class.Status.NotifyingSince
	case class.Generation <= 1:
		return class.CreationTimestamp.DeepCopy()
	default:
		t := metav1.NewTime(now.Truncate(time.Second))
		return &t
	}
}
