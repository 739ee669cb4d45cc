package verify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// UsageRecorder records when keys that opted in with spec.trackLastUsed are
// used, in memory, and writes status.lastUsedAt at most once per key per
// interval however often a key is used. Keys that did not opt in are never
// passed to it. It flushes what it holds when it stops.
//
// Every replica runs one. With Recorded set, a replica skips a use that the
// lastUsedAt already in status covers, written by itself or by another
// replica (see covered), so that two replicas write about once per key per
// interval between them, and any number at most twice.
type UsageRecorder struct {
	// Recorded, when set, returns the status.lastUsedAt that a key holds as
	// the cache shows it (zero when none); AddToManager sets it to the
	// index's.
	Recorded func(types.NamespacedName) time.Time

	client   client.Client
	interval time.Duration
	log      logr.Logger

	mu      sync.Mutex
	pending map[types.NamespacedName]time.Time
}

// NewUsageRecorder returns a recorder that writes through c every interval.
func NewUsageRecorder(c client.Client, interval time.Duration, log logr.Logger) *UsageRecorder {
	return &UsageRecorder{client: c, interval: interval, log: log, pending: map[types.NamespacedName]time.Time{}}
}

// Record notes that the key was used at the given time.
func (u *UsageRecorder) Record(namespace, name string, at time.Time) {
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	u.mu.Lock()
	if at.After(u.pending[nn]) {
		u.pending[nn] = at
	}
	u.mu.Unlock()
}

// Start flushes every interval until ctx ends, then flushes once more. The
// first flush comes at a random point of the first interval, so that
// replicas started together do not flush together, each before the other's
// writes reach its index.
func (u *UsageRecorder) Start(ctx context.Context) error {
	t := time.NewTimer(rand.N(u.interval))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			u.Flush(ctx)
			t.Reset(u.interval)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			u.Flush(final)
			return nil
		}
	}
}

// NeedLeaderElection is false: every replica records the keys it verifies.
func (u *UsageRecorder) NeedLeaderElection() bool { return false }

// Flush writes the usage recorded since the last flush, one status patch per
// key.
func (u *UsageRecorder) Flush(ctx context.Context) {
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[types.NamespacedName]time.Time, len(batch))
	u.mu.Unlock()

	for nn, at := range batch {
		if u.Recorded != nil && covered(at, u.Recorded(nn), u.interval) {
			continue
		}
		if err := u.write(ctx, nn, at); err != nil {
			u.log.Error(err, "Unable to record last use", "apikey", nn)
		}
	}
}

// covered reports whether a use at the given time needs no write because
// status already records one less than half an interval before it (or
// after it, by less than an interval: clocks of replicas differ a little).
// A replica's flushes are an interval apart, so under steady use its own
// writes do not cover its next; a use skipped is at most half an interval
// later than the lastUsedAt that stands for it. A lastUsedAt further in the
// future was not written by a replica's clock, and covers nothing.
func covered(at, recorded time.Time, interval time.Duration) bool {
	return !recorded.IsZero() && at.Sub(recorded) < interval/2 && recorded.Sub(at) < interval
}

func (u *UsageRecorder) write(ctx context.Context, nn types.NamespacedName, at time.Time) error {
	ts, err := metav1.NewTime(at).MarshalJSON()
	if err != nil {
		return err
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"status":{"lastUsedAt":%s}}`, ts))
	key := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
	return client.IgnoreNotFound(u.client.Status().Patch(ctx, key, patch))
}
