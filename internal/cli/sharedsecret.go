package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
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
	o, err := a.ops()
	if err != nil {
		return err
	}
	ss, err := o.ReadSharedSecret(ctx, ns, class, a.now())
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Err, "The shared secret of class %s (Secret %s/%s):\n", keyview.Clean(class), ns, notify.SecretName(class))
	fmt.Fprintln(a.Out, string(ss.Secrets[0]))
	if len(ss.Secrets) > 1 {
		fmt.Fprintf(a.Err, "The previous secret signs beside it until %s:\n", keyview.Clean(ss.Until))
		fmt.Fprintln(a.Out, string(ss.Secrets[1]))
	}
	return nil
}

func (a *app) rotateSharedSecret(ctx context.Context, ns, class string, overlap time.Duration) error {
	o, err := a.ops()
	if err != nil {
		return err
	}
	k, value, replaced, err := o.RotateSharedSecret(ctx, ns, class, overlap, a.now())
	if err != nil {
		return err
	}
	verb := "created"
	if replaced {
		verb = "rotated"
	}
	fmt.Fprintf(a.Err, "The shared secret of class %s was %s (Secret %s/%s). Give it to the receiver of %s:\n",
		keyview.Clean(class), verb, ns, notify.SecretName(class), receiverOf(k))
	fmt.Fprintln(a.Out, value)
	if replaced && overlap > 0 {
		fmt.Fprintf(a.Err, "The secret it replaced keeps signing beside it until %s.\n", a.now().Add(overlap).Local().Format(keyview.TimeFormat))
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
