package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
	"keywarden.dev/keywarden/internal/notify"
)

// defaultControllerNamespace is where the controller runs, and keeps the
// classes' shared secrets, unless --controller-namespace says otherwise.
const defaultControllerNamespace = "keywarden-system"

func (a *app) sharedSecretCommand() *cobra.Command {
	var controllerNS string
	cmd := &cobra.Command{
		Use:   "shared-secret",
		Short: "Show or rotate a class's shared secret, which signs its notifications",
		Long: `A class that names a receiver (spec.notifications.url) has its notifications
signed with a shared secret, kept in the Secret keywarden-notify-<class> of the
controller's namespace. Receivers check each notification's Keywarden-Signature
header with it. Reading it and rotating it take the rights to read and write
that Secret: an admin's.

  show CLASS     print the secret (and the previous one while it still signs)
  rotate CLASS   create the secret, or replace it; the one replaced keeps
                 signing beside it for --overlap, so receivers can switch`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&controllerNS, "controller-namespace", defaultControllerNamespace, "the namespace Keywarden's controller runs in")
	var overlap time.Duration
	rotate := &cobra.Command{
		Use:     "rotate CLASS",
		Short:   "Create a class's shared secret, or replace it",
		Example: "  kubectl keywarden shared-secret rotate payments\n  kubectl keywarden shared-secret rotate payments --overlap 0   # after a leak: the old one stops at once",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.rotateSharedSecret(cmd.Context(), controllerNS, args[0], overlap)
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 24*time.Hour, "how long the secret replaced keeps signing beside the new one (0: it stops at once)")
	show := &cobra.Command{
		Use:   "show CLASS",
		Short: "Print a class's shared secret",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showSharedSecret(cmd.Context(), controllerNS, args[0])
		},
	}
	cmd.AddCommand(show, rotate)
	return cmd
}

func (a *app) showSharedSecret(ctx context.Context, ns, class string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	s := &corev1.Secret{}
	name := notify.SecretName(class)
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("class %s has no shared secret yet (no Secret %s in namespace %s): create it with kubectl keywarden shared-secret rotate %s",
			class, name, ns, class)
	case err != nil:
		return keyops.Explain(err, "get", "secrets", ns)
	}
	secrets, err := notify.SigningSecrets(s, a.now())
	if err != nil {
		return fmt.Errorf("%w: replace it with kubectl keywarden shared-secret rotate %s", err, class)
	}
	fmt.Fprintf(a.Err, "The shared secret of class %s (Secret %s/%s):\n", keyview.Clean(class), ns, name)
	fmt.Fprintln(a.Out, string(secrets[0]))
	if len(secrets) > 1 {
		fmt.Fprintf(a.Err, "The previous secret signs beside it until %s:\n", keyview.Clean(s.Annotations[notify.AnnotationPreviousUntil]))
		fmt.Fprintln(a.Out, string(secrets[1]))
	}
	return nil
}

func (a *app) rotateSharedSecret(ctx context.Context, ns, class string, overlap time.Duration) error {
	if overlap < 0 {
		return fmt.Errorf("--overlap %s is negative: give how long the old secret keeps signing, or 0", overlap)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	k := &keywardenv1alpha1.APIKeyClass{}
	switch err := c.Get(ctx, client.ObjectKey{Name: class}, k); {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("there is no APIKeyClass %s: a shared secret belongs to a class (kubectl get apikeyclasses)", class)
	case err != nil:
		return keyops.Explain(err, "get", "apikeyclasses.keywarden.dev", "")
	}
	name := notify.SecretName(class)
	old := &corev1.Secret{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, old); {
	case apierrors.IsNotFound(err):
		old = nil
	case err != nil:
		return keyops.Explain(err, "get", "secrets", ns)
	case old.Type != notify.SecretType:
		return fmt.Errorf("Secret %s/%s is of type %s, not %s: it is not a shared secret of Keywarden's, and is left as it is", ns, name, old.Type, notify.SecretType)
	}
	value, err := notify.NewSecret()
	if err != nil {
		return err
	}
	s := notify.Rotate(old, ns, class, value, overlap, a.now())
	verb := "created"
	if old == nil {
		err = c.Create(ctx, s)
		if err != nil {
			return keyops.Explain(err, "create", "secrets", ns)
		}
	} else {
		// Written over the version read: two rotations at once cannot
		// both think theirs is the secret.
		if err := c.Update(ctx, s); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("Secret %s/%s changed while it was being rotated: run the command again", ns, name)
			}
			return keyops.Explain(err, "update", "secrets", ns)
		}
		verb = "rotated"
	}
	fmt.Fprintf(a.Err, "The shared secret of class %s was %s (Secret %s/%s). Give it to the receiver of %s:\n",
		keyview.Clean(class), verb, ns, name, receiverOf(k))
	fmt.Fprintln(a.Out, value)
	if old != nil && overlap > 0 {
		fmt.Fprintf(a.Err, "The secret it replaced keeps signing beside it until %s.\n", s.Annotations[notify.AnnotationPreviousUntil])
	}
	if k.Spec.Notifications == nil {
		fmt.Fprintf(a.Err, "Class %s names no receiver yet: set spec.notifications.url to have its keys' notifications sent.\n", keyview.Clean(class))
	}
	return nil
}

func receiverOf(k *keywardenv1alpha1.APIKeyClass) string {
	if n := k.Spec.Notifications; n != nil {
		return keyview.Clean(n.URL)
	}
	return "the class"
}
