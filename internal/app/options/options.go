// Package options holds the option groups that Keywarden's components
// share: how each reaches the API server, serves its metrics and sets its
// memory limit. Each component (internal/app/controller,
// internal/app/verifier, internal/app/console) is assembled from one
// Options type made of such groups, with one Validate; cmd/keywarden only
// parses flags into them and runs the component.
package options

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"keywarden.dev/keywarden/internal/metricsauth"
	"keywarden.dev/keywarden/pkg/verify"
)

// Kube is how a component talks to the API server. The kubeconfig is
// controller-runtime's --kubeconfig flag (or KUBECONFIG, or the pod's
// ServiceAccount).
type Kube struct {
	QPS   float64
	Burst int
}

// AddFlags binds the group to fs.
func (k *Kube) AddFlags(fs *pflag.FlagSet, qps float64, burst int) {
	fs.Float64Var(&k.QPS, "kube-api-qps", qps, "Queries per second to the Kubernetes API server.")
	fs.IntVar(&k.Burst, "kube-api-burst", burst, "Burst of queries to the Kubernetes API server.")
}

// Validate checks the group.
func (k Kube) Validate() error {
	if k.QPS <= 0 || k.Burst <= 0 {
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive, not %v and %d", k.QPS, k.Burst)
	}
	return nil
}

// Config returns the client configuration with the group's limits.
func (k Kube) Config() (*rest.Config, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(k.QPS), k.Burst
	return cfg, nil
}

// Metrics is a component's Prometheus endpoint.
type Metrics struct {
	BindAddress string
	Secure      bool
	CertDir     string
}

// AddFlags binds the group to fs, with the component's default address.
func (m *Metrics) AddFlags(fs *pflag.FlagSet, addr string) {
	fs.StringVar(&m.BindAddress, "metrics-bind-address", addr, "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.BoolVar(&m.Secure, "metrics-secure", true,
		"Serve metrics over HTTPS only to clients the API server authenticates and authorizes to get the /metrics URL; false serves them over plain HTTP to anyone, for local runs.")
	fs.StringVar(&m.CertDir, "metrics-cert-dir", "",
		"Directory holding tls.crt and tls.key for the secure metrics endpoint, reloaded when they change (the verifier's certificate directory, or a cert-manager Certificate's Secret, mounted); a self-signed certificate when empty or when they are missing.")
}

// ServerOptions are controller-runtime's options for the endpoint. scrape,
// when not nil, answers /metrics in place of the client library's handler
// of controller-runtime's registry (behind the same authentication and
// authorization): the controller's writes its per-key series itself.
func (m Metrics) ServerOptions(scrape http.Handler) metricsserver.Options {
	o := metricsserver.Options{BindAddress: m.BindAddress}
	var auth func(*rest.Config, *http.Client) (metricsserver.Filter, error)
	if m.Secure {
		o.SecureServing = true
		o.CertDir = m.CertDir
		auth = metricsauth.Filter
	}
	o.FilterProvider = auth
	if scrape != nil {
		o.FilterProvider = func(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
			var filter metricsserver.Filter
			if auth != nil {
				var err error
				if filter, err = auth(cfg, hc); err != nil {
					return nil, err
				}
			}
			return func(log logr.Logger, h http.Handler) (http.Handler, error) {
				h = replacePath(metricsPath, scrape, h)
				if filter == nil {
					return h, nil
				}
				return filter(log, h)
			}, nil
		}
	}
	return o
}

// metricsPath is where controller-runtime's server answers scrapes.
const metricsPath = "/metrics"

// replacePath answers requests for path with h and the others with next.
func replacePath(path string, h, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Namespaces is --namespaces: the namespaces a component watches and
// writes in, every namespace when empty.
type Namespaces struct {
	flag string
}

// AddFlags binds the group to fs.
func (n *Namespaces) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&n.flag, "namespaces", "",
		"Comma-separated namespaces whose APIKeys this component reads and writes, watching nothing namespaced elsewhere "+
			"(see config/namespaced); every namespace when empty.")
}

// List returns the namespaces, none for every namespace.
func (n Namespaces) List() []string { return verify.List(n.flag) }

// Set sets the namespaces (for tests and embedders).
func (n *Namespaces) Set(namespaces ...string) { n.flag = strings.Join(namespaces, ",") }

// OwnNamespace is the namespace a component runs in: POD_NAMESPACE, else
// its ServiceAccount's, else keywarden-system. It keeps the sealing key,
// the certificates and the leader election lease.
func OwnNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "keywarden-system"
}

// errAddress is returned for an empty listen address.
var errAddress = errors.New("is empty: give an address such as :8090, or 0 to disable it")

// CheckAddress checks a listen address flag.
func CheckAddress(flag, v string) error {
	if v == "" {
		return fmt.Errorf("--%s %w", flag, errAddress)
	}
	return nil
}
