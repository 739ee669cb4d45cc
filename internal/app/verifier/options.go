package verifier

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/pkg/verify"
)

// Options are everything the verifier is run with: `keywarden verifier`'s
// flags.
type Options struct {
	Kube       options.Kube
	Metrics    options.Metrics
	Namespaces options.Namespaces
	// PprofAddress serves /debug/pprof; "0" disables it.
	PprofAddress string

	// Address is where the verification endpoints listen; their own
	// /healthz and /readyz are the component's probes.
	Address string
	// Certs says where the serving certificate comes from: "self" (the
	// Secret TLSSecret, which the controller issues and renews), "files"
	// (CertFile and KeyFile), or "" (files when set, plain HTTP
	// otherwise).
	Certs             string
	CertFile, KeyFile string
	TLSSecret         string
	CertDir           string
	// CertCheckInterval is how often the Secret is read again: the
	// controller's --self-issued-cert-check-interval.
	CertCheckInterval time.Duration

	TrustedNamespaces, TrustedClasses string
	MaxStaleness                      time.Duration
	LastUsedInterval                  time.Duration
	ReportBudget                      time.Duration
}

// DefaultMaxStaleness rides through a restart or an upgrade of the control
// plane, and bounds how long a key revoked during a partition still
// verifies (README, "Verification").
const DefaultMaxStaleness = 5 * time.Minute

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{}
	o.AddFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return o
}

// AddFlags binds the options to fs, in groups.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Kube.AddFlags(fs, controllers.DefaultKubeAPIQPS, controllers.DefaultKubeAPIBurst)
	o.Metrics.AddFlags(fs, ":8443")
	o.Namespaces.AddFlags(fs)
	fs.StringVar(&o.PprofAddress, "pprof-bind-address", "0", "Address of the Go profiling endpoints (/debug/pprof); 0 disables them.")

	fs.StringVar(&o.Address, "verifier-bind-address", ":8090", "Address of the key verification endpoints, with their /healthz and /readyz.")
	fs.StringVar(&o.Certs, "verifier-certs", "",
		"Where the verifier's TLS certificate comes from: self (the Secret --verifier-tls-secret, which the controller issues, publishes the CA of, and renews), "+
			"files (--verifier-tls-cert-file and --verifier-tls-key-file), or empty: files when those are set, plain HTTP otherwise.")
	fs.StringVar(&o.CertFile, "verifier-tls-cert-file", "", "TLS certificate for the verification endpoints (reloaded when it changes).")
	fs.StringVar(&o.KeyFile, "verifier-tls-key-file", "", "TLS private key for the verification endpoints.")
	fs.StringVar(&o.TLSSecret, "verifier-tls-secret", "keywarden-verifier-tls",
		"The Secret, in the verifier's namespace, where the controller writes the serving certificate and key it issues for the verifier.")
	fs.StringVar(&o.CertDir, "verifier-cert-dir", filepath.Join(os.TempDir(), "keywarden-verifier-certs"), "Where the certificate read from --verifier-tls-secret is written for the server (and the metrics endpoint) to serve.")
	fs.DurationVar(&o.CertCheckInterval, "self-issued-cert-check-interval", time.Hour, "How often --verifier-tls-secret is read again: the controller's interval.")

	fs.StringVar(&o.TrustedNamespaces, "verifier-trusted-namespaces", "",
		"Comma-separated namespaces whose keys the verifier accepts from a request that names no namespace; "+
			"* for every namespace. A request left naming no namespace and no class gets 400: anyone who may create an APIKey can mint a key with any owner, role and scopes in its namespace.")
	fs.StringVar(&o.TrustedClasses, "verifier-trusted-classes", "",
		"Comma-separated APIKeyClasses whose keys the verifier accepts from a request that names no class (with namespaces named or defaulted, a key must match both).")
	fs.DurationVar(&o.MaxStaleness, "verifier-max-staleness", DefaultMaxStaleness,
		"How long the verifier may answer from its index while its watch of the API server fails, before /readyz and verification answer 503 (a revocation made meanwhile cannot reach it); 0 answers from the index however long.")
	fs.DurationVar(&o.LastUsedInterval, "last-used-interval", time.Minute, "How often status.lastUsedAt of keys with trackLastUsed is written, at most once per key.")
	fs.DurationVar(&o.ReportBudget, "verifier-report-budget", verify.DefaultReportBudget,
		"How long every answer to a leak report (POST /v1/keys/report) takes, found or not: the revocation is stored within it before the 202, or the answer is 503 with Retry-After.")
}

// Validate checks the options together.
func (o *Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kube.Validate(), options.CheckAddress("verifier-bind-address", o.Address))
	if o.Address == "0" {
		errs = append(errs, errors.New("--verifier-bind-address=0: the verifier has nothing else to do; do not run it instead"))
	}
	if _, err := o.trust(); err != nil {
		errs = append(errs, err)
	}
	switch o.Certs {
	case "":
		if (o.CertFile == "") != (o.KeyFile == "") {
			errs = append(errs, errors.New("--verifier-tls-cert-file and --verifier-tls-key-file go together"))
		}
	case "files":
		if o.CertFile == "" || o.KeyFile == "" {
			errs = append(errs, errors.New("--verifier-certs=files needs --verifier-tls-cert-file and --verifier-tls-key-file"))
		}
	case "self":
		if o.CertFile != "" || o.KeyFile != "" {
			errs = append(errs, errors.New("--verifier-certs=self serves the certificate of --verifier-tls-secret: drop --verifier-tls-cert-file and --verifier-tls-key-file"))
		}
		if o.TLSSecret == "" || o.CertDir == "" {
			errs = append(errs, errors.New("--verifier-certs=self needs --verifier-tls-secret and --verifier-cert-dir"))
		}
		if o.CertCheckInterval < time.Second {
			errs = append(errs, fmt.Errorf("--self-issued-cert-check-interval must be at least 1s, not %s", o.CertCheckInterval))
		}
	default:
		errs = append(errs, fmt.Errorf("--verifier-certs must be self or files, not %q", o.Certs))
	}
	if o.MaxStaleness < 0 || o.LastUsedInterval <= 0 {
		errs = append(errs, errors.New("--verifier-max-staleness must not be negative, and --last-used-interval must be positive"))
	}
	if o.ReportBudget < 100*time.Millisecond || o.ReportBudget > verify.MaxReportBudget {
		errs = append(errs, fmt.Errorf("--verifier-report-budget must be between 100ms (a revocation's write needs that) and %s (within the server's write timeout), not %s", verify.MaxReportBudget, o.ReportBudget))
	}
	return errors.Join(errs...)
}

// trust is the verifier's default trust: "*" alone among the namespaces
// is every namespace.
func (o *Options) trust() (verify.Trust, error) {
	t := verify.Trust{Namespaces: verify.List(o.TrustedNamespaces), Classes: verify.List(o.TrustedClasses)}
	if slices.Contains(t.Namespaces, "*") {
		if len(t.Namespaces) > 1 || len(t.Classes) > 0 {
			return verify.Trust{}, errors.New(`--verifier-trusted-namespaces=* trusts every namespace: it goes alone, without other namespaces or classes`)
		}
		t.Namespaces, t.AnyNamespace = nil, true
	}
	if slices.Contains(t.Classes, "*") {
		return verify.Trust{}, errors.New(`--verifier-trusted-classes does not take "*": trust every namespace with --verifier-trusted-namespaces=*`)
	}
	return t, nil
}
