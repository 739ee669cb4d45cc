// Package kit starts Keywarden's components for the integration suites,
// against a real control plane with the CRDs, the RBAC and the admission
// policies of config/ installed. Each component is built by the
// constructor the binary uses (controller.New, verifier.New), from the
// flags the binary parses and validates, and runs under its own
// ServiceAccount: the API server holds it to the rights a deployment
// gives it, and tests assert through an administrator's direct client.
package kit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/spf13/pflag"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/controller"
	"keywarden.dev/keywarden/internal/app/verifier"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/test/harness"
)

// The components' ServiceAccounts, as config/rbac names them, in
// harness.ManagerNamespace.
const (
	ControllerAccount = "keywarden-manager"
	VerifierAccount   = "keywarden-verifier"
)

// Options configure the environment.
type Options struct {
	// Webhooks are installed by envtest, pointed at its local serving
	// address (Env.WebhookInstallOptions), where the controller's webhook
	// server listens when started with WebhookArgs.
	Webhooks []*admissionv1.ValidatingWebhookConfiguration
}

// Env is a running control plane with Keywarden installed.
type Env struct {
	*envtest.Environment
	// Config and Client are an administrator's; Client reads the API
	// server directly.
	Config *rest.Config
	Client client.WithWatch
}

// Start starts the control plane and installs the CRDs, the manager's
// namespace and config/rbac (the accounts, their roles and the admission
// policies on their writes).
func Start(o Options) (*Env, error) {
	env, err := harness.NewEnvironment()
	if err != nil {
		return nil, err
	}
	env.WebhookInstallOptions.ValidatingWebhooks = o.Webhooks
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	e := &Env{Environment: env, Config: cfg}
	if e.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: controllers.NewScheme()}); err != nil {
		return nil, e.stopAfter(err)
	}
	if err := harness.CreateManagerNamespace(cfg); err != nil {
		return nil, e.stopAfter(err)
	}
	objs, err := harness.Kustomize("config/rbac")
	if err != nil {
		return nil, e.stopAfter(err)
	}
	for _, obj := range objs {
		if err := e.Client.Create(context.Background(), obj); err != nil {
			return nil, e.stopAfter(fmt.Errorf("installing %s %s: %w", obj.GetKind(), obj.GetName(), err))
		}
	}
	return e, nil
}

func (e *Env) stopAfter(err error) error {
	return errors.Join(err, e.Stop())
}

// As is the configuration of a client that acts as the ServiceAccount of
// the manager's namespace.
func (e *Env) As(account string) *rest.Config {
	c := rest.CopyConfig(e.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + harness.ManagerNamespace + ":" + account}
	return c
}

// WebhookArgs are the controller's flags that serve the admission webhook
// where envtest installed its configurations (Options.Webhooks).
func (e *Env) WebhookArgs() []string {
	w := e.WebhookInstallOptions
	return []string{"--enable-webhook", "--webhook-certs=files",
		"--webhook-port=" + strconv.Itoa(w.LocalServingPort), "--webhook-cert-dir=" + w.LocalServingCertDir}
}

// Running is a started component.
type Running struct {
	Manager ctrl.Manager
	// URL is the verifier's address (http://host:port).
	URL string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

// Stop stops the component and returns what its manager returned.
func (r *Running) Stop() error {
	r.cancel()
	r.wg.Wait()
	return r.err
}

func run(mgr ctrl.Manager) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Manager: mgr, cancel: cancel}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.err = mgr.Start(ctx)
	}()
	return r
}

// parse parses the component's flags, after the defaults of a test: no
// metrics or probe endpoint.
func parse(name string, addFlags func(*pflag.FlagSet), validate func() error, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	addFlags(fs)
	if err := fs.Parse(append([]string{"--metrics-bind-address=0"}, args...)); err != nil {
		return err
	}
	return validate()
}

// StartController builds the controller as `keywarden controller` with
// the given flags does, under its ServiceAccount, and starts it. Parts not
// given are made as the binary makes them: a direct client and the
// sealing-key store, as the controller's account.
func (e *Env) StartController(args []string, p controller.Parts) (*Running, error) {
	o := &controller.Options{}
	if err := parse("controller", o.AddFlags, o.Validate, append([]string{"--health-probe-bind-address=0"}, args...)); err != nil {
		return nil, err
	}
	cfg := e.As(ControllerAccount)
	if p.Direct == nil {
		direct, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
		if err != nil {
			return nil, err
		}
		p.Direct = direct
	}
	if p.Seals == nil {
		p.Seals = &seal.Store{Client: p.Direct, Secret: types.NamespacedName{Namespace: harness.ManagerNamespace, Name: o.SealingKeySecret}}
		if err := p.Seals.Ensure(context.Background()); err != nil {
			return nil, err
		}
	}
	mgr, err := controller.New(cfg, o, p)
	if err != nil {
		return nil, err
	}
	return run(mgr), nil
}

// StartVerifier builds the verifier as `keywarden verifier` with the
// given flags does, under its ServiceAccount, and starts it, serving on a
// free loopback port unless the flags name an address.
func (e *Env) StartVerifier(args []string, p verifier.Parts) (*Running, error) {
	return e.StartVerifierWith(e.As(VerifierAccount), args, p)
}

// StartVerifierWith is StartVerifier with a configuration of the caller's:
// through a proxy in front of the API server, say.
func (e *Env) StartVerifierWith(cfg *rest.Config, args []string, p verifier.Parts) (*Running, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	o := &verifier.Options{}
	if err := parse("verifier", o.AddFlags, o.Validate, append([]string{"--verifier-bind-address=" + addr}, args...)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := verifier.New(ctx, cfg, o, p)
	if err != nil {
		return nil, err
	}
	r := run(mgr)
	r.URL = "http://" + o.Address
	return r, nil
}
