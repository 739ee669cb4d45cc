package cli

import (
	"context"

	"github.com/spf13/cobra"

	"keywarden.dev/keywarden/internal/keyview"
)

// maxEvents is how many of a key's events show prints, newest last.
const maxEvents = 10

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key: its grant, expiry, use, Secret, conditions and events",
		Long: `Show an APIKey: the grant (owner, role, and scopes with their class's
descriptions), expiry, last use, the Secret, its conditions in words and its
recent events. It never shows the key.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeOneName,
		RunE:              func(cmd *cobra.Command, args []string) error { return a.show(cmd.Context(), args[0]) },
	}
}

func (a *app) completeOneName(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, args, prefix)
}

func (a *app) show(ctx context.Context, name string) error {
	k, err := a.named(ctx, name)
	if err != nil {
		return err
	}
	o, _ := a.ops()
	d := o.Details(ctx, k, maxEvents)
	return keyview.Show(a.Out, d, a.now())
}
