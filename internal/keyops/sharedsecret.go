package keyops

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/notify"
)

// SharedSecret is a class's shared secret as read.
type SharedSecret struct {
	// Secrets sign the class's notifications: the current one, then the
	// previous one while it still signs, Until.
	Secrets [][]byte
	Until   string
}

// ReadSharedSecret reads the shared secret of a class from the Secret
// keywarden-notify-<class> in the controller's namespace ns.
func (o Ops) ReadSharedSecret(ctx context.Context, ns, class string, now time.Time) (*SharedSecret, error) {
	s := &corev1.Secret{}
	name := notify.SecretName(class)
	switch err := o.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); {
	case apierrors.IsNotFound(err):
		return nil, &Refused{Reason: fmt.Sprintf("class %s has no shared secret yet (no Secret %s in namespace %s): create it with kubectl keywarden shared-secret rotate %s, or Rotate in the console's Classes page",
			class, name, ns, class)}
	case err != nil:
		return nil, Explain(err, "get", "secrets", ns)
	case s.Type != notify.SecretType:
		return nil, &Refused{Reason: fmt.Sprintf("Secret %s/%s is of type %s, not %s: it is not a shared secret of Keywarden's, and the controller does not sign with it", ns, name, s.Type, notify.SecretType)}
	}
	secrets, err := notify.SigningSecrets(s, now)
	if err != nil {
		return nil, &Refused{Reason: fmt.Sprintf("%v: replace it with kubectl keywarden shared-secret rotate %s", err, class)}
	}
	return &SharedSecret{Secrets: secrets, Until: s.Annotations[notify.AnnotationPreviousUntil]}, nil
}

// RotateSharedSecret creates a class's shared secret, or replaces it, the
// secret replaced signing beside the new one for overlap. It returns the
// new secret, and whether one was replaced.
func (o Ops) RotateSharedSecret(ctx context.Context, ns, class string, overlap time.Duration, now time.Time) (*keywardenv1alpha1.APIKeyClass, string, bool, error) {
	if overlap < 0 {
		return nil, "", false, &Refused{Reason: fmt.Sprintf("the overlap %s is negative: give how long the old secret keeps signing, or 0", overlap)}
	}
	k := &keywardenv1alpha1.APIKeyClass{}
	switch err := o.Client.Get(ctx, client.ObjectKey{Name: class}, k); {
	case apierrors.IsNotFound(err):
		return nil, "", false, &Refused{Reason: fmt.Sprintf("there is no APIKeyClass %s: a shared secret belongs to a class (kubectl get apikeyclasses)", class)}
	case err != nil:
		return nil, "", false, Explain(err, "get", "apikeyclasses.keywarden.dev", "")
	}
	name := notify.SecretName(class)
	old := &corev1.Secret{}
	switch err := o.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, old); {
	case apierrors.IsNotFound(err):
		old = nil
	case err != nil:
		return nil, "", false, Explain(err, "get", "secrets", ns)
	case old.Type != notify.SecretType:
		return nil, "", false, &Refused{Reason: fmt.Sprintf("Secret %s/%s is of type %s, not %s: it is not a shared secret of Keywarden's, and is left as it is", ns, name, old.Type, notify.SecretType)}
	}
	value, err := notify.NewSecret()
	if err != nil {
		return nil, "", false, err
	}
	s := notify.Rotate(old, ns, class, value, overlap, now)
	if old == nil {
		if err := o.Client.Create(ctx, s); err != nil {
			return nil, "", false, Explain(err, "create", "secrets", ns)
		}
		return k, value, false, nil
	}
	// Written over the version read: of two rotations at once, one fails
	// rather than both believing theirs is the secret.
	if err := o.Client.Update(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			return nil, "", false, &Refused{Reason: fmt.Sprintf("Secret %s/%s changed while it was being rotated: rotate again", ns, name)}
		}
		return nil, "", false, Explain(err, "update", "secrets", ns)
	}
	return k, value, true, nil
}
