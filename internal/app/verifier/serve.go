package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/pkg/verify"
)

// Serving configures the verifier that AddToManager runs.
type Serving struct {
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
	Trust verify.Trust
	// Namespaces are those whose APIKeys are indexed; all when empty.
	Namespaces []string
	// Freshness, when set, follows whether the index is current. The
	// metric keywarden_verifier_index_staleness_seconds reports it.
	Freshness *verify.Freshness
	// MaxStaleness, when not zero, is how stale the index may be before
	// /readyz and verification answer 503. It needs Freshness.
	MaxStaleness time.Duration
	// ReportBudget is how long every answer to a leak report takes, the
	// revocation's write within it; verify.DefaultReportBudget when zero.
	ReportBudget time.Duration
}

// AddToManager runs the verifier in the manager on every replica, whether
// or not it is the leader: an index fed by its own watch of APIKeys (the
// manager's cache holds none),
// the usage recorder, the handling of suspect keys and the HTTP server. It
// returns the index.
func AddToManager(mgr ctrl.Manager, o Serving) (*verify.Index, error) {
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
		return nil, errors.New("a maximum staleness needs a Freshness to follow the index's feed")
	}
	index := verify.NewIndex()
	index.OnConflict = conflictEvents(mgr)
	feed, err := verify.NewFeed(mgr.GetConfig(), mgr.GetHTTPClient(), index,
		verify.FeedOptions{Namespaces: o.Namespaces, Freshness: o.Freshness})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(feed); err != nil {
		return nil, err
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error { return returnMemoryOnceSynced(ctx, feed) })); err != nil {
		return nil, err
	}
	metrics, err := verify.NewMetrics(o.Registerer, index)
	if err != nil {
		return nil, err
	}
	var staleness func() time.Duration
	if f := o.Freshness; f != nil {
		staleness = f.Staleness
		if err := mgr.Add(f.Follow(verify.APIServerReady(mgr.GetHTTPClient(), mgr.GetConfig()))); err != nil {
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
	usage := verify.NewUsageRecorder(o.Client, o.LastUsedInterval, log)
	usage.Recorded = index.LastUsedAt
	if err := mgr.Add(usage); err != nil {
		return nil, err
	}
	suspects := newSuspects(mgr, o.Client, o.Now)
	if err := mgr.Add(everyReplica(suspects.run)); err != nil {
		return nil, err
	}
	h := &verify.Handler{Index: index, Usage: usage, Metrics: metrics, Log: log, Now: o.Now, Ready: feed.HasSynced, Trust: o.Trust,
		Staleness: staleness, MaxStaleness: o.MaxStaleness, Suspects: suspects.add, Report: suspects.handle, ReportBudget: o.ReportBudget}
	if err := o.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keywarden_verifier_ready",
		Help: "1 while the verifier answers verifications; 0 while it answers 503 (its index not synced yet, or stale beyond --verifier-max-staleness).",
	}, func() float64 {
		if ok, _ := h.Answering(); ok {
			return 1
		}
		return 0
	})); err != nil {
		return nil, err
	}
	srv := &verify.Server{Addr: o.Addr, CertFile: o.CertFile, KeyFile: o.KeyFile, Handler: h, Log: log}
	return index, srv.AddTo(mgr)
}

// conflictEvents reports, with a Warning event on each of them, APIKeys
// that record the same key hash. The events name the APIKeys, never the
// key or its hash.
func conflictEvents(mgr ctrl.Manager) func(types.NamespacedName, []types.NamespacedName) {
	rec := mgr.GetEventRecorder("keywarden-verifier")
	reader := mgr.GetAPIReader() // the cache holds no APIKey
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
		// The index's feed calls this: the events are written apart, so
		// that a slow API server never holds up the feed.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), suspectTimeout)
			defer cancel()
			for _, nn := range all {
				k := &keywardenv1alpha1.APIKey{}
				if err := reader.Get(ctx, nn, k); err != nil {
					continue
				}
				rec.Eventf(k, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventKeyConflict, "Verify", "%s", note)
			}
		}()
	}
}

// suspects reports, on their APIKeys, the keys the verifier saw that may
// be in the wrong hands, and revokes the APIKeys that must be: that of a
// key reported as leaked, and that of a rotated-out key used after its
// grace when its class has revokeOnReuse. The revocation is recorded in
// the APIKey's status (every replica's index sees it as soon as its watch
// delivers the write). A report is handled before it is answered (handle,
// the handler's Report): its 202 means the revocation is stored. A
// rotated-out key's use is queued, one item a key (a key used a thousand
// times is written once), and retried with backoff while the process
// runs: a verification never waits for an API write. Events name a key's
// display prefix, never the key, and follow the write.
type suspects struct {
	queue workqueue.TypedRateLimitingInterface[verify.Suspect]
	rec   events.EventRecorder
	fresh client.Reader // the API server
	w     client.Client
	log   logr.Logger
	now   func() time.Time
}

// suspectTimeout bounds each API call of a suspect's handling.
const suspectTimeout = 10 * time.Second

func newSuspects(mgr ctrl.Manager, w client.Client, now func() time.Time) *suspects {
	if now == nil {
		now = time.Now
	}
	return &suspects{
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[verify.Suspect](),
			workqueue.TypedRateLimitingQueueConfig[verify.Suspect]{Name: "keywarden_suspect_keys"}),
		rec: mgr.GetEventRecorder("keywarden-verifier"), fresh: mgr.GetAPIReader(),
		w: w, log: mgr.GetLogger().WithName("verifier"), now: now,
	}
}

func (s *suspects) add(k verify.Suspect) { s.queue.Add(k) }

func (s *suspects) run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	for {
		k, quit := s.queue.Get()
		if quit {
			return nil
		}
		if err := s.handle(ctx, k); err != nil {
			s.log.Error(err, "Handling a suspect key; retrying", "apiKey", k.APIKey.String(), "keyPrefix", k.KeyPrefix)
			s.queue.AddRateLimited(k)
		} else {
			s.queue.Forget(k)
		}
		s.queue.Done(k)
	}
}

// handle reports the key on its APIKey, as the API server has it now, and
// revokes the APIKey when it must. An APIKey that no longer records the
// key (deleted, or recreated under the same name) is left alone.
func (s *suspects) handle(ctx context.Context, k verify.Suspect) error {
	ctx, cancel := context.WithTimeout(ctx, suspectTimeout)
	defer cancel()
	key := &keywardenv1alpha1.APIKey{}
	if err := s.fresh.Get(ctx, k.APIKey, key); err != nil {
		return client.IgnoreNotFound(err)
	}
	if which, _ := key.Status.Holds(k.KeyHash); which == keywardenv1alpha1.HoldsNone {
		return nil
	}
	if !k.Reported {
		revoke, class := false, key.Status.ClassName
		if class != "" && !lifecycle.Revoked(key) {
			c := &keywardenv1alpha1.APIKeyClass{}
			if err := s.fresh.Get(ctx, types.NamespacedName{Name: class}, c); client.IgnoreNotFound(err) != nil {
				return err
			} else if err == nil && c.Spec.Rotation != nil && c.Spec.Rotation.RevokeOnReuse {
				revoke = true
			}
		}
		note := fmt.Sprintf("Key %s..., rotated out of this APIKey, was used after its grace period; whoever holds it should use the current key", k.KeyPrefix)
		if revoke {
			wrote, err := s.revoke(ctx, key, keywardenv1alpha1.ReasonRotatedKeyReused, fmt.Sprintf("key %s..., rotated out, was used after its grace period", k.KeyPrefix))
			if err != nil {
				return err
			}
			if wrote {
				note += fmt.Sprintf("; APIKeyClass %s revokes on reuse, so the APIKey is revoked", class)
			}
		}
		s.rec.Eventf(key, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventRotatedKeyUsed, "Verify", "%s", note)
		return nil
	}
	wrote, err := s.revoke(ctx, key, keywardenv1alpha1.ReasonKeyReported, fmt.Sprintf("key %s... was reported as leaked", k.KeyPrefix))
	if err != nil || !wrote {
		return err
	}
	s.log.Info("A key was reported as leaked; its APIKey is revoked", "apiKey", k.APIKey.String(), "keyPrefix", k.KeyPrefix)
	s.rec.Eventf(key, nil, corev1.EventTypeWarning, keywardenv1alpha1.EventKeyReported, "Report",
		"Key %s... was reported as leaked (POST /v1/keys/report); the APIKey is revoked, every one of its keys with it", k.KeyPrefix)
	return nil
}

// revoke records the revocation in the APIKey's status unless one is
// recorded already; wrote reports whether this call recorded it. The
// write is a JSON patch that tests the APIKey's UID and adds the
// revocation, with no resourceVersion: changes of the APIKey meanwhile
// cannot make it fail, and the API server keeps the first revocation.
func (s *suspects) revoke(ctx context.Context, key *keywardenv1alpha1.APIKey, reason, message string) (wrote bool, _ error) {
	if key.Status.Revocation != nil {
		return false, nil
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": key.UID},
		{"op": "add", "path": "/status/revocation", "value": keywardenv1alpha1.Revocation{
			Reason: reason, Message: message, At: metav1.NewTime(s.now().Truncate(time.Second))}},
	})
	if err != nil {
		return false, err
	}
	err = s.w.Status().Patch(ctx, key, client.RawPatch(types.JSONPatchType, patch))
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case apierrors.IsInvalid(err) || apierrors.IsConflict(err):
		// Recreated (the UID test failed), or revoked meanwhile (the
		// API server keeps the first revocation): read it again.
		now := &keywardenv1alpha1.APIKey{}
		if gerr := s.fresh.Get(ctx, client.ObjectKeyFromObject(key), now); gerr != nil {
			return false, client.IgnoreNotFound(gerr)
		}
		if now.UID != key.UID || now.Status.Revocation != nil {
			return false, nil
		}
	}
	return false, err
}

// returnMemoryOnceSynced returns to the system, once the feed has indexed
// every key, the memory its first list took: the list's objects are
// garbage then, and the Go runtime would otherwise keep their pages for
// minutes (the index itself is a fraction of them; docs/benchmarks.md).
func returnMemoryOnceSynced(ctx context.Context, feed *verify.Feed) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !feed.HasSynced() {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	debug.FreeOSMemory()
	return nil
}

// everyReplica is a runnable that runs on every replica, leader or not.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
