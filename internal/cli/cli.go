// Package cli is kubectl-keywarden: the admin page of an API-key product,
// in the terminal. It reads the kubeconfig and kubectl's flags, and acts
// with the person's own rights: it can do what kubectl could do for them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
)

// Streams are the command's standard input, output and error.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// app is what every command shares.
type app struct {
	Streams
	kubeconfig clientcmd.ClientConfig
	c          client.Client
	now        func() time.Time
	// terminal reports whether standard input is a person at a terminal,
	// who can be asked to confirm.
	terminal bool
	// managerWait is how long a command waits for the manager to pick up
	// a change before it says the manager seems not to run.
	managerWait time.Duration
}

// exitCode ends the command with a code, its message already written.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main runs kubectl-keywarden with the arguments and returns its exit code.
func Main(args []string, s Streams) int {
	a := &app{Streams: s, now: time.Now, managerWait: 10 * time.Second}
	if f, ok := s.In.(*os.File); ok {
		a.terminal = term.IsTerminal(int(f.Fd()))
	}
	return a.run(args)
}

func (a *app) run(args []string) int {
	// Ctrl-C ends the waits, and create still cleans up after itself.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := a.command()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	a.printErr(err)
	return 1
}

// printErr writes an error for a person: each line with the control
// characters of text from the cluster escaped.
func (a *app) printErr(err error) {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = keyview.Clean(l)
	}
	fmt.Fprintln(a.Err, "error:", strings.Join(lines, "\n"))
}

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-keywarden",
		Short: "Create, list, show, revoke, rotate and trace Keywarden API keys, and keep their classes' shared secrets",
		Long: `kubectl keywarden manages the APIKeys of Keywarden with your own rights.

  create    create a key, wait for it, and print it once
  list      list keys, newest first, with filters
  show      a key's grant, expiry, use, Secret, conditions and events
  revoke    revoke keys
  delete    delete keys, with their Secrets
  rotate    replace a key with a new one in its Secret
  whose     say which APIKey holds a key read from standard input
  shared-secret
            show or rotate the secret that signs a class's notifications`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl keywarden"},
	}
	root.SetIn(a.In)
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	// kubectl's connection flags, read as kubectl reads them.
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	root.PersistentFlags().StringVar(&rules.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "path to the kubeconfig file")
	overrides := &clientcmd.ConfigOverrides{}
	clientcmd.BindOverrideFlags(overrides, root.PersistentFlags(), clientcmd.RecommendedConfigOverrideFlags(""))
	a.kubeconfig = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	root.AddCommand(a.createCommand(), a.listCommand(), a.showCommand(), a.revokeCommand(), a.deleteCommand(), a.rotateCommand(), a.whoseCommand(), a.sharedSecretCommand())
	return root
}

// client connects on first use, with the kubeconfig and flags given.
func (a *app) client() (client.Client, error) {
	if a.c != nil {
		return a.c, nil
	}
	cfg, err := a.kubeconfig.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-keywarden"
	if cfg.Timeout == 0 {
		// Without --request-timeout, no call hangs on an API server
		// that does not answer.
		cfg.Timeout = 30 * time.Second
	}
	c, err := client.New(cfg, client.Options{Scheme: keyops.Scheme()})
	if err != nil {
		return nil, keyops.Explain(err, "connect to", "the API server", "")
	}
	a.c = c
	return c, nil
}

// namespace is the namespace of --namespace or the kubeconfig's context,
// and whether --namespace gave it.
func (a *app) namespace() (string, bool, error) {
	ns, explicit, err := a.kubeconfig.Namespace()
	if err != nil {
		return "", false, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	return ns, explicit, nil
}

// namespaceClient is the namespace (and whether --namespace gave it) and
// the person's client.
func (a *app) namespaceClient() (string, bool, client.Client, error) {
	ns, explicit, err := a.namespace()
	if err != nil {
		return "", false, nil, err
	}
	c, err := a.client()
	return ns, explicit, c, err
}

// named reads the APIKey of a name in the namespace of the flags.
func (a *app) named(ctx context.Context, name string) (*keywardenv1alpha1.APIKey, error) {
	ns, _, err := a.namespace()
	if err != nil {
		return nil, err
	}
	return a.get(ctx, ns, name)
}

// ops acts with the person's client.
func (a *app) ops() (keyops.Ops, error) {
	c, err := a.client()
	return keyops.Ops{Client: c, ManagerWait: a.managerWait}, err
}

// get reads one APIKey from the API server.
func (a *app) get(ctx context.Context, ns, name string) (*keywardenv1alpha1.APIKey, error) {
	o, err := a.ops()
	if err != nil {
		return nil, err
	}
	return o.Get(ctx, ns, name)
}

// completeNames offers the names of the APIKeys in the namespace.
func (a *app) completeNames(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	ns, _, err := a.namespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var list keywardenv1alpha1.APIKeyList
	if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	taken := map[string]bool{}
	for _, arg := range args {
		taken[arg] = true
	}
	var names []string
	for _, k := range list.Items {
		if strings.HasPrefix(k.Name, prefix) && !taken[k.Name] {
			names = append(names, k.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
