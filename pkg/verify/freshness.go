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
//     client-go retries without a word), or cut; a list or a watch of
//     that namespace that succeeds again ends this (a watch resumes where
//     it stopped, or the API server says it cannot and the feed lists
//     anew).
type Freshness struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu               sync.Mutex
	failing          map[any]time.Time // since when each watch of the feed fails
	unreachableSince time.Time         // the API server did not answer
}

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
		f.failing = map[any]time.Time{}
	}
	if _, ok := f.failing[watch]; !ok {
		f.failing[watch] = f.now()
	}
}

// working records that a watch of the feed was listed or watched again.
func (f *Freshness) working(watch any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.failing, watch)
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
	since := f.unreachableSince
	for _, t := range f.failing {
		if since.IsZero() || t.Before(since) {
			since = t
		}
	}
	if since.IsZero() {
		return 0
	}
	return f.now().Sub(since)
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
