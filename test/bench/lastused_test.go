//go:build bench

package bench

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// lastUsed verifies BENCH_LASTUSED_KEYS keys that opted in to
// spec.trackLastUsed at full speed for BENCH_LASTUSED_DURATION, with the
// manager's default --last-used-interval, and counts the writes to those
// APIKeys that a watch shows during that time, after BENCH_LASTUSED_WARMUP
// of the same load in which each replica flushes for the first time (a
// replica that has just started knows nothing of the others' writes; its
// first flush is counted apart). After the load, a write to another key
// marks the end of the stream, so that writes the watch delivers late are
// counted too. A window as long as the interval catches one flush of each
// replica, or fewer when a flush falls on its edge (a replica's flushes
// are a little more than an interval apart): read a low figure with that
// in mind. BENCH_LASTUSED_REPLICAS
// managers run, 2 as config/manager deploys them, with leader election,
// started BENCH_LASTUSED_STAGGER apart as in a rolling update, and the
// requests go to each in turn, as through the verifier's Service.
func lastUsed(e *env) {
	n := envInt("BENCH_LASTUSED_KEYS", 1000)
	d := envDuration("BENCH_LASTUSED_DURATION", time.Minute)
	replicas := max(1, envInt("BENCH_LASTUSED_REPLICAS", 2))
	stagger := envDuration("BENCH_LASTUSED_STAGGER", 20*time.Second)
	warm := envDuration("BENCH_LASTUSED_WARMUP", time.Minute)

	urls := make([]string, replicas)
	for i := range urls {
		if i > 0 {
			time.Sleep(stagger)
		}
		urls[i] = e.startManager("--leader-elect", "--leader-election-namespace", "default").VerifierURL
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
				ok, err := verify(urls[(i/creators)%replicas], list[i%len(list)])
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
	mu.Unlock()
	if invalid.Load() > 0 {
		e.t.Errorf("%d verifications failed or were invalid", invalid.Load())
	}

	perKeyMinute := float64(total) / float64(n) / d.Minutes()
	report("%d keys verified %d times in %s (%.0f/s) through %d replicas started %s apart",
		n, requests.Load(), warm+d, float64(requests.Load())/(warm+d).Seconds(), replicas, stagger)
	report("first %s, with each replica's first flush: %d writes to those APIKeys", warm, warmWrites)
	report("the %s after it: %d writes, at most %d to one key; %d of them delivered after the load stopped, before the drain marker", d, total, most, afterLoad)
	ratio("lastUsedAt writes per key per minute", perKeyMinute, "<= 1")
}
