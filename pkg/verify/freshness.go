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
)

// Freshness tracks whether the APIKey watch behind an index is current.
// While the API server answers and the watch runs, the index is current,
// however long nothing changes. Otherwise the index answers from what it
// holds, and its staleness is the time since the first sign of trouble:
//
//   - the API server does not answer its /readyz (Follow asks every
//     followEvery): it is down, cut off, or has lost etcd; answering
//     again ends this;
//   - a list or watch of the feed fails (the feed reports each call and
//     each end of a watch with an error): refused, throttled (429, which
//     client-go retries without a word), cut, or undecodable; what that
//     namespace's watch delivers next (an event, a bookmark, a list) ends
//     this, and so does a watch of it that stays open for steadyWatch. A
//     call that succeeds is not enough: a stream that fails as soon as it
//     opens would otherwise pass for a working one.
type Freshness struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu               sync.Mutex
	failing          map[any]time.Time // since when each watch of the feed fails
	resumed          map[any]time.Time // since when a failing watch is open again
	unreachableSince time.Time         // the API server did not answer
}

// steadyWatch is how long a watch opened again after a failure must stay
// open, without delivering anything, to count as working.
const steadyWatch = 15 * time.Second

func (f *Freshness) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// failed records that a watch of the feed (one a namespace) failed: from
// now, unless it was failing already.
func (f *Freshness) failed(watch any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing == nil {
		f.failing, f.resumed = map[any]time.Time{}, map[any]time.Time{}
	}
	if _, ok := f.failing[watch]; !ok {
		f.failing[watch] = f.now()
	}
	delete(f.resumed, watch)
}

// opened records that a failing watch was opened again: it counts as
// working once it has stayed open for steadyWatch.
func (f *Freshness) opened(watch any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, failing := f.failing[watch]; failing {
		if _, ok := f.resumed[watch]; !ok {
			f.resumed[watch] = f.now()
		}
	}
}

// delivered records that a watch of the feed delivered something to the
// index: it works.
func (f *Freshness) delivered(watch any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.failing, watch)
	delete(f.resumed, watch)
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

// Staleness is how long the index has not been known to be current:
// zero while the watch runs.
func (f *Freshness) Staleness() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	since := f.unreachableSince
	for w, t := range f.failing {
		if r, ok := f.resumed[w]; ok && now.Sub(r) >= steadyWatch {
			delete(f.failing, w)
			delete(f.resumed, w)
			continue
		}
		if since.IsZero() || t.Before(since) {
			since = t
		}
	}
	if since.IsZero() {
		return 0
	}
	return now.Sub(since)
}

// followEvery is how often Follow asks the API server whether it is
// ready.
const followEvery = time.Second

// Follow calls ready (the API server's /readyz) every followEvery until
// ctx ends. It runs on every replica.
func (f *Freshness) Follow(ready func(context.Context) error) everyReplica {
	return func(ctx context.Context) error {
		t := time.NewTicker(followEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				probe, cancel := context.WithTimeout(ctx, followEvery)
				ok := ready(probe) == nil
				cancel()
				f.reached(ok)
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
