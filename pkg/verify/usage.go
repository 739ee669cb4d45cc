package verify

import (
	"context"
	"fmt"
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
type UsageRecorder struct {
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

// Start flushes every interval until ctx ends, then flushes once more.
func (u *UsageRecorder) Start(ctx context.Context) error {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			u.Flush(ctx)
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
		if err := u.write(ctx, nn, at); err != nil {
			u.log.Error(err, "Unable to record last use", "apikey", nn)
		}
	}
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
