package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyview"
)

func (a *app) revokeCommand() *cobra.Command {
	var yes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "revoke NAME...",
		Short: "Revoke keys: the verifier refuses them and their Secrets are deleted",
		Long: `Revoke APIKeys by setting spec.revoked, and wait until Keywarden confirms:
the verifier refuses the key from then on and its Secret is deleted.
Revocation cannot be undone. A key that does not exist, or was already
revoked, is an error (exit 1); the other keys named are revoked still.

On a terminal it asks for confirmation first, unless --yes. For a key kept in
Git, set revoked: true in its manifest too, or the next sync fails (the API
server refuses to set it back to false).`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeNames,
		RunE:              func(cmd *cobra.Command, args []string) error { return a.revoke(cmd.Context(), args, yes, timeout) },
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for Keywarden to confirm each revocation")
	return cmd
}

func (a *app) revoke(ctx context.Context, names []string, yes bool, timeout time.Duration) error {
	ns, _, err := a.namespace()
	if err != nil {
		return err
	}
	failed := false
	fail := func(err error) {
		a.printErr(err)
		failed = true
	}
	var targets []*keywardenv1alpha1.APIKey
	seenName := map[string]bool{}
	for _, name := range names {
		if seenName[name] {
			continue
		}
		seenName[name] = true
		k, err := a.get(ctx, ns, name)
		switch {
		case err != nil:
			fail(err)
		case revokedAt(k) != "":
			fail(fmt.Errorf("apikey %s/%s was already revoked %s", ns, name, revokedAt(k)))
		case k.Status.Phase == keywardenv1alpha1.PhaseExpired:
			fail(fmt.Errorf("apikey %s/%s expired %s: it no longer verifies, and revoking it would change nothing", ns, name, expiredAt(k)))
		default:
			targets = append(targets, k)
		}
	}
	if len(targets) > 0 && a.terminal && !yes && !a.confirm(targets) {
		fmt.Fprintln(a.Err, "Nothing revoked.")
		return exitCode(1)
	}
	c, _ := a.client()
	for _, k := range targets {
		patch := []byte(`{"spec":{"revoked":true}}`)
		if err := c.Patch(ctx, k, client.RawPatch("application/merge-patch+json", patch)); err != nil {
			fail(explain(err, "patch", "apikeys.keywarden.dev", ns))
			continue
		}
		at, err := a.waitRevoked(ctx, k, timeout)
		if err != nil {
			fail(err)
			continue
		}
		fmt.Fprintf(a.Out, "apikey %s/%s revoked at %s\n", ns, k.Name, at)
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

// revokedAt says when a key was revoked, or "" when it was not.
func revokedAt(k *keywardenv1alpha1.APIKey) string {
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

// confirm asks the person at the terminal to confirm the revocation.
func (a *app) confirm(targets []*keywardenv1alpha1.APIKey) bool {
	fmt.Fprintln(a.Err, "Revoking cannot be undone. These keys will stop working at once:")
	for _, k := range targets {
		fmt.Fprintf(a.Err, "  %s/%s  %s  %q  owner %s\n", k.Namespace, k.Name, keyview.Clean(k.Status.KeyPrefix),
			keyview.Clean(k.Spec.DisplayName), keyview.Clean(keyview.Owner(k)))
	}
	fmt.Fprint(a.Err, "Revoke them? [y/N] ")
	line, _ := bufio.NewReader(a.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// waitRevoked waits for the controller to record the revocation.
func (a *app) waitRevoked(ctx context.Context, k *keywardenv1alpha1.APIKey, timeout time.Duration) (string, error) {
	c, _ := a.client()
	var got keywardenv1alpha1.APIKey
	start := time.Now()
	var failure error
	done, err := poll(ctx, timeout, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(k), &got); err != nil {
			return false, explain(err, "get", "apikeys.keywarden.dev", k.Namespace)
		}
		if got.Status.Phase == keywardenv1alpha1.PhaseRevoked && got.Status.RevokedAt != nil {
			return true, nil
		}
		if !pickedUp(&got, got.Generation) && time.Since(start) > a.managerWait {
			failure = managerMissing(fmt.Sprintf("apikey %s/%s is marked revoked (spec.revoked), and the verifier refuses it once Keywarden confirms", k.Namespace, k.Name), a.managerWait)
		}
		return failure != nil, nil
	})
	switch {
	case err != nil:
		return "", err
	case failure != nil:
		return "", failure
	case !done:
		return "", fmt.Errorf("apikey %s/%s is marked revoked (spec.revoked), but Keywarden has not confirmed it within %s: it is %s%s",
			k.Namespace, k.Name, timeout, keyview.Status(&got), progress(&got))
	}
	return got.Status.RevokedAt.Local().Format(time.RFC3339), nil
}

// expiredAt says when a key expired.
func expiredAt(k *keywardenv1alpha1.APIKey) string {
	if k.Status.ExpiresAt == nil {
		return ""
	}
	return "at " + k.Status.ExpiresAt.Local().Format(keyview.TimeFormat)
}
