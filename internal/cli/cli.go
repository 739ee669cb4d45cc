// Package cli is kubectl-keywarden: the admin page of an API-key product,
// in the terminal. It reads the kubeconfig and kubectl's flags, and acts
// with the person's own rights: it can do what kubectl could do for them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
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
		Short: "Create, list, show, revoke, rotate and trace Keywarden API keys",
		Long: `kubectl keywarden manages the APIKeys of Keywarden with your own rights.

  create    create a key, wait for it, and print it once
  list      list keys, newest first, with filters
  show      a key's grant, expiry, use, Secret, conditions and events
  revoke    revoke keys
  rotate    replace a key with a new one in its Secret
  whose     say which APIKey holds a key read from standard input`,
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
	root.AddCommand(a.createCommand(), a.listCommand(), a.showCommand(), a.revokeCommand(), a.rotateCommand(), a.whoseCommand())
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
	c, err := client.New(cfg, client.Options{Scheme: scheme()})
	if err != nil {
		return nil, explain(err, "connect to", "the API server", "")
	}
	a.c = c
	return c, nil
}

// scheme knows Kubernetes' own kinds and Keywarden's.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(keywardenv1alpha1.AddToScheme(s))
	return s
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

// explain turns an error of the API server into one a person can act on:
// what is missing, or which verb on which resource they may not use.
func explain(err error, verb, resource, namespace string) error {
	where := ""
	switch {
	case namespace != "":
		where = " in namespace " + namespace
	case strings.HasPrefix(resource, "apikeys"):
		where = " across all namespaces"
	}
	var netErr *net.OpError
	switch {
	case err == nil:
		return nil
	case apimeta.IsNoMatchError(err) || isMissingResource(err):
		return errors.New("the cluster has no APIKey resource (apikeys.keywarden.dev): Keywarden's CRDs are not installed; " +
			"install Keywarden (kubectl apply -k config/default, or its Helm chart) or use the context of a cluster that has it")
	case apierrors.IsForbidden(err) && isRBAC(err):
		return fmt.Errorf("you may not %s %s%s: ask an admin for a Role that allows %q on %s (check with kubectl auth can-i %s %s%s)",
			verb, resource, where, verb, resource, verb, resource, nsFlag(namespace))
	case apierrors.IsForbidden(err):
		// An admission policy, a webhook or a quota: its own words.
		return fmt.Errorf("the API server refused to %s %s%s: %s", verb, resource, where, apiMessage(err))
	case apierrors.IsUnauthorized(err):
		return errors.New("the API server did not accept your credentials: log in again, or check the kubeconfig's user")
	case errors.As(err, &netErr):
		return fmt.Errorf("cannot reach the API server: %w", err)
	}
	return fmt.Errorf("%s %s%s: %w", verb, resource, where, err)
}

// nsFlag is the namespace flag of a hint: -A for every namespace.
func nsFlag(ns string) string {
	if ns == "" {
		return " -A"
	}
	return " -n " + ns
}

// isRBAC reports whether a 403 is the authorizer's (RBAC's) refusal, whose
// message says "cannot <verb> resource", rather than an admission
// policy's, a webhook's or a quota's.
func isRBAC(err error) bool {
	return strings.Contains(apiMessage(err), " cannot ") && strings.Contains(apiMessage(err), " resource ")
}

// isMissingResource reports a 404 for the resource itself, as a cluster
// without the CRD answers a list (discovery may still have the group
// cached).
func isMissingResource(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// notFound says a key does not exist.
func notFound(ns, name string) error {
	return fmt.Errorf("apikey %s/%s does not exist", ns, name)
}

// get reads one APIKey from the API server.
func (a *app) get(ctx context.Context, ns, name string) (*keywardenv1alpha1.APIKey, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	var k keywardenv1alpha1.APIKey
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &k); err != nil {
		if apierrors.IsNotFound(err) && !isMissingResource(err) {
			return nil, notFound(ns, name)
		}
		return nil, explain(err, "get", "apikeys.keywarden.dev", ns)
	}
	return &k, nil
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

// poll calls f every interval until it returns true or an error, or the
// timeout passes (then it returns false).
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		done, err := f()
		if done || err != nil {
			return done, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// seen reports whether the controller has completed a pass over the key's
// current generation (issued, stalled or refused it).
func seen(k *keywardenv1alpha1.APIKey) bool {
	return k.Status.ObservedGeneration >= k.Generation && k.Status.ObservedGeneration > 0
}

// pickedUp reports whether a controller has looked at the generation at
// all: a pass that failed with a transient error leaves the generation
// observed in its conditions only.
func pickedUp(k *keywardenv1alpha1.APIKey, generation int64) bool {
	if k.Status.ObservedGeneration >= generation && k.Status.ObservedGeneration > 0 {
		return true
	}
	for _, c := range k.Status.Conditions {
		if c.ObservedGeneration >= generation && c.ObservedGeneration > 0 {
			return true
		}
	}
	return false
}

// progress says what the controller last wrote of its work on the key:
// the Reconciling condition's reason and message, or "".
func progress(k *keywardenv1alpha1.APIKey) string {
	for _, c := range k.Status.Conditions {
		if c.Type == keywardenv1alpha1.ConditionReconciling && c.Status == "True" {
			return " (" + c.Reason + ": " + c.Message + ")"
		}
	}
	return ""
}

func stalled(k *keywardenv1alpha1.APIKey) *condition {
	for _, c := range k.Status.Conditions {
		if c.Type == keywardenv1alpha1.ConditionStalled && c.Status == "True" {
			return &condition{Reason: c.Reason, Message: c.Message}
		}
	}
	return nil
}

type condition struct{ Reason, Message string }

// managerMissing is what a command says when no controller picked up a
// change in time.
func managerMissing(what string, wait time.Duration) error {
	return fmt.Errorf("%s, but no Keywarden manager picked it up within %s: is it running? (kubectl get pods -n keywarden-system)", what, wait)
}
