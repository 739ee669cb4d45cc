package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/internal/webhookcert"
)

// Options are everything the controller is run with: `keywarden
// controller`'s flags.
type Options struct {
	Kube           options.Kube
	Metrics        options.Metrics
	Namespaces     options.Namespaces
	LeaderElection LeaderElection
	// ProbeAddress serves /healthz and /readyz; PprofAddress
	// /debug/pprof ("0" disables it).
	ProbeAddress, PprofAddress string
	// MaxConcurrentReconciles is how many APIKeys are reconciled at once.
	MaxConcurrentReconciles int
	// ScheduledRotationsPerSecond paces the scheduled rotations started.
	ScheduledRotationsPerSecond float64
	// SealingKeySecret keeps the keys that seal every key Secret.
	SealingKeySecret string
	// PerKeyMetrics exports one series a key for each per-key metric.
	PerKeyMetrics bool

	Webhook Webhook
	// VerifierCert is the verifier's certificate, which the controller
	// issues, publishes and renews for it.
	VerifierCert VerifierCert
	// CertTiming is the self-issued certificates' (webhook's and
	// verifier's).
	CertTiming webhookcert.Timing
}

// LeaderElection is how the controller's replicas elect the one that
// reconciles.
type LeaderElection struct {
	Enabled                                   bool
	Namespace                                 string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Webhook is the validating admission webhook for APIKeys.
type Webhook struct {
	Enabled bool
	Port    int
	CertDir string
	// Certs is self (the controller issues, stores, injects and renews
	// the certificate) or files (another tool puts it in CertDir).
	Certs                   string
	Service, Config, Secret string
}

// VerifierCert is the verifier's self-issued certificate: Secret keeps the
// CAs and the certificates (only the controller reads it), TLSSecret the
// serving pair alone, for the verifiers.
type VerifierCert struct {
	// Issue is --verifier-certs=self.
	Issue                                        bool
	Service, Secret, TLSSecret, CAConfigMap, Dir string
}

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
	fs.StringVar(&o.ProbeAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.StringVar(&o.PprofAddress, "pprof-bind-address", "0", "Address of the Go profiling endpoints (/debug/pprof); 0 disables them.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "How many APIKeys are reconciled at once.")
	fs.Float64Var(&o.ScheduledRotationsPerSecond, "scheduled-rotations-per-second", controllers.DefaultScheduledRotationsPerSecond,
		"How many rotations that a key's schedule brings due the controller starts a second, at most: when more come due at once, each waits its turn, behind issuance and revocation (rotations asked for in a key's spec are not paced).")
	fs.StringVar(&o.SealingKeySecret, "sealing-key-secret", "keywarden-sealing-key",
		"The Secret, in the controller's namespace, that keeps the keys sealing every key Secret Keywarden writes (created on first start; add a key to rotate).")
	fs.BoolVar(&o.PerKeyMetrics, "per-key-metrics", true,
		"Export the per-key series (keywarden_apikey_phase, keywarden_apikey_*_timestamp_seconds): one series a key for each; turn off for very large fleets, leaving the counts by namespace, class and phase.")

	le := &o.LeaderElection
	fs.BoolVar(&le.Enabled, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	fs.StringVar(&le.Namespace, "leader-election-namespace", "", "Namespace of the leader election lease; the controller's own namespace when empty (POD_NAMESPACE, else the ServiceAccount's, else keywarden-system).")
	fs.DurationVar(&le.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's lease lasts without renewal; a new leader takes over at most this long after the old one dies.")
	fs.DurationVar(&le.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	fs.DurationVar(&le.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")

	wh := &o.Webhook
	fs.BoolVar(&wh.Enabled, "enable-webhook", false, "Serve the validating admission webhook for APIKeys (see config/with-webhook).")
	fs.IntVar(&wh.Port, "webhook-port", 9443, "Port of the admission webhook.")
	fs.StringVar(&wh.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory of the webhook's tls.crt and tls.key.")
	fs.StringVar(&wh.Certs, "webhook-certs", "self",
		"Who provides the webhook's certificate: self (Keywarden issues, stores, injects and renews it) or files (something else, such as cert-manager, puts it in --webhook-cert-dir).")
	fs.StringVar(&wh.Service, "webhook-service", "keywarden-webhook-service", "The webhook's Service, in the controller's namespace, for the self-issued certificate's names.")
	fs.StringVar(&wh.Config, "webhook-configuration", "keywarden-validating-webhook-configuration", "The ValidatingWebhookConfiguration that receives the self-issued CA.")
	fs.StringVar(&wh.Secret, "webhook-cert-secret", "keywarden-webhook-cert", "The Secret, in the controller's namespace, that keeps the self-issued certificate.")

	vc := &o.VerifierCert
	fs.Var(newCertsFlag(&vc.Issue), "verifier-certs",
		"self: issue, store (--verifier-cert-secret), publish the CA of (--verifier-ca-configmap) and renew the verifier's TLS certificate, which the verifiers read; empty: leave it to something else.")
	fs.StringVar(&vc.Service, "verifier-service", "keywarden-verifier", "The verifier's Service, in the controller's namespace, for the self-issued certificate's names.")
	fs.StringVar(&vc.Secret, "verifier-cert-secret", "keywarden-verifier-cert",
		"The Secret, in the controller's namespace, that keeps the verifier's self-issued certificate and its CA's key; only the controller reads it.")
	fs.StringVar(&vc.TLSSecret, "verifier-tls-secret", "keywarden-verifier-tls",
		"The Secret, in the controller's namespace, that receives the verifier's serving certificate and key alone (no CA key), for the verifiers to read.")
	fs.StringVar(&vc.CAConfigMap, "verifier-ca-configmap", "keywarden-verifier-ca",
		"The ConfigMap, in the controller's namespace, where the CA of the verifier's self-issued certificate is published (key ca.crt) for clients.")
	fs.StringVar(&vc.Dir, "verifier-cert-dir", filepath.Join(os.TempDir(), "keywarden-verifier-certs"),
		"Where the verifier's certificate is also written, for --metrics-cert-dir: the metrics endpoint serves it, so that scrapers verify it with the published CA.")

	t := &o.CertTiming
	fs.DurationVar(&t.Validity, "self-issued-cert-validity", 365*24*time.Hour, "How long the self-issued certificates (the webhook's and the verifier's, and their CAs) are valid.")
	fs.DurationVar(&t.RenewBefore, "self-issued-cert-renew-before", 30*24*time.Hour,
		"How long before its end a self-issued certificate is renewed; at least four check intervals, for the overlap in which the next CA is trusted before it is served and the previous one after.")
	fs.DurationVar(&t.Interval, "self-issued-cert-check-interval", time.Hour,
		"How often every replica checks the self-issued certificates. Every replica, and every verifier, must run with the same interval.")
}

// Validate checks the options together.
func (o *Options) Validate() error {
	errs := []error{o.Kube.Validate(), options.CheckAddress("health-probe-bind-address", o.ProbeAddress)}
	if err := o.CertTiming.Check(); err != nil {
		errs = append(errs, fmt.Errorf("the timing of the self-issued certificates (--self-issued-cert-*): %w", err))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-reconciles must be at least 1, not %d", o.MaxConcurrentReconciles))
	}
	if !(o.ScheduledRotationsPerSecond > 0 && o.ScheduledRotationsPerSecond <= 10000) {
		errs = append(errs, fmt.Errorf("--scheduled-rotations-per-second must be above 0 and at most 10000, not %v", o.ScheduledRotationsPerSecond))
	}
	if o.SealingKeySecret == "" {
		errs = append(errs, errors.New("--sealing-key-secret is empty"))
	}
	if o.Webhook.Enabled && o.Webhook.Certs != "self" && o.Webhook.Certs != "files" {
		errs = append(errs, fmt.Errorf("--webhook-certs must be self or files, not %q", o.Webhook.Certs))
	}
	if vc := o.VerifierCert; vc.Issue && (vc.Service == "" || vc.Secret == "" || vc.TLSSecret == "" || vc.CAConfigMap == "" || vc.Dir == "") {
		errs = append(errs, errors.New("--verifier-certs=self needs --verifier-service, --verifier-cert-secret, --verifier-tls-secret, --verifier-ca-configmap and --verifier-cert-dir"))
	}
	if vc := o.VerifierCert; vc.Issue && vc.Secret == vc.TLSSecret {
		errs = append(errs, errors.New("--verifier-tls-secret must differ from --verifier-cert-secret: the verifiers may read the one, never the CA's key in the other"))
	}
	return errors.Join(errs...)
}

// certsFlag is --verifier-certs: self or empty.
type certsFlag struct{ issue *bool }

func newCertsFlag(issue *bool) *certsFlag { return &certsFlag{issue} }

func (f *certsFlag) String() string {
	if f.issue != nil && *f.issue {
		return "self"
	}
	return ""
}

func (f *certsFlag) Set(v string) error {
	switch v {
	case "self":
		*f.issue = true
	case "":
		*f.issue = false
	default:
		return fmt.Errorf("the controller issues the verifier's certificate (self) or leaves it to something else (empty), not %q", v)
	}
	return nil
}

func (f *certsFlag) Type() string { return "string" }
