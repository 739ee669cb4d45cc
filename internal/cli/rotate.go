package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
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
	ns, _, err := a.namespace()
	if err != nil {
		return err
	}
	k, err := a.get(ctx, ns, name)
	if err != nil {
		return err
	}
	if phase := keyview.Phase(k); phase != keywardenv1alpha1.PhaseActive || k.Spec.Revoked {
		return fmt.Errorf("only an active key can be rotated; apikey %s/%s is %s", ns, name, keyview.Status(k))
	}
	request := "kubectl-keywarden " + a.now().UTC().Format("2006-01-02T15:04:05.000Z")
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"rotation": map[string]any{"request": request}}})
	c, _ := a.client()
	if err := c.Patch(ctx, k, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		return explain(err, "patch", "apikeys.keywarden.dev", ns)
	}
	fmt.Fprintf(a.Err, "apikey %s/%s: rotation requested (%s); waiting for Keywarden\n", ns, name, request)
	start := time.Now()
	var got keywardenv1alpha1.APIKey
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(k), &got); err != nil {
			return false, explain(err, "get", "apikeys.keywarden.dev", ns)
		}
		st := got.Status.Rotation
		taken := st != nil && (st.Request == request || st.Next != nil)
		switch {
		case st != nil && st.Request == request && st.Next == nil:
			return true, nil
		case taken:
			// A rotation is under way: a Stalled condition now is about
			// another change of the spec, not this request.
		case seen(&got) && stalled(&got) != nil:
			// The controller completed a pass over the request without
			// taking it.
			s := stalled(&got)
			failure = fmt.Errorf("apikey %s/%s was not rotated (%s): %s", ns, name, s.Reason, s.Message)
		case !pickedUp(&got, got.Generation) && time.Since(start) > a.managerWait:
			failure = managerMissing(fmt.Sprintf("apikey %s/%s: rotation requested", ns, name), a.managerWait)
		}
		return failure != nil, nil
	})
	switch {
	case err != nil:
		return err
	case failure != nil:
		return failure
	case !done:
		return fmt.Errorf("apikey %s/%s was not rotated within %s: it is %s%s", ns, name, timeout, keyview.Status(&got), progress(&got))
	}
	st := got.Status.Rotation
	fmt.Fprintf(a.Out, "apikey %s/%s rotated at %s: the key in Secret %s is now %s", ns, name,
		st.LastRotatedAt.Local().Format(time.RFC3339), secretName(&got), got.Status.KeyPrefix)
	if len(st.Previous) > 0 && st.Previous[0].ValidUntil.After(a.now()) {
		fmt.Fprintf(a.Out, "; the previous key %s verifies until %s\n", st.Previous[0].KeyPrefix, st.Previous[0].ValidUntil.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(a.Out, "; the previous key no longer verifies\n")
	}
	return nil
}

func secretName(k *keywardenv1alpha1.APIKey) string {
	if k.Status.SecretRef != nil {
		return k.Status.SecretRef.Name
	}
	if k.Spec.SecretName != "" {
		return k.Spec.SecretName
	}
	return k.Name
}
