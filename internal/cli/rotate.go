package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
)

func (a *app) rotateCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Replace a key with a new one in its Secret; the previous key stays valid for its grace period",
		Long: `Rotate an APIKey: Keywarden writes a new key into the same Secret, and the
previous key keeps verifying for the grace period (spec.rotation.gracePeriod,
24h by default). It sets spec.rotation.request to a new value and waits for
the rotation. The new key is not printed: workloads read it from the Secret.

For a key kept in Git, change rotation.request in its manifest instead: a
sync that puts back an older value would rotate the key again.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeOneName,
		RunE:              func(cmd *cobra.Command, args []string) error { return a.rotate(cmd.Context(), args[0], timeout) },
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the rotation")
	return cmd
}

func (a *app) rotate(ctx context.Context, name string, timeout time.Duration) error {
	k, err := a.named(ctx, name)
	if err != nil {
		return err
	}
	ns := k.Namespace
	if err := keyops.Rotatable(k); err != nil {
		return err
	}
	request := "kubectl-keywarden " + a.now().UTC().Format("2006-01-02T15:04:05.000Z")
	fmt.Fprintf(a.Err, "apikey %s/%s: asking Keywarden to rotate its key (rotation.request %q)\n", ns, name, request)
	o, _ := a.ops()
	got, err := o.Rotate(ctx, k, request, timeout)
	if err != nil {
		return err
	}
	st := got.Status.Rotation
	fmt.Fprintf(a.Out, "apikey %s/%s rotated at %s: the key in Secret %s is now %s", ns, name,
		st.LastRotatedAt.Local().Format(keyview.TimeFormat), got.SecretName(), got.Status.KeyPrefix)
	if len(st.Previous) > 0 && st.Previous[0].ValidUntil.After(a.now()) {
		fmt.Fprintf(a.Out, "; the previous key %s verifies until %s\n", st.Previous[0].KeyPrefix, st.Previous[0].ValidUntil.Local().Format(keyview.TimeFormat))
	} else {
		fmt.Fprintf(a.Out, "; the previous key no longer verifies\n")
	}
	return nil
}
