// Command keywarden runs one of Keywarden's components, each under its
// own ServiceAccount with only the rights it uses:
//
//	keywarden controller   the reconcilers (leader-elected), the webhook, the self-issued certificates
//	keywarden verifier     key verification, authz and leak reports, on every replica
//	keywarden console      the web console, acting with each person's own token
//
// One binary in one image: the components share most of their code, and
// a release is one thing to build, sign and scan.
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"keywarden.dev/keywarden/internal/app/console"
	"keywarden.dev/keywarden/internal/app/controller"
	"keywarden.dev/keywarden/internal/app/verifier"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "keywarden:", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	logging := zap.Options{}
	logging.BindFlags(goflag.CommandLine)
	cmd := &cobra.Command{
		Use:           "keywarden",
		Short:         "Keywarden manages API keys declared as APIKey resources",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&logging)))
		},
	}
	// --kubeconfig (controller-runtime's) and the logging flags.
	cmd.PersistentFlags().AddGoFlagSet(goflag.CommandLine)

	c := controller.NewOptions()
	v := verifier.NewOptions()
	w := console.NewOptions()
	cmd.AddCommand(
		component("controller", "Run the controller: issue, rotate, expire and revoke the keys", c.AddFlags, c.Validate,
			func(ctx context.Context) error { return controller.Run(ctx, c) }),
		component("verifier", "Serve key verification, forward authentication and leak reports", v.AddFlags, v.Validate,
			func(ctx context.Context) error { return verifier.Run(ctx, v) }),
		component("console", "Serve the web console", w.AddFlags, w.Validate,
			func(ctx context.Context) error { return console.Run(ctx, w) }),
	)
	return cmd
}

// component is the subcommand that runs one component: its flags parsed
// into its options, validated as a whole, then run until SIGTERM.
func component(name, short string, addFlags func(*pflag.FlagSet), validate func() error, run func(context.Context) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := validate(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := run(ctrl.SetupSignalHandler()); err != nil {
				return fmt.Errorf("%s stopped: %w", name, err)
			}
			return nil
		},
	}
	addFlags(cmd.Flags())
	return cmd
}
