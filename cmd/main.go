// Command manager runs the Keywarden controller.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/console"
	"keywarden.dev/keywarden/internal/metricsauth"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/internal/webhookcert"
	"keywarden.dev/keywarden/pkg/verify"
)

func main() {
	var (
		metricsAddr, probeAddr string
		metricsSecure          bool
		metricsCertDir         string
		pprofAddr              string
		leaderElect            bool
		leaderElectNamespace   string
		leaseDuration          time.Duration
		renewDeadline          time.Duration
		retryPeriod            time.Duration
		concurrency            int
		qps                    float64
		burst                  int
		verifier               verifierFlags
		webhookFlags           webhookOptions
		sealingSecret          string
		certTiming             webhookcert.Timing
		perKeyMetrics          bool
		consoleAddr            string
		consoleSessionTTL      time.Duration
		consoleTrustHeader     bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS (a self-signed certificate) only to clients the API server authenticates and authorizes to get the /metrics URL; false serves them over plain HTTP to anyone, for local runs.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "", "Directory holding tls.crt and tls.key for the secure metrics endpoint, reloaded when they change (a cert-manager Certificate's Secret, mounted); a self-signed certificate when empty or when they are missing.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address of the Go profiling endpoints (/debug/pprof); 0 disables them.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.StringVar(&leaderElectNamespace, "leader-election-namespace", "", "Namespace of the leader election lease; the manager's own namespace when empty (required outside a cluster).")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's lease lasts without renewal; a new leader takes over at most this long after the old one dies.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "How many APIKeys are reconciled at once.")
	flag.Float64Var(&qps, "kube-api-qps", controllers.DefaultKubeAPIQPS, "Queries per second to the Kubernetes API server.")
	flag.IntVar(&burst, "kube-api-burst", controllers.DefaultKubeAPIBurst, "Burst of queries to the Kubernetes API server.")
	flag.StringVar(&namespacesFlag, "namespaces", "",
		"Comma-separated namespaces whose APIKeys the manager issues and verifies, watching and writing nothing namespaced elsewhere "+
			"(see config/namespaced); every namespace when empty.")
	flag.StringVar(&verifier.addr, "verifier-bind-address", ":8090", "Address of the key verification endpoints; 0 disables them.")
	flag.StringVar(&verifier.certFile, "verifier-tls-cert-file", "", "TLS certificate for the verification endpoints (reloaded when it changes); plain HTTP when empty.")
	flag.StringVar(&verifier.keyFile, "verifier-tls-key-file", "", "TLS private key for the verification endpoints.")
	flag.StringVar(&verifier.certs, "verifier-certs", "",
		"Who provides the verifier's TLS certificate: self (Keywarden issues, stores, publishes the CA of, and renews it), "+
			"files (--verifier-tls-cert-file and --verifier-tls-key-file), or empty: files when those are set, plain HTTP otherwise.")
	flag.StringVar(&verifier.service, "verifier-service", "keywarden-verifier", "The verifier's Service, in the manager's namespace, for the self-issued certificate's names.")
	flag.StringVar(&verifier.certSecret, "verifier-cert-secret", "keywarden-verifier-cert", "The Secret, in the manager's namespace, that keeps the verifier's self-issued certificate.")
	flag.StringVar(&verifier.caConfigMap, "verifier-ca-configmap", "keywarden-verifier-ca", "The ConfigMap, in the manager's namespace, where the CA of the verifier's self-issued certificate is published (key ca.crt) for clients.")
	flag.StringVar(&verifier.certDir, "verifier-cert-dir", filepath.Join(os.TempDir(), "keywarden-verifier-certs"), "Where the self-issued certificate is written for the verifier to serve.")
	flag.StringVar(&verifier.trustedNamespaces, "verifier-trusted-namespaces", "",
		"Comma-separated namespaces whose keys the verifier accepts from a request that names no namespace; "+
			"* for every namespace. A request left naming no namespace and no class gets 400: anyone who may create an APIKey can mint a key with any owner, role and scopes in its namespace.")
	flag.StringVar(&verifier.trustedClasses, "verifier-trusted-classes", "",
		"Comma-separated APIKeyClasses whose keys the verifier accepts from a request that names no class (with namespaces named or defaulted, a key must match both).")
	flag.DurationVar(&verifier.maxStaleness, "verifier-max-staleness", 0,
		"How long the verifier may answer from its index while its watch of the API server fails, before /readyz and verification answer 503; 0 answers from the index however long.")
	flag.DurationVar(&verifier.lastUsedInterval, "last-used-interval", time.Minute, "How often status.lastUsedAt of keys with trackLastUsed is written, at most once per key.")
	flag.BoolVar(&webhookFlags.enabled, "enable-webhook", false, "Serve the validating admission webhook for APIKeys (see config/with-webhook).")
	flag.IntVar(&webhookFlags.port, "webhook-port", 9443, "Port of the admission webhook.")
	flag.StringVar(&webhookFlags.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory of the webhook's tls.crt and tls.key.")
	flag.StringVar(&webhookFlags.certs, "webhook-certs", "self", "Who provides the webhook's certificate: self (Keywarden issues, stores, injects and renews it) or files (something else, such as cert-manager, puts it in --webhook-cert-dir).")
	flag.StringVar(&webhookFlags.service, "webhook-service", "keywarden-webhook-service", "The webhook's Service, in the manager's namespace, for the self-issued certificate's names.")
	flag.StringVar(&webhookFlags.config, "webhook-configuration", "keywarden-validating-webhook-configuration", "The ValidatingWebhookConfiguration that receives the self-issued CA.")
	flag.StringVar(&webhookFlags.secret, "webhook-cert-secret", "keywarden-webhook-cert", "The Secret, in the manager's namespace, that keeps the self-issued certificate.")
	flag.DurationVar(&certTiming.Validity, "self-issued-cert-validity", 365*24*time.Hour, "How long the self-issued certificates (the webhook's and the verifier's, and their CAs) are valid.")
	flag.DurationVar(&certTiming.RenewBefore, "self-issued-cert-renew-before", 30*24*time.Hour,
		"How long before its end a self-issued certificate is renewed; at least four check intervals, for the overlap in which the next CA is trusted before it is served and the previous one after.")
	flag.DurationVar(&certTiming.Interval, "self-issued-cert-check-interval", time.Hour, "How often every replica checks the self-issued certificates. Every replica must run with the same timing.")
	flag.StringVar(&sealingSecret, "sealing-key-secret", "keywarden-sealing-key", "The Secret, in the manager's namespace, that keeps the keys sealing every key Secret Keywarden writes (created on first start; add a key to rotate).")
	flag.StringVar(&consoleAddr, "console-bind-address", "0",
		"Address of the web console (plain HTTP: put it behind TLS, such as an Ingress or an authenticating proxy, except on loopback); 0 disables it. "+
			"The console has no rights of its own: people sign in with their Kubernetes bearer token, and it acts with it.")
	flag.DurationVar(&consoleSessionTTL, "console-session-ttl", 8*time.Hour, "How long a sign-in to the console lasts (never past its token's expiry).")
	flag.BoolVar(&consoleTrustHeader, "console-trust-authorization-header", false,
		"Act with the bearer token of each request's Authorization header, as an authenticating proxy in front of the console sets it, instead of a sign-in. Only when every request reaches the console through that proxy.")
	opts := zap.Options{}
	flag.BoolVar(&perKeyMetrics, "per-key-metrics", true, "Export the per-key series (keywarden_apikey_phase, keywarden_apikey_*_timestamp_seconds): one series a key for each; turn off for very large fleets, leaving the counts by namespace, class and phase.")
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	watched = verify.List(namespacesFlag)
	verifier.certTiming, webhookFlags.certTiming = certTiming, certTiming
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	if err := certTiming.Check(); err != nil {
		log.Error(err, "Invalid timing of the self-issued certificates (--self-issued-cert-*)")
		os.Exit(1)
	}
	if limit := setMemoryLimit(os.ReadFile); limit > 0 {
		log.Info("Set the Go memory limit from the container's", "bytes", limit)
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(qps), burst
	ctx := ctrl.SetupSignalHandler()

	direct, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		log.Error(err, "Unable to create a client")
		os.Exit(1)
	}
	if err := controllers.CheckCRDs(ctx, direct); err != nil {
		log.Error(err, "Refusing to start")
		os.Exit(1)
	}
	seals, err := newSealStore(ctx, direct, sealingSecret)
	if err != nil {
		log.Error(err, "Unable to load the sealing keys")
		os.Exit(1)
	}

	// The verifier runs in a manager of its own, without leader election,
	// so that a replica keeps verifying whatever happens to leadership.
	// The controllers use its cache, which it runs for the life of the
	// process, so that a replica holds one copy of every APIKey.
	verifierStopped := make(chan struct{})
	var shared *sharedCache
	keyState, metrics, err := registerKeyMetrics(perKeyMetrics)
	if err != nil {
		log.Error(err, "Unable to register the metrics")
		os.Exit(1)
	}
	if verifier.addr == "0" {
		close(verifierStopped)
	} else {
		vmgr, err := newVerifierManager(cfg, verifier, direct)
		if err != nil {
			log.Error(err, "Unable to set up the verifier")
			os.Exit(1)
		}
		shared = newSharedCache(vmgr.GetCache())
		if err := keyState.Watch(ctx, vmgr.GetCache()); err != nil {
			log.Error(err, "Unable to watch the keys for their metrics")
			os.Exit(1)
		}
		go func() {
			defer close(verifierStopped)
			if err := vmgr.Start(ctx); err != nil {
				log.Error(err, "The verifier stopped with an error")
				os.Exit(1)
			}
		}()
	}

	if consoleAddr != "0" {
		c, err := console.New(console.Options{Config: cfg, SessionTTL: consoleSessionTTL, TrustAuthorizationHeader: consoleTrustHeader, Log: ctrl.Log.WithName("console")})
		if err != nil {
			log.Error(err, "Unable to set up the console")
			os.Exit(1)
		}
		go func() {
			if err := c.Run(ctx, consoleAddr); err != nil {
				log.Error(err, "The console stopped")
				os.Exit(1)
			}
		}()
	}

	// The controllers run in a leader-elected manager. A replica that loses
	// its lease (an API server outage longer than the renew deadline) stands
	// again as a candidate instead of exiting.
	for rebuilding := false; ctx.Err() == nil; rebuilding = true {
		mgrOpts := managerOptions(metricsAddr, probeAddr, leaderElect)
		if metricsSecure {
			mgrOpts.Metrics.SecureServing = true
			mgrOpts.Metrics.FilterProvider = metricsauth.Filter
			mgrOpts.Metrics.CertDir = metricsCertDir
		}
		mgrOpts.PprofBindAddress = pprofAddr
		mgrOpts.LeaderElectionNamespace = leaderElectNamespace
		mgrOpts.LeaseDuration, mgrOpts.RenewDeadline, mgrOpts.RetryPeriod = &leaseDuration, &renewDeadline, &retryPeriod
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Port: webhookFlags.port, CertDir: webhookFlags.certDir})
		if shared != nil {
			view := shared.forManager()
			mgrOpts.NewCache = func(*rest.Config, cache.Options) (cache.Cache, error) { return view, nil }
		}
		mgr, err := newControllerManager(cfg, mgrOpts, concurrency, seals, webhookFlags, metrics)
		switch {
		case err != nil && rebuilding:
			// Still cut off from the API server: try again shortly.
			log.Error(err, "Unable to set up the manager again; retrying")
			select {
			case <-ctx.Done():
			case <-time.After(retryPeriod):
			}
			continue
		case err != nil:
			log.Error(err, "Unable to set up the manager")
			os.Exit(1)
		}
		if shared == nil {
			// The keys' metrics follow this manager's cache, replayed
			// from the start.
			keyState.Reset()
			if err := keyState.Watch(ctx, mgr.GetCache()); err != nil {
				log.Error(err, "Unable to watch the keys for their metrics")
				os.Exit(1)
			}
		}
		log.Info("Starting the manager")
		err = mgr.Start(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && strings.Contains(err.Error(), "leader election lost"):
			log.Info("Lost the leader election lease; standing again as a candidate")
		case err != nil:
			log.Error(err, "The manager stopped with an error")
			os.Exit(1)
		}
	}
	// Stopping: let the verifier flush recorded use.
	<-verifierStopped
}

// newControllerManager builds the leader-elected manager: the APIKey and
// APIKeyClass controllers and, when enabled, the webhook.
func newControllerManager(cfg *rest.Config, opts ctrl.Options, concurrency int, seals *seal.Store, wh webhookOptions, metrics *controllers.Metrics) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := (&controllers.APIKeyReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("keywarden"),
		Seals:                   seals,
		MaxConcurrentReconciles: concurrency,
		Namespaces:              watched,
		Metrics:                 metrics,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the APIKey controller: %w", err)
	}
	if err := (&controllers.APIKeyClassReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the APIKeyClass controller: %w", err)
	}
	if wh.enabled {
		if err := setupWebhook(mgr, cfg, wh); err != nil {
			return nil, fmt.Errorf("setting up the webhook: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, mgr.AddReadyzCheck("readyz", healthz.Ping)
}

// newSealStore loads the sealing keys from the Secret of that name in the
// manager's namespace, creating it on first start, so that a missing
// permission or namespace stops the manager at once.
func newSealStore(ctx context.Context, direct client.Client, name string) (*seal.Store, error) {
	s := &seal.Store{Client: direct, Secret: types.NamespacedName{Namespace: managerNamespace(), Name: name}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s, s.Ensure(ctx)
}

// newVerifierManager builds the manager that serves verification on every
// replica: an APIKey cache, the verifier's index, server and usage recorder.
func newVerifierManager(cfg *rest.Config, f verifierFlags, direct client.Client) (ctrl.Manager, error) {
	fresh := &verify.Freshness{}
	cacheOpts := controllers.CacheOptionsFor(watched)
	cacheOpts.DefaultWatchErrorHandler = fresh.WatchError
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"}, // served by the controller manager
		HealthProbeBindAddress: "0",                                     // the verifier has /healthz and /readyz
		Cache:                  cacheOpts,
	})
	if err != nil {
		return nil, err
	}
	trust, err := f.trust()
	if err != nil {
		return nil, err
	}
	switch f.certs {
	case "", "files":
		if f.certs == "files" && f.certFile == "" {
			return nil, errors.New("--verifier-certs=files needs --verifier-tls-cert-file and --verifier-tls-key-file")
		}
	case "self":
		if f.certFile != "" || f.keyFile != "" {
			return nil, errors.New("--verifier-certs=self issues the certificate: drop --verifier-tls-cert-file and --verifier-tls-key-file")
		}
		ns := managerNamespace()
		rotator := &webhookcert.Rotator{
			Client:      direct,
			Secret:      types.NamespacedName{Namespace: ns, Name: f.certSecret},
			CAConfigMap: types.NamespacedName{Namespace: ns, Name: f.caConfigMap},
			CertDir:     f.certDir,
			Timing:      f.certTiming,
			Log:         ctrl.Log.WithName("verifier-cert"),
		}
		if err := selfIssued(mgr, rotator, f.service, ns); err != nil {
			return nil, fmt.Errorf("issuing the verifier's certificate: %w", err)
		}
		f.certFile, f.keyFile = filepath.Join(f.certDir, webhookcert.CertKey), filepath.Join(f.certDir, webhookcert.PrivKeyKey)
	default:
		return nil, fmt.Errorf("--verifier-certs must be self or files, not %q", f.certs)
	}
	_, err = verify.AddToManager(mgr, verify.Options{
		Addr: f.addr, CertFile: f.certFile, KeyFile: f.keyFile, LastUsedInterval: f.lastUsedInterval, Trust: trust,
		Freshness: fresh, MaxStaleness: f.maxStaleness,
	})
	return mgr, err
}

// With --metrics-secure, the API server authenticates and authorizes each
// scrape of the metrics endpoint:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

func managerOptions(metricsAddr, probeAddr string, leaderElect bool) ctrl.Options {
	return ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "keywarden.dev",
		// A replica that stops cleanly hands leadership over at once.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptionsFor(watched),
		// The controllers are built again when leadership is lost and
		// regained, in the same process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}
}

type webhookOptions struct {
	enabled                 bool
	port                    int
	certDir, certs          string
	service, config, secret string
	certTiming              webhookcert.Timing
}

// setupWebhook registers the APIKey validator and, unless another tool
// provides the certificate, issues it before the webhook server starts and
// renews it while the manager runs.
func setupWebhook(mgr ctrl.Manager, cfg *rest.Config, f webhookOptions) error {
	switch f.certs {
	case "files":
	case "self":
		direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return err
		}
		ns := managerNamespace()
		rotator := &webhookcert.Rotator{
			Client:        direct,
			Secret:        types.NamespacedName{Namespace: ns, Name: f.secret},
			WebhookConfig: f.config,
			CertDir:       f.certDir,
			Timing:        f.certTiming,
			Log:           ctrl.Log.WithName("webhook-cert"),
		}
		if err := selfIssued(mgr, rotator, f.service, ns); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--webhook-certs must be self or files, not %q", f.certs)
	}
	v := &controllers.APIKeyValidator{Client: mgr.GetClient()}
	if len(watched) > 0 {
		v.Namespaces = mgr.GetAPIReader()
	}
	return v.SetupWebhookWithManager(mgr)
}

// selfIssued has the rotator issue a certificate for the Service's names
// in the namespace now, before the server that uses it starts, and renew
// it while the manager runs.
func selfIssued(mgr ctrl.Manager, r *webhookcert.Rotator, service, namespace string) error {
	r.Names = []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Ensure(ctx); err != nil {
		return err
	}
	return mgr.Add(r)
}

// managerNamespace is the namespace the manager runs in: POD_NAMESPACE, else
// the service account's, else keywarden-system.
func managerNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "keywarden-system"
}

// namespacesFlag is --namespaces, and watched its namespaces: none for
// every namespace.
var (
	namespacesFlag string
	watched        []string
)

type verifierFlags struct {
	addr, certFile, keyFile           string
	certs, service, certSecret        string
	caConfigMap, certDir              string
	trustedNamespaces, trustedClasses string
	lastUsedInterval, maxStaleness    time.Duration
	certTiming                        webhookcert.Timing
}

// trust is the verifier's default trust: "*" alone among the namespaces
// is every namespace.
func (f verifierFlags) trust() (verify.Trust, error) {
	t := verify.Trust{Namespaces: verify.List(f.trustedNamespaces), Classes: verify.List(f.trustedClasses)}
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
