package verify

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Options configure the verifier that AddToManager runs.
type Options struct {
	// Addr is the listen address of the verification endpoints.
	Addr string
	// CertFile and KeyFile, when both set, serve TLS.
	CertFile, KeyFile string
	// LastUsedInterval is how often lastUsedAt is written, at most once
	// per key; a minute when zero.
	LastUsedInterval time.Duration
	// Registerer receives the metrics; the manager's registry when nil.
	Registerer prometheus.Registerer
	// Client writes lastUsedAt; the manager's client when nil.
	Client client.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// AddToManager runs the verifier in the manager on every replica, whether
// or not it is the leader: an index fed by the manager's APIKey informer,
// the usage recorder and the HTTP server. It returns the index.
func AddToManager(mgr ctrl.Manager, o Options) (*Index, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("the verifier's TLS certificate and key files go together")
	}
	if o.LastUsedInterval <= 0 {
		o.LastUsedInterval = time.Minute
	}
	if o.Registerer == nil {
		o.Registerer = ctrlmetrics.Registry
	}
	if o.Client == nil {
		o.Client = mgr.GetClient()
	}
	index := NewIndex()
	reg, err := index.Watch(context.Background(), mgr.GetCache())
	if err != nil {
		return nil, err
	}
	metrics, err := NewMetrics(o.Registerer, index)
	if err != nil {
		return nil, err
	}
	log := mgr.GetLogger().WithName("verifier")
	usage := NewUsageRecorder(o.Client, o.LastUsedInterval, log)
	usage.Recorded = index.LastUsedAt
	if err := mgr.Add(usage); err != nil {
		return nil, err
	}
	return index, mgr.Add(&Server{
		Addr:     o.Addr,
		CertFile: o.CertFile,
		KeyFile:  o.KeyFile,
		Handler:  &Handler{Index: index, Usage: usage, Metrics: metrics, Log: log, Now: o.Now},
		Ready:    reg.HasSynced,
		Log:      log,
	})
}
