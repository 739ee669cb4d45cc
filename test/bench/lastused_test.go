//go:build bench

package bench

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// lastUsed verifies BENCH_LASTUSED_KEYS keys that opted in to
// spec.trackLastUsed at full speed for BENCH_LASTUSED_DURATION, with the
// manager's default --last-used-interval, and follows the writes to those
// APIKeys with a watch during that time, after BENCH_LASTUSED_WARMUP of the
// same load in which each replica flushes for the first time (a replica
// that has just started knows nothing of the others' writes; its first
// flush is counted apart). After the load, a write to another key marks
// the end of the stream, so that writes the watch delivers late are
// counted too.
//
// The rate is measured from the gaps between a key's writes, each dated
// by the lastUsedAt it wrote: a key written at t1 < t2 < ... < tk in the
// window adds k-1 writes over tk-t1. Counting writes in a fixed window
// instead depends on where the flushes fall (a window as long as the
// interval catches each replica's flush once or not at all), so it is
// reported only as a figure. BENCH_LASTUSED_REPLICAS
// managers run, 2 as config/manager deploys them, with leader election,
// started BENCH_LASTUSED_STAGGER apart as in a rolling update, and the
// requests go to each in turn, as through the verifier's Service.
func lastUsed(e *env) {
	n := envInt("BENCH_LASTUSED_KEYS", 1000)
	d := envDuration("BENCH_LASTUSED_DURATION", 3*time.Minute)
	replicas := max(1, envInt("BENCH_LASTUSED_REPLICAS", 2))
	stagger := envDuration("BENCH_LASTUSED_STAGGER", 20*time.Second)
	warm := envDuration("BENCH_LASTUSED_WARMUP", time.Minute)

	urls := make([]string, replicas)
	for i := range urls {
		if i > 0 {
			time.Sleep(stagger)
		}
		urls[i] = e.startManager("--leader-elect", "--leader-election-namespace", "default").Verifier.URL
	}
	ns := e.namespace("lastused")
	issued := e.watchKeys(ns, n, ready)
	if err := parallel(n, creators, func(i int) error {
		k := newKey(ns, i)
		k.Spec.TrackLastUsed = true
		return e.c.Create(e.ctx, k)
	}); err != nil {
		e.t.Fatal(err)
	}
	if _, ok := issued.waitAll(5 * time.Minute); !ok {
		e.t.Fatalf("%s keys issued", issued)
	}
	// A key of the namespace that is never verified: a write to it after
	// the load marks, in the stream, the end of the writes to count.
	marker := newKey(ns, n)
	marker.Name = "drain-marker"
	if err := e.c.Create(e.ctx, marker); err != nil {
		e.t.Fatal(err)
	}
	raws := e.rawKeys(ns)
	list := make([]string, 0, len(raws))
	for _, raw := range raws {
		list = append(list, raw)
	}
	clear(raws)
	time.Sleep(2 * time.Second) // let the last issuance writes pass

	var (
		mu          sync.Mutex
		writes      = map[string]int{}
		written     = map[string][]time.Time{} // the lastUsedAt of each write, by key
		warmWrites  int
		afterLoad   int // counted writes that arrived after the load stopped
		drained     = make(chan struct{})
		drainMarker = "drain"
	)
	start := time.Now()
	stop := start.Add(warm + d)
	// The stream starts from the keys as they are: every event is a write.
	st := e.follow(&keywardenv1alpha1.APIKeyList{}, []client.ListOption{client.InNamespace(ns)}, func(ev watch.Event, at time.Time) bool {
		k, ok := ev.Object.(*keywardenv1alpha1.APIKey)
		if !ok || ev.Type != watch.Modified {
			return false
		}
		if k.Name == marker.Name {
			if k.Annotations[drainMarker] != "" {
				close(drained)
				return true
			}
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case at.Sub(start) < warm:
			warmWrites++
		default:
			writes[k.Name]++
			if k.Status.LastUsedAt != nil {
				written[k.Name] = append(written[k.Name], k.Status.LastUsedAt.Time)
			}
			if at.After(stop) {
				afterLoad++
			}
		}
		return false
	})
	defer st.stop()

	var requests, invalid atomic.Int64
	var wg sync.WaitGroup
	for g := range creators {
		wg.Go(func() {
			for i := g; time.Now().Before(stop); i += creators {
				// Each client's requests go to each replica in turn, so
				// every key is verified on every replica.
				ok, err := verify(urls[(i/creators)%replicas], ns, list[i%len(list)])
				if err != nil || !ok {
					invalid.Add(1)
				}
				requests.Add(1)
			}
		})
	}
	wg.Wait()
	// Drain: every write made before the marker's is in the stream before
	// it, whatever the watch's lag.
	base := marker.DeepCopy()
	marker.Annotations = map[string]string{drainMarker: time.Now().Format(time.RFC3339Nano)}
	if err := e.c.Patch(e.ctx, marker, client.MergeFrom(base)); err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-drained:
	case <-st.failed:
	case <-time.After(time.Minute):
		e.t.Fatal("the watch that counts writes did not deliver the drain marker within a minute")
	}
	if t := st.trouble(); t != "" {
		e.t.Logf("the watch that counts writes%s", t)
	}
	select {
	case <-st.failed:
		e.t.Fatal("the watch that counts writes failed: the count would be short")
	default:
	}
	mu.Lock()
	total, most := 0, 0
	for _, c := range writes {
		total += c
		most = max(most, c)
	}
	// From the gaps: every write after a key's first in the window, over
	// the time from its first write to its last.
	gaps, spanned, shortest, measured := 0, time.Duration(0), time.Duration(0), 0
	for _, ts := range written {
		slices.SortFunc(ts, time.Time.Compare)
		ts = slices.Compact(ts)
		if len(ts) < 2 {
			continue
		}
		measured++
		gaps += len(ts) - 1
		spanned += ts[len(ts)-1].Sub(ts[0])
		for i := 1; i < len(ts); i++ {
			if g := ts[i].Sub(ts[i-1]); shortest == 0 || g < shortest {
				shortest = g
			}
		}
	}
	mu.Unlock()
	if measured < n/2 {
		e.t.Errorf("only %d of %d keys were written twice in %s: too few gaps to measure a rate; lengthen BENCH_LASTUSED_DURATION", measured, n, d)
	}
	if invalid.Load() > 0 {
		e.t.Errorf("%d verifications failed or were invalid", invalid.Load())
	}

	report("%d keys verified %d times in %s (%.0f/s) through %d replicas started %s apart",
		n, requests.Load(), warm+d, float64(requests.Load())/(warm+d).Seconds(), replicas, stagger)
	report("first %s, with each replica's first flush: %d writes to those APIKeys", warm, warmWrites)
	report("the %s after it: %d writes (%.2f a key a minute), at most %d to one key; %d of them delivered after the load stopped, before the drain marker",
		d, total, float64(total)/float64(n)/d.Minutes(), most, afterLoad)
	var perKeyMinute float64
	if spanned > 0 {
		perKeyMinute = float64(gaps) / spanned.Minutes()
	}
	report("gaps between a key's writes: %d over %d keys, %.1f s on average, the shortest %s",
		gaps, measured, spanned.Seconds()/float64(max(gaps, 1)), shortest)
	ratio("lastUsedAt writes per key per minute, from the gaps between writes", perKeyMinute, "<= 1")
}
