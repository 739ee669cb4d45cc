// Package controller assembles the controller component (`keywarden
// controller`): the leader-elected manager that runs the APIKey and
// APIKeyClass reconcilers, the notifier and, where installed, the
// admission webhook. It alone writes key Secrets, issues the self-issued
// certificates (the webhook's and the verifier's) and publishes their CAs;
// it answers only its metrics, probes and webhook, and calls only the API
// server and the receivers that classes name.
package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/internal/keymetrics"
	"keywarden.dev/keywarden/internal/leasefence"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/internal/webhookcert"
)

// With --metrics-secure, the API server authenticates and authorizes each
// scrape of the metrics endpoint:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// startTimeout bounds what the controller does before its manager starts:
// the CRD check, the sealing key, the first certificates.
const startTimeout = 30 * time.Second

// Run runs the controller until ctx ends. A replica that loses its lease
// (an API server outage longer than the renew deadline) stands again as a
// candidate, in a manager built anew, instead of exiting.
func Run(ctx context.Context, o *Options) error {
	log := ctrl.Log.WithName("setup")
	options.SetMemoryLimit(log)
	cfg, err := o.Kube.Config()
	if err != nil {
		return err
	}
	direct, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	start, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := controllers.CheckCRDs(start, direct); err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	seals := &seal.Store{Client: direct, Secret: types.NamespacedName{Namespace: options.OwnNamespace(), Name: o.SealingKeySecret}}
	if err := seals.Ensure(start); err != nil {
		return fmt.Errorf("loading the sealing keys: %w", err)
	}
	// The keys' state is exported once for the process, replayed from the
	// cache of each manager built.
	keyState := &keymetrics.Collector{PerKey: o.PerKeyMetrics}
	if err := ctrlmetrics.Registry.Register(keyState); err != nil {
		return err
	}
	passes, err := controllers.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	notifications, err := controllers.NewNotificationMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	for rebuilding := false; ctx.Err() == nil; rebuilding = true {
		mgr, err := New(cfg, o, Parts{Seals: seals, Metrics: passes, Notifications: notifications, KeyState: keyState, Direct: direct})
		switch {
		case err != nil && rebuilding:
			// Still cut off from the API server: try again shortly.
			log.Error(err, "Unable to set up the manager again; retrying")
			select {
			case <-ctx.Done():
			case <-time.After(o.LeaderElection.RetryPeriod):
			}
			continue
		case err != nil:
			return fmt.Errorf("setting up the manager: %w", err)
		}
		log.Info("Starting the controller")
		err = mgr.Start(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && strings.Contains(err.Error(), "leader election lost"):
			log.Info("Lost the leader election lease; standing again as a candidate")
		case err != nil:
			return fmt.Errorf("the manager stopped: %w", err)
		}
	}
	return nil
}

// Parts are what a controller manager is built with besides its options:
// what lives as long as the process.
type Parts struct {
	Seals   *seal.Store
	Metrics *controllers.Metrics
	// Notifications, when set, counts the notifications sent.
	Notifications *prometheus.CounterVec
	// KeyState, when set, exports the keys' state, replayed from the
	// cache of the manager built.
	KeyState *keymetrics.Collector
	// Direct reads and writes the API server without a cache: the
	// certificates' Secrets and ConfigMap.
	Direct client.Client
	// ManagerOptions, when set, adjusts the manager's options before it is
	// built: tests keep APIKeys they reconcile by hand out of its cache.
	ManagerOptions func(*ctrl.Options)
}

// New builds the leader-elected manager: the APIKey and APIKeyClass
// controllers, the verifier's certificate when the controller issues it,
// and, when enabled, the webhook.
func New(cfg *rest.Config, o *Options, p Parts) (ctrl.Manager, error) {
	le := o.LeaderElection
	namespaces := o.Namespaces.List()
	// The keys' state, when exported, is served with controller-runtime's
	// registry by a handler that writes the per-key series itself.
	var scrape http.Handler
	if p.KeyState != nil {
		scrape = p.KeyState.Handler(ctrlmetrics.Registry)
	}
	mo := ctrl.Options{
		Scheme:                        controllers.NewScheme(),
		Metrics:                       o.Metrics.ServerOptions(scrape),
		HealthProbeBindAddress:        o.ProbeAddress,
		PprofBindAddress:              o.PprofAddress,
		LeaderElection:                le.Enabled,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       le.Namespace,
		LeaseDuration:                 &le.LeaseDuration,
		RenewDeadline:                 &le.RenewDeadline,
		RetryPeriod:                   &le.RetryPeriod,
		LeaderElectionReleaseOnCancel: true, // a replica that stops cleanly hands leadership over at once
		Cache:                         controllers.CacheOptionsFor(namespaces),
		WebhookServer:                 webhook.NewServer(webhook.Options{Port: o.Webhook.Port, CertDir: o.Webhook.CertDir}),
		// The controllers are built again when leadership is lost and
		// regained, in the same process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}
	var lease *leasefence.Lock
	leaseEvents := &leaseEvents{}
	if le.Enabled {
		var err error
		if lease, err = leaderLock(cfg, le, leaseEvents); err != nil {
			return nil, err
		}
		mo.LeaderElectionResourceLockInterface = lease
	}
	if p.ManagerOptions != nil {
		p.ManagerOptions(&mo)
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	leaseEvents.set(mgr.GetEventRecorder("keywarden-leader-election"))
	// The controllers write only while this replica certainly leads: one
	// that wakes from a pause longer than its lease acts on a cache from
	// before it, and must not write until it has stepped down.
	writer := lease.Client(mgr.GetClient())
	if err := (&controllers.APIKeyReconciler{
		Client:                      writer,
		Lease:                       lease,
		APIReader:                   mgr.GetAPIReader(),
		Recorder:                    mgr.GetEventRecorder("keywarden"),
		Seals:                       p.Seals,
		MaxConcurrentReconciles:     o.MaxConcurrentReconciles,
		ScheduledRotationsPerSecond: o.ScheduledRotationsPerSecond,
		Namespaces:                  namespaces,
		Metrics:                     p.Metrics,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the APIKey controller: %w", err)
	}
	if err := (&controllers.APIKeyClassReconciler{Client: writer}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the APIKeyClass controller: %w", err)
	}
	if err := (&controllers.NotifyReconciler{
		Client: writer, Secrets: mgr.GetAPIReader(), Namespace: options.OwnNamespace(),
		Lease: lease, Delivered: p.Notifications,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the notifier: %w", err)
	}
	if ks := p.KeyState; ks != nil {
		ks.Reset()
		if err := ks.Watch(context.Background(), mgr.GetCache()); err != nil {
			return nil, err
		}
	}
	ns := options.OwnNamespace()
	if vc := o.VerifierCert; vc.Issue {
		rotator := &webhookcert.Rotator{
			Client:        p.Direct,
			Secret:        types.NamespacedName{Namespace: ns, Name: vc.Secret},
			ServingSecret: types.NamespacedName{Namespace: ns, Name: vc.TLSSecret},
			CAConfigMap:   types.NamespacedName{Namespace: ns, Name: vc.CAConfigMap},
			CertDir:       vc.Dir,
			Timing:        o.CertTiming,
			Log:           ctrl.Log.WithName("verifier-cert"),
		}
		if err := selfIssued(mgr, rotator, vc.Service, ns); err != nil {
			return nil, fmt.Errorf("issuing the verifier's certificate: %w", err)
		}
	}
	if o.Webhook.Enabled {
		if err := setupWebhook(mgr, o, p.Direct, namespaces); err != nil {
			return nil, fmt.Errorf("setting up the webhook: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, mgr.AddReadyzCheck("readyz", healthz.Ping)
}

// setupWebhook registers the APIKey validator and, unless another tool
// provides the certificate, issues it before the webhook server starts and
// renews it while the manager runs.
func setupWebhook(mgr ctrl.Manager, o *Options, direct client.Client, namespaces []string) error {
	f := o.Webhook
	if f.Certs == "self" {
		ns := options.OwnNamespace()
		rotator := &webhookcert.Rotator{
			Client:        direct,
			Secret:        types.NamespacedName{Namespace: ns, Name: f.Secret},
			WebhookConfig: f.Config,
			CertDir:       f.CertDir,
			Timing:        o.CertTiming,
			Log:           ctrl.Log.WithName("webhook-cert"),
		}
		if err := selfIssued(mgr, rotator, f.Service, ns); err != nil {
			return err
		}
	}
	v := &controllers.APIKeyValidator{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	if len(namespaces) > 0 {
		v.Namespaces = mgr.GetAPIReader()
	}
	return v.SetupWebhookWithManager(mgr)
}

// selfIssued has the rotator issue a certificate for the Service's names
// in the namespace now, before the server that uses it starts, and renew
// it while the manager runs.
func selfIssued(mgr ctrl.Manager, r *webhookcert.Rotator, service, namespace string) error {
	r.Names = []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := r.Ensure(ctx); err != nil {
		return err
	}
	return mgr.Add(r)
}
