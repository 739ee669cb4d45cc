package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/policy"
)

// APIKeyValidator refuses, at apply time, an APIKey that its class does not
// allow or that would exceed its owner's active-key limit, so that kubectl
// and GitOps tools show the error at once. The controller enforces the same
// rules for races and for clusters without the webhook; the webhook fails
// open and never blocks revocation or deletion.
type APIKeyValidator struct {
	// Client reads classes and the owner's keys from the cache.
	Client client.Reader
	// APIReader, when set, reads from the API server a class a key names
	// that the cache does not have (yet): a class applied in the same
	// kubectl apply as its first key.
	APIReader client.Reader
	// Namespaces reads Namespace objects; Client when nil.
	Namespaces client.Reader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// +kubebuilder:webhook:path=/validate-keywarden-dev-v1alpha1-apikey,mutating=false,failurePolicy=ignore,sideEffects=None,groups=keywarden.dev,resources=apikeys,verbs=create;update,versions=v1alpha1,name=vapikey.keywarden.dev,admissionReviewVersions=v1,timeoutSeconds=5

// SetupWebhookWithManager registers the validator with the manager's
// webhook server.
func (v *APIKeyValidator) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &keywardenv1alpha1.APIKey{}).WithValidator(v).Complete()
}

var _ admission.Validator[*keywardenv1alpha1.APIKey] = &APIKeyValidator{}

// ValidateCreate checks the class's rules and the owner's limit.
func (v *APIKeyValidator) ValidateCreate(ctx context.Context, k *keywardenv1alpha1.APIKey) (admission.Warnings, error) {
	pol, err := v.checkClass(ctx, k)
	if err != nil {
		return nil, err
	}
	return nil, v.checkLimit(ctx, k, pol)
}

// ValidateUpdate checks what the update changes. For a key not issued yet:
// the class's rules when the role, scopes, expiry or class change, the
// limit when the owner changes. For an issued key: the change as the
// controller would judge it against the key's grant (policy.Decide), with
// the same message. Revoking is always allowed.
func (v *APIKeyValidator) ValidateUpdate(ctx context.Context, old, k *keywardenv1alpha1.APIKey) (admission.Warnings, error) {
	if lifecycle.Revoked(k) || !k.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	if lifecycle.Issued(&old.Status) {
		return nil, v.checkGrant(ctx, old, k)
	}
	o, n := old.Spec, k.Spec
	policyFields := o.Role != n.Role || o.ClassName != n.ClassName || !slices.Equal(o.Scopes, n.Scopes) ||
		!equality.Semantic.DeepEqual(o.Lifetime, n.Lifetime) || !equality.Semantic.DeepEqual(o.ExpiresAt, n.ExpiresAt)
	if !policyFields && o.Owner == n.Owner {
		return nil, nil
	}
	pol, err := v.checkClass(ctx, k)
	if err != nil || o.Owner == n.Owner {
		return nil, err
	}
	return nil, v.checkLimit(ctx, k, pol)
}

// ValidateDelete allows every deletion.
func (v *APIKeyValidator) ValidateDelete(context.Context, *keywardenv1alpha1.APIKey) (admission.Warnings, error) {
	return nil, nil
}

// classes lists the classes from the cache, with each of the named ones
// the cache does not have read from the API server, so that a class is
// never taken for missing because the cache lags behind its creation.
func (v *APIKeyValidator) classes(ctx context.Context, named ...string) ([]keywardenv1alpha1.APIKeyClass, error) {
	var classes keywardenv1alpha1.APIKeyClassList
	if err := v.Client.List(ctx, &classes); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing APIKeyClasses: %w", err))
	}
	for _, name := range named {
		if name == "" || v.APIReader == nil || slices.ContainsFunc(classes.Items, func(c keywardenv1alpha1.APIKeyClass) bool { return c.Name == name }) {
			continue
		}
		var c keywardenv1alpha1.APIKeyClass
		switch err := v.APIReader.Get(ctx, client.ObjectKey{Name: name}, &c); {
		case err == nil:
			classes.Items = append(classes.Items, c)
		case !apierrors.IsNotFound(err):
			return nil, apierrors.NewInternalError(fmt.Errorf("reading APIKeyClass %s: %w", name, err))
		}
	}
	return classes.Items, nil
}

func (v *APIKeyValidator) checkClass(ctx context.Context, k *keywardenv1alpha1.APIKey) (policy.Policy, error) {
	classes, err := v.classes(ctx, k.Spec.ClassName)
	if err != nil {
		return policy.Policy{}, err
	}
	pol, viol := policy.Resolve(k.Spec.ClassName, classes)
	if viol == nil {
		viol = pol.Check(&k.Spec, v.now())
	}
	if viol == nil {
		if viol, err = namespaceViolation(ctx, v.namespaces(), pol, k.Namespace); err != nil {
			return pol, apierrors.NewInternalError(err)
		}
	}
	if viol != nil {
		return pol, apierrors.NewBadRequest(viol.Message)
	}
	return pol, nil
}

// checkGrant refuses a change of an issued key's spec that the controller
// would not grant, with the message the key's Stalled condition would
// show. A refusal that the spec already earned before this update (its
// class changed since, or the webhook was down) does not block updates
// that add none, such as taking part of a change back.
func (v *APIKeyValidator) checkGrant(ctx context.Context, old, k *keywardenv1alpha1.APIKey) error {
	classes, err := v.classes(ctx, k.Spec.ClassName, old.Spec.ClassName, old.Status.ClassName)
	if err != nil {
		return err
	}
	granted := policy.Baseline(&old.Spec, &old.Status, policy.GrantClass(&old.Status, classes), v.now())
	issuedAt := v.now()
	if old.Status.IssuedAt != nil {
		issuedAt = old.Status.IssuedAt.Time
	}
	var listErr error
	decide := func(spec *keywardenv1alpha1.APIKeySpec) policy.Decision {
		pol, viol := policy.ResolveIssued(spec, granted, classes)
		if viol == nil {
			var err error
			if viol, err = namespaceViolation(ctx, v.namespaces(), pol, k.Namespace); err != nil {
				listErr = err
			}
		}
		return policy.Decide(granted, spec, pol, viol, issuedAt, func(owner string) *policy.Violation {
			limitViol, err := v.limit(ctx, k, owner, pol)
			if err != nil {
				listErr = err
			}
			return limitViol
		})
	}
	d := decide(&k.Spec)
	if d.Refused == nil {
		return listErr
	}
	before := map[string]bool{}
	for _, r := range decide(&old.Spec).Refusals {
		before[r.Message] = true
	}
	switch {
	case listErr != nil:
		return listErr
	case slices.ContainsFunc(d.Refusals, func(r *policy.Violation) bool { return !before[r.Message] }):
		return apierrors.NewBadRequest(d.Refused.Message)
	}
	return nil
}

func (v *APIKeyValidator) checkLimit(ctx context.Context, k *keywardenv1alpha1.APIKey, pol policy.Policy) error {
	if lifecycle.Revoked(k) {
		return nil
	}
	viol, err := v.limit(ctx, k, k.Spec.Owner, pol)
	if err != nil {
		return err
	}
	if viol != nil {
		return apierrors.NewBadRequest(viol.Message)
	}
	return nil
}

// limit reports whether the owner has room for the key under its limit.
func (v *APIKeyValidator) limit(ctx context.Context, k *keywardenv1alpha1.APIKey, owner string, pol policy.Policy) (*policy.Violation, error) {
	var peers keywardenv1alpha1.APIKeyList
	if err := v.Client.List(ctx, &peers, ownerKeysIn(pol, k.Namespace, owner)...); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("listing the keys of owner %s: %w", owner, err))
	}
	var classes keywardenv1alpha1.APIKeyClassList
	if pol.LimitAcrossNamespaces {
		if err := v.Client.List(ctx, &classes); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("listing APIKeyClasses: %w", err))
		}
	}
	peers.Items = peersUnder(pol, policy.DefaultClassName(classes.Items), peers.Items)
	self := lifecycle.HolderOf(k)
	if self.Created.IsZero() {
		// A new key queues after every key that exists.
		self.Created = v.now().Add(time.Hour)
	}
	if ok, ahead, _ := lifecycle.AdmitAmong(self, peers.Items, nil, nil, pol.MaxActiveKeysPerOwner); !ok {
		return pol.Limit(owner, k.Namespace, ahead), nil
	}
	return nil, nil
}

func (v *APIKeyValidator) namespaces() client.Reader {
	if v.Namespaces != nil {
		return v.Namespaces
	}
	return v.Client
}

func (v *APIKeyValidator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}
