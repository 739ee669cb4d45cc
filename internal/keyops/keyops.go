// Package keyops holds what people do to APIKeys with their own rights,
// for the kubectl plugin and the console: create a key and wait for its
// issuance, read it once, revoke and rotate keys and wait for Keywarden to
// confirm, and API errors in words a person can act on. It acts through
// the client it is given and shows nothing itself.
package keyops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/keyview"
	"keywarden.dev/keywarden/internal/near"
)

// Ops acts on APIKeys through a person's client.
type Ops struct {
	Client client.Client
	// ManagerWait is how long to wait for a manager to pick up a change
	// before saying that none seems to run.
	ManagerWait time.Duration
}

// Scheme knows Kubernetes' own kinds and Keywarden's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(keywardenv1alpha1.AddToScheme(s))
	return s
}

// Get reads one APIKey; an unknown one is an error saying it does not
// exist.
func (o Ops) Get(ctx context.Context, ns, name string) (*keywardenv1alpha1.APIKey, error) {
	var k keywardenv1alpha1.APIKey
	if err := o.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &k); err != nil {
		if apierrors.IsNotFound(err) && !isMissingResource(err) {
			return nil, o.notFound(ctx, ns, name)
		}
		return nil, Explain(err, "get", "apikeys.keywarden.dev", ns)
	}
	return &k, nil
}

// notFound says that an APIKey does not exist, and what may have been
// meant: the closest name in the namespace, or another namespace when
// this one holds none (as far as the person may list them).
func (o Ops) notFound(ctx context.Context, ns, name string) error {
	msg := fmt.Sprintf("apikey %s/%s does not exist", ns, name)
	var list keywardenv1alpha1.APIKeyList
	if err := o.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return errors.New(msg)
	}
	names := make([]string, len(list.Items))
	for i := range list.Items {
		names[i] = list.Items[i].Name
	}
	switch c := near.Closest(name, names); {
	case c != "":
		msg += fmt.Sprintf(": did you mean %s?", c)
	case len(names) == 0:
		msg += fmt.Sprintf(": namespace %s holds no APIKey; is the key in another namespace?", ns)
	}
	return errors.New(msg)
}

// Create creates the APIKey, with the API server's refusals in words.
func (o Ops) Create(ctx context.Context, k *keywardenv1alpha1.APIKey, opts ...client.CreateOption) error {
	err := o.Client.Create(ctx, k, opts...)
	switch {
	case err == nil:
		return nil
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("apikey %s/%s already exists: choose another name", k.Namespace, k.Name)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("the API server refused the key: %s", APIMessage(err))
	}
	return Explain(err, "create", "apikeys.keywarden.dev", k.Namespace)
}

// Explain turns an error of the API server into one a person can act on:
// what is missing, or which verb on which resource they may not use.
func Explain(err error, verb, resource, namespace string) error {
	where := ""
	switch {
	case namespace != "":
		where = " in namespace " + namespace
	case strings.HasPrefix(resource, "apikeys"):
		where = " across all namespaces"
	}
	var netErr *net.OpError
	switch {
	case err == nil:
		return nil
	case apimeta.IsNoMatchError(err) || isMissingResource(err):
		return errors.New("the cluster has no APIKey resource (apikeys.keywarden.dev): Keywarden's CRDs are not installed; " +
			"install Keywarden (kubectl apply -k config/default, or its Helm chart) or use the context of a cluster that has it")
	case apierrors.IsForbidden(err) && isRBAC(err):
		role := "a Role"
		if namespace == "" {
			role = "a ClusterRole (with a ClusterRoleBinding)"
		}
		return fmt.Errorf("you may not %s %s%s: ask an admin for %s that allows %q on %s (check with kubectl auth can-i %s %s%s)",
			verb, resource, where, role, verb, resource, verb, resource, nsFlag(namespace))
	case apierrors.IsForbidden(err):
		// An admission policy, a webhook or a quota: its own words.
		return fmt.Errorf("the API server refused to %s %s%s: %s", verb, resource, where, APIMessage(err))
	case apierrors.IsUnauthorized(err):
		return errors.New("the API server did not accept your credentials: log in again, or check the kubeconfig's user")
	case errors.As(err, &netErr):
		return fmt.Errorf("cannot reach the API server: %w", err)
	}
	return fmt.Errorf("%s %s%s: %w", verb, resource, where, err)
}

// nsFlag is the namespace flag of a hint: -A for every namespace.
func nsFlag(ns string) string {
	if ns == "" {
		return " -A"
	}
	return " -n " + ns
}

// authorizerRefusal is the form of the authorizer's (RBAC's) 403.
var authorizerRefusal = regexp.MustCompile(`is forbidden: User "[^"]*" cannot [a-z]+ resource "`)

// isRBAC reports whether a 403 is the authorizer's refusal rather than an
// admission policy's, a webhook's or a quota's.
func isRBAC(err error) bool {
	return authorizerRefusal.MatchString(APIMessage(err))
}

// isMissingResource reports a 404 for the resource itself, as a cluster
// without the CRD answers a list (discovery may still have the group
// cached).
func isMissingResource(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// APIMessage is the API server's message for a refused object: it names
// the fields.
func APIMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}

// poll calls f every interval until it returns true or an error, or the
// timeout passes (then it returns false).
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		done, err := f()
		if done || err != nil {
			return done, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// seen reports whether the controller has completed a pass over the key's
// current generation (issued, stalled or refused it).
func seen(k *keywardenv1alpha1.APIKey) bool {
	return k.Status.ObservedGeneration >= k.Generation && k.Status.ObservedGeneration > 0
}

// pickedUp reports whether a controller has looked at the generation at
// all: a pass that failed with a transient error leaves the generation
// observed in its conditions only.
func pickedUp(k *keywardenv1alpha1.APIKey, generation int64) bool {
	if k.Status.ObservedGeneration >= generation && k.Status.ObservedGeneration > 0 {
		return true
	}
	for _, c := range k.Status.Conditions {
		if c.ObservedGeneration >= generation && c.ObservedGeneration > 0 {
			return true
		}
	}
	return false
}

// progress says what the controller last wrote of its work on the key:
// the Reconciling condition's reason and message, or "".
func progress(k *keywardenv1alpha1.APIKey) string {
	for _, c := range k.Status.Conditions {
		if c.Type == keywardenv1alpha1.ConditionReconciling && c.Status == "True" {
			return " (" + c.Reason + ": " + c.Message + ")"
		}
	}
	return ""
}

func stalled(k *keywardenv1alpha1.APIKey) *condition {
	for _, c := range k.Status.Conditions {
		if c.Type == keywardenv1alpha1.ConditionStalled && c.Status == "True" {
			return &condition{Reason: c.Reason, Message: c.Message}
		}
	}
	return nil
}

type condition struct{ Reason, Message string }

// managerMissing is what a command says when no controller picked up a
// change in time.
func managerMissing(what string, wait time.Duration) error {
	return fmt.Errorf("%s, but no Keywarden manager picked it up within %s: is it running? (kubectl get pods -n keywarden-system)", what, wait)
}

// IssuedKey reads the key from the issued key's Secret: only a key the
// APIKey records as its current one, read again once in case a rotation
// came between. A Secret someone changed meanwhile holds a key that does
// not verify, or one they chose: nothing is shown then.
func (o Ops) IssuedKey(ctx context.Context, k *keywardenv1alpha1.APIKey) (string, *keywardenv1alpha1.APIKey, error) {
	c := o.Client
	generation := k.Generation
	for attempt := 0; ; attempt++ {
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Status.SecretRef.Name}, &secret); err != nil {
			return "", nil, fmt.Errorf("apikey %s/%s is issued, but reading its Secret %s failed: %w", k.Namespace, k.Name, k.Status.SecretRef.Name,
				Explain(err, "get", "secrets", k.Namespace))
		}
		raw := strings.TrimSpace(string(secret.Data[keywardenv1alpha1.SecretKeyField]))
		if raw != "" && keys.Check([]byte(raw)) == nil && keys.Hash(raw) == k.Status.KeyHash &&
			(k.Status.SecretRef.UID == "" || secret.UID == types.UID(k.Status.SecretRef.UID)) {
			return raw, k, nil
		}
		if attempt > 0 {
			return "", nil, fmt.Errorf("the Secret %s/%s does not hold the key apikey %s records: it was changed since issuance, and Keywarden "+
				"replaces such a key; nothing is shown, and the APIKey stays", k.Namespace, secret.Name, k.Name)
		}
		// A rotation may have come between the two reads: read the APIKey
		// again, still as it was asked for.
		var again keywardenv1alpha1.APIKey
		if err := c.Get(ctx, client.ObjectKeyFromObject(k), &again); err != nil {
			return "", nil, Explain(err, "get", "apikeys.keywarden.dev", k.Namespace)
		}
		if again.UID != k.UID || again.Generation != generation || again.Status.Phase != keywardenv1alpha1.PhaseActive || !seen(&again) || again.Status.SecretRef == nil {
			return "", nil, fmt.Errorf("apikey %s/%s changed while its key was read (it is %s): nothing is shown", k.Namespace, k.Name, keyview.Status(&again))
		}
		k = &again
	}
}

// WaitIssued waits until the key is issued as it was asked for. When it is
// refused or stalls, when no manager picks it up, or when the wait is
// interrupted, it deletes the APIKey it created and says why; when someone
// else changed or replaced the APIKey meanwhile, nothing is shown.
func (o Ops) WaitIssued(ctx context.Context, created *keywardenv1alpha1.APIKey, timeout time.Duration) (*keywardenv1alpha1.APIKey, error) {
	c := o.Client
	start := time.Now()
	var last *keywardenv1alpha1.APIKey
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		var k keywardenv1alpha1.APIKey
		if err := c.Get(ctx, client.ObjectKeyFromObject(created), &k); err != nil {
			if apierrors.IsNotFound(err) {
				return false, fmt.Errorf("apikey %s/%s was deleted while it waited to be issued", created.Namespace, created.Name)
			}
			return false, Explain(err, "get", "apikeys.keywarden.dev", created.Namespace)
		}
		if k.UID != created.UID {
			return false, fmt.Errorf("apikey %s/%s was replaced by someone else while it waited to be issued: nothing is shown", created.Namespace, created.Name)
		}
		last = &k
		if k.Generation != created.Generation {
			failure = fmt.Errorf("apikey %s/%s was changed by someone else while it waited to be issued: nothing is shown", created.Namespace, created.Name)
			return true, nil
		}
		switch {
		case k.Status.Phase == keywardenv1alpha1.PhaseActive && k.Status.KeyHash != "" && k.Status.SecretRef != nil && seen(&k):
			return true, nil
		case k.Status.Phase == keywardenv1alpha1.PhaseRefused:
			reason, message := keywardenv1alpha1.ReasonActiveKeyLimit, ""
			for _, c := range k.Status.Conditions {
				if c.Type == keywardenv1alpha1.ConditionReconciling {
					reason, message = c.Reason, c.Message
				}
			}
			failure = fmt.Errorf("apikey %s/%s was refused (%s): %s", k.Namespace, k.Name, reason, message)
		case stalled(&k) != nil && seen(&k):
			s := stalled(&k)
			failure = fmt.Errorf("apikey %s/%s cannot be issued (%s): %s", k.Namespace, k.Name, s.Reason, s.Message)
		case k.Status.Phase == keywardenv1alpha1.PhaseExpired || k.Status.Phase == keywardenv1alpha1.PhaseRevoked:
			failure = fmt.Errorf("apikey %s/%s is %s", k.Namespace, k.Name, k.Status.Phase)
		case !pickedUp(&k, k.Generation) && time.Since(start) > o.ManagerWait:
			failure = managerMissing(fmt.Sprintf("apikey %s/%s was created", k.Namespace, k.Name), o.ManagerWait)
		}
		return failure != nil, nil
	})
	switch {
	case errors.Is(err, context.Canceled):
		failure = fmt.Errorf("interrupted while apikey %s/%s waited to be issued", created.Namespace, created.Name)
	case err != nil:
		return nil, err
	case !done:
		failure = fmt.Errorf("apikey %s/%s was not issued within %s: it is %s%s", created.Namespace, created.Name, timeout, keyview.Status(last), progress(last))
	}
	if failure == nil {
		return last, nil
	}
	// Nothing was issued, or nothing shown: leave nothing behind, as a
	// refused request to an API-key service leaves nothing.
	del := c.Delete(context.WithoutCancel(ctx), created, client.Preconditions{UID: &created.UID})
	switch {
	case del == nil || apierrors.IsNotFound(del):
		return nil, fmt.Errorf("%w\nThe APIKey was deleted: nothing was issued", failure)
	default:
		return nil, fmt.Errorf("%w\nDeleting the APIKey failed too: %v", failure, Explain(del, "delete", "apikeys.keywarden.dev", created.Namespace))
	}
}

// Refused is an action the key's state does not allow (already revoked,
// expired, not active, not the key confirmed): asking again cannot help.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return e.Reason }

func refused(format string, args ...any) error { return &Refused{Reason: fmt.Sprintf(format, args...)} }

// Revocable says why a key cannot be revoked, or nil.
func Revocable(k *keywardenv1alpha1.APIKey) error {
	switch {
	case RevokedAt(k) != "":
		return refused("apikey %s/%s was already revoked %s", k.Namespace, k.Name, RevokedAt(k))
	case k.Status.Phase == keywardenv1alpha1.PhaseExpired:
		return refused("apikey %s/%s expired %s: it no longer verifies, and revoking it would change nothing", k.Namespace, k.Name, expiredAt(k))
	}
	return nil
}

// Edit writes changes to the key's spec (merge-patch fields; nil removes
// one), bound to the version the person read: a change someone made since
// is not overwritten. It waits for Keywarden to judge the change: refused
// says why the key keeps its grant (the change stays in the spec, as
// kubectl edit leaves it), and is empty when the change was granted.
func (o Ops) Edit(ctx context.Context, k *keywardenv1alpha1.APIKey, changes map[string]any, timeout time.Duration) (got *keywardenv1alpha1.APIKey, refusedBy string, err error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": k.UID, "resourceVersion": k.ResourceVersion}, "spec": changes})
	if err != nil {
		return nil, "", err
	}
	edited := k.DeepCopy()
	if err := o.Client.Patch(ctx, edited, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		switch {
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			return nil, "", refused("apikey %s/%s was changed or replaced since you read it: nothing was written; look at it again", k.Namespace, k.Name)
		case apierrors.IsInvalid(err):
			return nil, "", refused("the API server refuses the change: %s", APIMessage(err))
		}
		return nil, "", Explain(err, "patch", "apikeys.keywarden.dev", k.Namespace)
	}
	if edited.Generation == k.Generation {
		return edited, "", nil // nothing the controller judges changed
	}
	got = &keywardenv1alpha1.APIKey{}
	start := time.Now()
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		if err := o.Client.Get(ctx, client.ObjectKeyFromObject(k), got); err != nil {
			return false, Explain(err, "get", "apikeys.keywarden.dev", k.Namespace)
		}
		if got.Status.ObservedGeneration >= edited.Generation {
			return true, nil
		}
		if !pickedUp(got, edited.Generation) && time.Since(start) > o.ManagerWait {
			failure = managerMissing(fmt.Sprintf("the change of apikey %s/%s is stored", k.Namespace, k.Name), o.ManagerWait)
		}
		return failure != nil, nil
	})
	switch {
	case err != nil:
		return nil, "", err
	case failure != nil:
		return nil, "", failure
	case !done:
		return nil, "", fmt.Errorf("the change of apikey %s/%s is stored, but Keywarden has not judged it within %s: it is %s%s", k.Namespace, k.Name, timeout, keyview.Status(got), progress(got))
	}
	if c := stalled(got); c != nil {
		return got, c.Message + " (" + c.Reason + ")", nil
	}
	return got, "", nil
}

// Delete deletes the APIKey the person looked at (bound to its UID: a key
// created under its name since is left alone) and waits until the API
// server has let it go. The verifier refuses the key from the moment it is
// marked for deletion, and its Secret goes with it. gone is false when it
// was still being deleted after timeout.
func (o Ops) Delete(ctx context.Context, k *keywardenv1alpha1.APIKey, timeout time.Duration) (gone bool, err error) {
	uid := k.UID
	if err := o.Client.Delete(ctx, k, client.Preconditions{UID: &uid}); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return false, refused("apikey %s/%s does not exist (deleted already?)", k.Namespace, k.Name)
		case apierrors.IsConflict(err):
			return false, refused("apikey %s/%s is not the key you meant: it was deleted and created again since; nothing was deleted", k.Namespace, k.Name)
		}
		return false, Explain(err, "delete", "apikeys.keywarden.dev", k.Namespace)
	}
	return o.WaitGone(ctx, k, timeout)
}

// WaitGone waits until the API server has let the key go (or holds
// another object under its name); false when it is still there after
// timeout.
func (o Ops) WaitGone(ctx context.Context, k *keywardenv1alpha1.APIKey, timeout time.Duration) (bool, error) {
	uid := k.UID
	var got keywardenv1alpha1.APIKey
	return poll(ctx, timeout, func() (bool, error) {
		switch err := o.Client.Get(ctx, client.ObjectKeyFromObject(k), &got); {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, Explain(err, "get", "apikeys.keywarden.dev", k.Namespace)
		}
		return got.UID != uid, nil
	})
}

// Revoke revokes the key (spec.revoked) and waits for Keywarden to confirm;
// it returns when Keywarden saw it revoked.
func (o Ops) Revoke(ctx context.Context, k *keywardenv1alpha1.APIKey, timeout time.Duration) (time.Time, error) {
	if err := o.MarkRevoked(ctx, k); err != nil {
		return time.Time{}, err
	}
	return o.WaitRevoked(ctx, k, timeout)
}

// MarkRevoked sets spec.revoked on the key read (bound to its UID: a key
// created under its name since is left alone), without waiting.
func (o Ops) MarkRevoked(ctx context.Context, k *keywardenv1alpha1.APIKey) error {
	if err := Revocable(k); err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": k.UID}, "spec": map[string]any{"revoked": true}})
	if err != nil {
		return err
	}
	if err := o.Client.Patch(ctx, k, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsInvalid(err) && strings.Contains(err.Error(), "metadata.uid") {
			return refused("apikey %s/%s is not the key you meant: it was deleted and created again since; nothing was revoked", k.Namespace, k.Name)
		}
		return Explain(err, "patch", "apikeys.keywarden.dev", k.Namespace)
	}
	return nil
}

// RevokedAt says when a key was revoked, or "" when it was not.
func RevokedAt(k *keywardenv1alpha1.APIKey) string {
	switch {
	case k.Status.RevokedAt != nil:
		return "at " + k.Status.RevokedAt.Local().Format(keyview.TimeFormat)
	case k.Status.Revocation != nil:
		return "at " + k.Status.Revocation.At.Local().Format(keyview.TimeFormat) + " (" + keyview.Clean(k.Status.Revocation.Reason) + ")"
	case k.Spec.Revoked:
		return "(Keywarden has yet to confirm it)"
	}
	return ""
}

// WaitRevoked waits for the controller to record the revocation.
func (o Ops) WaitRevoked(ctx context.Context, k *keywardenv1alpha1.APIKey, timeout time.Duration) (time.Time, error) {
	c := o.Client
	var got keywardenv1alpha1.APIKey
	start := time.Now()
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(k), &got); err != nil {
			return false, Explain(err, "get", "apikeys.keywarden.dev", k.Namespace)
		}
		if got.Status.Phase == keywardenv1alpha1.PhaseRevoked && got.Status.RevokedAt != nil {
			return true, nil
		}
		if !pickedUp(&got, got.Generation) && time.Since(start) > o.ManagerWait {
			failure = managerMissing(fmt.Sprintf("apikey %s/%s is marked revoked (spec.revoked), and the verifier refuses it once Keywarden confirms", k.Namespace, k.Name), o.ManagerWait)
		}
		return failure != nil, nil
	})
	switch {
	case errors.Is(err, context.Canceled):
		return time.Time{}, fmt.Errorf("interrupted: apikey %s/%s is marked revoked (spec.revoked), which cannot be undone; Keywarden had not confirmed it yet", k.Namespace, k.Name)
	case err != nil:
		return time.Time{}, err
	case failure != nil:
		return time.Time{}, failure
	case !done:
		return time.Time{}, fmt.Errorf("apikey %s/%s is marked revoked (spec.revoked), but Keywarden has not confirmed it within %s: it is %s%s",
			k.Namespace, k.Name, timeout, keyview.Status(&got), progress(&got))
	}
	return got.Status.RevokedAt.Time, nil
}

// expiredAt says when a key expired.
func expiredAt(k *keywardenv1alpha1.APIKey) string {
	if k.Status.ExpiresAt == nil {
		return ""
	}
	return "at " + k.Status.ExpiresAt.Local().Format(keyview.TimeFormat)
}

// Rotate asks for a rotation of an active key (spec.rotation.request set to
// request, a value new to it) and waits for it; it returns the key as
// rotated.
func (o Ops) Rotate(ctx context.Context, k *keywardenv1alpha1.APIKey, request string, timeout time.Duration) (*keywardenv1alpha1.APIKey, error) {
	ns, name := k.Namespace, k.Name
	if err := Rotatable(k); err != nil {
		return nil, err
	}
	before, rotatedBefore := k.Status.KeyHash, lastRotated(k)
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"rotation": map[string]any{"request": request}}})
	c := o.Client
	if err := c.Patch(ctx, k, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		return nil, Explain(err, "patch", "apikeys.keywarden.dev", ns)
	}
	start := time.Now()
	var got keywardenv1alpha1.APIKey
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(k), &got); err != nil {
			return false, Explain(err, "get", "apikeys.keywarden.dev", ns)
		}
		st := got.Status.Rotation
		taken := st != nil && (st.Request == request || st.Next != nil)
		switch {
		case st != nil && st.Request == request && st.Next == nil:
			// Taken and finished: a rotation, or a reissue that dropped it
			// (the Secret was lost meanwhile).
			if got.Status.KeyHash != "" && got.Status.KeyHash != before && lastRotated(&got).After(rotatedBefore) {
				return true, nil
			}
			failure = fmt.Errorf("apikey %s/%s was not rotated: Keywarden dropped the rotation (its Secret was lost or changed meanwhile); it is %s%s",
				ns, name, keyview.Status(&got), progress(&got))
		case taken:
			// A rotation is under way: a Stalled condition now is about
			// another change of the spec, not this request.
		case seen(&got) && stalled(&got) != nil:
			// The controller completed a pass over the request without
			// taking it.
			s := stalled(&got)
			failure = fmt.Errorf("apikey %s/%s was not rotated (%s): %s", ns, name, s.Reason, s.Message)
		case !pickedUp(&got, got.Generation) && time.Since(start) > o.ManagerWait:
			failure = managerMissing(fmt.Sprintf("apikey %s/%s: rotation requested", ns, name), o.ManagerWait)
		}
		return failure != nil, nil
	})
	switch {
	case errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("interrupted: the rotation of apikey %s/%s is requested; Keywarden had not finished it yet", ns, name)
	case err != nil:
		return nil, err
	case failure != nil:
		return nil, failure
	case !done:
		return nil, fmt.Errorf("apikey %s/%s was not rotated within %s: it is %s%s", ns, name, timeout, keyview.Status(&got), progress(&got))
	}
	return &got, nil
}

// Rotatable says why a key cannot be rotated, or nil.
func Rotatable(k *keywardenv1alpha1.APIKey) error {
	if phase := keyview.Phase(k); phase != keywardenv1alpha1.PhaseActive || k.Spec.Revoked {
		return refused("only an active key can be rotated; apikey %s/%s is %s", k.Namespace, k.Name, keyview.Status(k))
	}
	return nil
}

func lastRotated(k *keywardenv1alpha1.APIKey) time.Time {
	if k.Status.Rotation == nil || k.Status.Rotation.LastRotatedAt == nil {
		return time.Time{}
	}
	return k.Status.Rotation.LastRotatedAt.Time
}

// RoleNames reads how the classes present their roles, when the person
// may list classes; otherwise (nil) roles are shown by name.
func (o Ops) RoleNames(ctx context.Context) keyview.RoleNames {
	var classes keywardenv1alpha1.APIKeyClassList
	if err := o.Client.List(ctx, &classes); err != nil {
		return nil
	}
	return keyview.RoleNamesOf(classes.Items)
}

// Details reads what a key's page shows beside the key: its class, for
// the scopes' descriptions, and its last n events, each with a note saying
// why it is missing when it could not be read. Neither is needed: a
// person who may not read them still sees the key.
func (o Ops) Details(ctx context.Context, k *keywardenv1alpha1.APIKey, n int) keyview.Details {
	d := keyview.Details{Key: k}
	if class := k.GrantedClass(); class != "" {
		var cl keywardenv1alpha1.APIKeyClass
		if err := o.Client.Get(ctx, client.ObjectKey{Name: class}, &cl); err != nil {
			d.ClassNote = Explain(err, "get", "apikeyclasses.keywarden.dev", "").Error() + "; the scopes' descriptions are not shown"
		} else {
			d.Class = &cl
		}
	}
	var events corev1.EventList
	err := o.Client.List(ctx, &events, client.InNamespace(k.Namespace), client.MatchingFieldsSelector{Selector: fields.SelectorFromSet(fields.Set{
		"involvedObject.kind": keywardenv1alpha1.APIKeyKind, "involvedObject.name": k.Name, "involvedObject.uid": string(k.UID),
	})})
	switch {
	case apierrors.IsForbidden(err):
		d.EventsNote = "you may not list events in namespace " + k.Namespace
	case err != nil:
		d.EventsNote = "the events could not be read: " + err.Error()
	default:
		d.Events = keyview.RecentEvents(events.Items, n)
	}
	return d
}

// Holds says which of the key's keys has the hash: "current", "next" (a
// rotation is writing it), "previous, valid until ..." or
// "previous, refused since ...", or "" for none.
func Holds(k *keywardenv1alpha1.APIKey, hash string, now time.Time) string {
	switch which, p := k.Status.Holds(hash); which {
	case keywardenv1alpha1.HoldsCurrent:
		return "current"
	case keywardenv1alpha1.HoldsNext:
		return "next (being rotated in)"
	case keywardenv1alpha1.HoldsPrevious:
		rotated := "previous, rotated out " + p.RotatedAt.Local().Format(keyview.TimeFormat)
		if !p.ValidUntil.After(now) {
			return rotated + ", refused since " + p.ValidUntil.Local().Format(keyview.TimeFormat)
		}
		return rotated + ", grace until " + p.ValidUntil.Local().Format(keyview.TimeFormat)
	}
	return ""
}
