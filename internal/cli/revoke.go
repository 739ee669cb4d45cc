package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
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
	targets := a.targets(ctx, ns, names, keyops.Revocable, fail)
	if len(targets) > 0 && a.terminal && !yes && !a.confirm(targets, "Revoking cannot be undone. These keys will stop working at once:", "Revoke them?") {
		fmt.Fprintln(a.Err, "Nothing revoked.")
		return exitCode(1)
	}
	o, _ := a.ops()
	for _, k := range targets {
		at, err := o.Revoke(ctx, k, timeout)
		if err != nil {
			fail(err)
			if ctx.Err() != nil {
				break // interrupted: the other keys are left as they are
			}
			continue
		}
		fmt.Fprintf(a.Out, "apikey %s/%s revoked at %s\n", ns, k.Name, at.Local().Format(keyview.TimeFormat))
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

// targets reads the keys named, once each, and those check (when set)
// allows; fail is told why each other name is left out.
func (a *app) targets(ctx context.Context, ns string, names []string, check func(*keywardenv1alpha1.APIKey) error, fail func(error)) []*keywardenv1alpha1.APIKey {
	var targets []*keywardenv1alpha1.APIKey
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		k, err := a.get(ctx, ns, name)
		if err == nil && check != nil {
			err = check(k)
		}
		if err != nil {
			fail(err)
			continue
		}
		targets = append(targets, k)
	}
	return targets
}

// confirm asks the person at the terminal to confirm what warning says
// of the keys.
func (a *app) confirm(targets []*keywardenv1alpha1.APIKey, warning, question string) bool {
	fmt.Fprintln(a.Err, warning)
	for _, k := range targets {
		fmt.Fprintf(a.Err, "  %s/%s  %s  %q  owner %s\n", k.Namespace, k.Name, keyview.Clean(k.Status.KeyPrefix),
			keyview.Clean(k.Spec.DisplayName), keyview.Clean(k.GrantedOwner()))
	}
	fmt.Fprint(a.Err, question+" [y/N] ")
	line, _ := bufio.NewReader(a.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

func (a *app) deleteCommand() *cobra.Command {
	var yes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete keys: the verifier refuses them at once, and their Secrets go with them",
		Long: `Delete APIKeys, each bound to the object read (a key created under its
name since is left alone), and wait until the API server has let them go.
The verifier refuses a key from the moment it is marked for deletion, and
its Secret is deleted with it. Deleting cannot be undone. A key that does
not exist is an error (exit 1); the other keys named are deleted still.

On a terminal it asks for confirmation first, unless --yes. For a key kept
in Git, remove it from Git too, or the next sync creates it again (with a
new key).`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeNames,
		RunE:              func(cmd *cobra.Command, args []string) error { return a.delete(cmd.Context(), args, yes, timeout) },
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for each key to be gone")
	return cmd
}

func (a *app) delete(ctx context.Context, names []string, yes bool, timeout time.Duration) error {
	ns, _, err := a.namespace()
	if err != nil {
		return err
	}
	failed := false
	targets := a.targets(ctx, ns, names, nil, func(err error) {
		a.printErr(err)
		failed = true
	})
	if len(targets) > 0 && a.terminal && !yes &&
		!a.confirm(targets, "Deleting cannot be undone. These keys will stop working at once, and their Secrets will be deleted:", "Delete them?") {
		fmt.Fprintln(a.Err, "Nothing deleted.")
		return exitCode(1)
	}
	o, _ := a.ops()
	for _, k := range targets {
		gone, err := o.Delete(ctx, k, timeout)
		switch {
		case err != nil:
			a.printErr(err)
			failed = true
			if ctx.Err() != nil {
				return exitCode(1) // interrupted: the other keys are left as they are
			}
		case gone:
			fmt.Fprintf(a.Out, "apikey %s/%s deleted\n", ns, k.Name)
		default:
			fmt.Fprintf(a.Out, "apikey %s/%s is being deleted: the verifier refuses it already, and Keywarden has not let it go within %s\n", ns, k.Name, timeout)
		}
	}
	if failed {
		return exitCode(1)
	}
	return nil
}
