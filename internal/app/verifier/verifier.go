// Package verifier assembles the verifier component (`keywarden
// verifier`): on every replica, without leader election, a watch of
// APIKeys, the key index it feeds (the only copy of the keys it keeps),
// the verification, authz and report endpoints, the usage recorder and
// the handling of suspect keys. It reads APIKeys, writes only
// lastUsedAt and revocations to their status (an admission policy holds it
// to that), and reads no Secret but its own certificate's.
package verifier

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/internal/webhookcert"
	"keywarden.dev/keywarden/pkg/verify"
)

// The verifier's rights (config/rbac/verifier/role.yaml is generated from
// these): reading APIKeys, patching their status (lastUsedAt, revocations:
// config/rbac/verifier_status_policy.yaml refuses anything else), reading
// a class for its revokeOnReuse, its events, and the reviews of the secured
// metrics endpoint. The Secret of its serving certificate (the pair alone,
// no CA key) is granted by name in its own namespace
// (config/rbac/verifier_cert_role.yaml).
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys,verbs=get;list;watch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeys/status,verbs=patch
// +kubebuilder:rbac:groups=keywarden.dev,resources=apikeyclasses,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// certWait bounds how long a verifier waits at start for the controller's
// first certificate.
const certWait = 5 * time.Minute

// Parts are what a verifier is built with besides its options; the zero
// value is the binary's.
type Parts struct {
	// Registerer receives the verifier's metrics; controller-runtime's
	// registry (which the metrics endpoint serves) when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Client, when set, wraps the client that writes status (lastUsedAt,
	// revocations): a test counts the writes there.
	Client func(client.Client) client.Client
}

// New builds the verifier's manager from validated options.
func New(ctx context.Context, cfg *rest.Config, o *Options, p Parts) (ctrl.Manager, error) {
	trust, err := o.trust()
	if err != nil {
		return nil, err
	}
	fresh := &verify.Freshness{}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                o.Metrics.ServerOptions(nil),
		HealthProbeBindAddress: "0", // the verifier's own server has /healthz and /readyz
		PprofBindAddress:       o.PprofAddress,
		Cache:                  cacheOptions(),
	})
	if err != nil {
		return nil, err
	}
	certFile, keyFile := o.CertFile, o.KeyFile
	if o.Certs == "self" {
		direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return nil, err
		}
		f := &webhookcert.Follower{
			Client:   direct,
			Secret:   types.NamespacedName{Namespace: options.OwnNamespace(), Name: o.TLSSecret},
			CertDir:  o.CertDir,
			Interval: o.CertCheckInterval,
			Log:      ctrl.Log.WithName("verifier-cert"),
		}
		wait, cancel := context.WithTimeout(ctx, certWait)
		defer cancel()
		if err := f.Wait(wait); err != nil {
			return nil, fmt.Errorf("the verifier's certificate (issued by the controller, which runs with --verifier-certs=self): %w", err)
		}
		if err := mgr.Add(f); err != nil {
			return nil, err
		}
		certFile, keyFile = filepath.Join(o.CertDir, webhookcert.CertKey), filepath.Join(o.CertDir, webhookcert.PrivKeyKey)
	}
	var w client.Client
	if p.Client != nil {
		w = p.Client(mgr.GetClient())
	}
	_, err = AddToManager(mgr, Serving{
		Addr: o.Address, CertFile: certFile, KeyFile: keyFile, LastUsedInterval: o.LastUsedInterval, Trust: trust,
		Namespaces: o.Namespaces.List(), Freshness: fresh, MaxStaleness: o.MaxStaleness, ReportBudget: o.ReportBudget,
		Registerer: p.Registerer, Now: p.Now, Client: w,
	})
	return mgr, err
}

// Run runs the verifier until ctx ends.
func Run(ctx context.Context, o *Options) error {
	log := ctrl.Log.WithName("setup")
	options.SetMemoryLimit(log)
	cfg, err := o.Kube.Config()
	if err != nil {
		return err
	}
	mgr, err := New(ctx, cfg, o, Parts{})
	if err != nil {
		return fmt.Errorf("setting up the verifier: %w", err)
	}
	log.Info("Starting the verifier")
	return mgr.Start(ctx)
}
