package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
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
	// Trust is the default for the namespaces, and for the classes, that
	// a request does not name; a request left with neither gets 400.
	Trust Trust
	// Freshness, when set, follows whether the index is current; its
	// WatchError must be the manager cache's watch error handler. The
	// metric keywarden_verifier_index_staleness_seconds reports it.
	Freshness *Freshness
	// MaxStaleness, when not zero, is how stale the index may be before
	// /readyz and verification answer 503. It needs Freshness.
	MaxStaleness time.Duration
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
	if o.MaxStaleness > 0 && o.Freshness == nil {
		return nil, errors.New("a maximum staleness needs a Freshness that the cache reports watch errors to")
	}
	index := NewIndex()
	index.OnConflict = conflictEvents(mgr)
	reg, err := index.Watch(context.Background(), mgr.GetCache())
	if err != nil {
		return nil, err
	}
	metrics, err := NewMetrics(o.Registerer, index)
	if err != nil {
		return nil, err
	}
	var staleness func() time.Duration
	if f := o.Freshness; f != nil {
		staleness = f.Staleness
		if err := mgr.Add(f.Follow(mgr.GetCache(), APIServerReady(mgr.GetHTTPClient(), mgr.GetConfig()))); err != nil {
			return nil, err
		}
		if err := o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keywarden_verifier_index_staleness_seconds",
			Help: "How long the verifier's key index has not been known to be current: 0 while its watch of the API server runs.",
		}, func() float64 { return f.Staleness().Seconds() })); err != nil {
			return nil, err
		}
	}
	log := mgr.GetLogger().WithName("verifier")
	usage := NewUsageRecorder(o.Client, o.LastUsedInterval, log)
	usage.Recorded = index.LastUsedAt
	if err := mgr.Add(usage); err != nil {
		return nil, err
	}
	revoker := newRevoker(mgr, o.Client, o.Now)
	h := &Handler{Index: index, Usage: usage, Metrics: metrics, Log: log, Now: o.Now, Ready: reg.HasSynced, Trust: o.Trust,
		Staleness: staleness, MaxStaleness: o.MaxStaleness, RotatedKeyUsed: revoker.rotatedKeyUsed}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		h.RunReports(ctx.Done(), revoker.reported)
		return nil
	})); err != nil {
		return nil, err
	}
	srv := &Server{Addr: o.Addr, CertFile: o.CertFile, KeyFile: o.KeyFile, Handler: h, Log: log}
	return index, srv.AddTo(mgr)
}

// conflictEvents reports, with a Warning event on each of them, APIKeys
// that record the same key hash. The events name the APIKeys, never the
// key or its hash.
func conflictEvents(mgr ctrl.Manager) func(types.NamespacedName, []types.NamespacedName) {
	rec := mgr.GetEventRecorder("keywarden-verifier")
	reader := mgr.GetClient()
	log := mgr.GetLogger().WithName("verifier")
	return func(added types.NamespacedName, others []types.NamespacedName) {
		all := append([]types.NamespacedName{added}, others...)
		names := make([]string, len(all))
		for i, nn := range all {
			names[i] = nn.String()
		}
		note := fmt.Sprintf("APIKeys %s record the same key hash, which Keywarden never issues twice; the verifier refuses the key (CONFLICT) for each of them until only one records it",
			strings.Join(names, ", "))
		log.Info("APIKeys record the same key hash; refusing the key for each", "apiKeys", names)
		for _, nn := range all {
			k := &keywardenv1alpha1.APIKey{}
			if err := reader.Get(context.Background(), nn, k); err != nil {
				continue
			}
			rec.Eventf(k, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventKeyConflict, "Verify", "%s", note)
		}
	}
}

// revoker reports, with Warning events, what the verifier sees of a key
// that may be in the wrong hands, and revokes the key's APIKey when it
// must, by recording the revocation in its status (every replica's index
// sees it revoked as soon as its watch delivers the write). Events and
// revocations name a key's display prefix, never the key.
type revoker struct {
	rec    events.EventRecorder
	reader client.Reader // the cache
	fresh  client.Reader // the API server
	w      client.Client
	log    logr.Logger
	now    func() time.Time
}

func newRevoker(mgr ctrl.Manager, w client.Client, now func() time.Time) *revoker {
	if now == nil {
		now = time.Now
	}
	return &revoker{rec: mgr.GetEventRecorder("keywarden-verifier"), reader: mgr.GetClient(), fresh: mgr.GetAPIReader(),
		w: w, log: mgr.GetLogger().WithName("verifier"), now: now}
}

// rotatedKeyUsed reports a use of a rotated-out key past its grace on its
// APIKey, and revokes the APIKey when its class has revokeOnReuse.
func (r *revoker) rotatedKeyUsed(nn types.NamespacedName, prefix string) {
	ctx := context.Background()
	k := &keywardenv1alpha1.APIKey{}
	if err := r.reader.Get(ctx, nn, k); err != nil {
		return
	}
	note := fmt.Sprintf("Key %s..., rotated out of this APIKey, was used after its grace period; whoever holds it should use the current key", prefix)
	revoke := false
	if class := k.Status.ClassName; class != "" && !lifecycle.Revoked(k) {
		c := &keywardenv1alpha1.APIKeyClass{}
		if err := r.reader.Get(ctx, types.NamespacedName{Name: class}, c); err == nil && c.Spec.Rotation != nil && c.Spec.Rotation.RevokeOnReuse {
			revoke = true
			note += fmt.Sprintf("; APIKeyClass %s revokes on reuse, so the APIKey is revoked", class)
		}
	}
	r.rec.Eventf(k, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventRotatedKeyUsed, "Verify", "%s", note)
	if revoke {
		r.revoke(ctx, nn, keywardenv1alpha1.ReasonRotatedKeyReused, fmt.Sprintf("key %s..., rotated out, was used after its grace period", prefix))
	}
}

// reported revokes the APIKey of a key reported as leaked.
func (r *revoker) reported(nn types.NamespacedName, prefix string) {
	ctx := context.Background()
	k := &keywardenv1alpha1.APIKey{}
	if err := r.reader.Get(ctx, nn, k); err != nil {
		return
	}
	r.rec.Eventf(k, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventKeyReported, "Report",
		"Key %s... was reported as leaked (POST /v1/keys/report); the APIKey is revoked, every one of its keys with it", prefix)
	r.revoke(ctx, nn, keywardenv1alpha1.ReasonKeyReported, fmt.Sprintf("key %s... was reported as leaked", prefix))
}

// revoke records the revocation in the APIKey's status, unless one is
// recorded already.
func (r *revoker) revoke(ctx context.Context, nn types.NamespacedName, reason, message string) {
	revocation := &keywardenv1alpha1.Revocation{Reason: reason, Message: message, At: metav1.NewTime(r.now().Truncate(time.Second))}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		k := &keywardenv1alpha1.APIKey{}
		if err := r.fresh.Get(ctx, nn, k); err != nil {
			return err
		}
		if k.Status.Revocation != nil {
			return nil
		}
		base := k.DeepCopy()
		k.Status.Revocation = revocation
		return r.w.Status().Patch(ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		r.log.Error(err, "Recording a revocation", "apiKey", nn.String(), "reason", reason)
	}
}
