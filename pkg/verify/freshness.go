package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Freshness tracks whether the APIKey watch behind an index is current.
// While the API server answers and the watch runs, the index is current,
// however long nothing changes. Otherwise the index answers from what it
// holds, and its staleness is the time since the first sign of trouble:
//
//   - the API server does not answer its /readyz (Follow asks every
//     followEvery): it is down, cut off, or has lost etcd; answering
//     again ends this;
//   - the feed reports a list or watch failure other than a refused
//     connection (WatchError, which must be the feed's
//     FeedOptions.WatchError): the watch is refused; hearing anything
//     from it (an event, a bookmark, a new list: the feed's resource
//     version moves past the one it had reached) ends this, or, for a
//     feed of several namespaces, the API server answering again.
type Freshness struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu               sync.Mutex
	version          string
	brokenSince      time.Time // the watch failed
	brokenAt         string    // the feed's resource version then
	unreachableSince time.Time // the API server did not answer
}

func (f *Freshness) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// WatchError records a failure of the feed's list or watch of APIKeys (and
// logs it as an informer would). Failures of other reflectors are only
// logged.
func (f *Freshness) WatchError(ctx context.Context, r *toolscache.Reflector, err error) {
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
	if !strings.HasSuffix(r.TypeDescription(), "."+keywardenv1alpha1.APIKeyKind) {
		return
	}
	f.failed(r.LastSyncResourceVersion())
}

// failed records a failure of the watch, which had reached the resource
// version: only a later one ends it.
func (f *Freshness) failed(version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.brokenSince.IsZero() {
		f.brokenSince = f.now()
	}
	f.brokenAt = version
}

// recovered ends a watch failure without a resource version to go by.
func (f *Freshness) recovered() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.brokenSince = time.Time{}
}

// reached records whether the API server answered.
func (f *Freshness) reached(ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case ok:
		f.unreachableSince = time.Time{}
	case f.unreachableSince.IsZero():
		f.unreachableSince = f.now()
	}
}

// heard records the feed's resource version: a new one means the
// watch delivered something, so the index is current.
func (f *Freshness) heard(version string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version = version
	if !f.brokenSince.IsZero() && version != f.brokenAt {
		f.brokenSince = time.Time{}
	}
}

// Staleness is how long the index has not been known to be current: zero
// while the watch runs.
func (f *Freshness) Staleness() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	since := f.brokenSince
	if u := f.unreachableSince; !u.IsZero() && (since.IsZero() || u.Before(since)) {
		since = u
	}
	if since.IsZero() {
		return 0
	}
	return f.now().Sub(since)
}

// followEvery is how often Follow reads the feed's resource version
// and asks the API server whether it is ready.
const followEvery = time.Second

// Follow reads the resource version the feed's watch has reached, and
// calls ready (the API server's /readyz), every followEvery until ctx
// ends. It runs on every replica.
func (f *Freshness) Follow(feed *Feed, ready func(context.Context) error) everyReplica {
	return func(ctx context.Context) error {
		t := time.NewTicker(followEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				// A feed of several namespaces (--namespaces) has no one
				// resource version: there a watch failure ends when the
				// API server answers again.
				version, hasVersion := feed.LastSyncResourceVersion()
				if hasVersion {
					f.heard(version)
				}
				probe, cancel := context.WithTimeout(ctx, followEvery)
				ok := ready(probe) == nil
				cancel()
				f.reached(ok)
				if ok && !hasVersion {
					f.recovered()
				}
			}
		}
	}
}

// APIServerReady asks the API server of cfg, through its HTTP client,
// whether it is ready (GET /readyz, which every client may call).
func APIServerReady(c *http.Client, cfg *rest.Config) func(context.Context) error {
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return func(context.Context) error { return fmt.Errorf("the API server's address: %w", err) }
	}
	url := strings.TrimSuffix(base.String(), "/") + "/readyz"
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the API server's /readyz answered %d", resp.StatusCode)
		}
		return nil
	}
}
