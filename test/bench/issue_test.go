//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
)

// creators is how many clients create APIKeys at once, as a deployment tool
// applying many manifests would.
const creators = 16

// issuance creates BENCH_ISSUE_KEYS APIKeys at once and measures keys per
// second until all are Ready, against the same API server doing the minimum
// writes per key with a plain client, with as many writers as the
// controller has workers. The two alternate for BENCH_ROUNDS rounds, each
// in a namespace of its own, and each rate is the keys of all rounds over
// their time.
func issuance(e *env) {
	n := envInt("BENCH_ISSUE_KEYS", 2000)
	rounds := envInt("BENCH_ROUNDS", 2)
	workers := controllers.DefaultMaxConcurrentReconciles

	ctrlRate, baseRate := alternate(n, rounds,
		func(r int) (time.Duration, string) {
			return e.issueWithController(fmt.Sprintf("controller-%d", r), n, 2*n*r)
		},
		func(r int) time.Duration { return e.issueWithPlainClient(fmt.Sprintf("baseline-%d", r), n, workers) })
	report("%d keys created at once by %d clients, %d rounds", n, creators, rounds)
	report("controller (%d workers): %.0f keys/s until all Ready", workers, ctrlRate)
	report("baseline (plain client, %d writers, 4 requests a key): %.0f keys/s", workers, baseRate)
	ratio("issuance throughput vs baseline", ctrlRate/baseRate, ">= 0.80")
}

// alternate runs the controller's and the baseline's measure of n keys in
// turn for the given number of rounds, reports each round, and returns the
// keys per second of each: all keys over all time.
func alternate(n, rounds int, controller func(round int) (time.Duration, string), baseline func(round int) time.Duration) (ctrlRate, baseRate float64) {
	var ctrlTime, baseTime time.Duration
	for r := range rounds {
		d, stats := controller(r)
		ctrlTime += d
		report("round %d: controller %.0f keys/s; %s", r+1, float64(n)/d.Seconds(), stats)
		d = baseline(r)
		baseTime += d
		report("round %d: baseline %.0f keys/s", r+1, float64(n)/d.Seconds())
	}
	return float64(n*rounds) / ctrlTime.Seconds(), float64(n*rounds) / baseTime.Seconds()
}

// issueWithController creates n keys in a new namespace with the manager
// running, once it has gone through the existing keys, and returns the time
// until all are Ready, with the manager's passes, requests and CPU per key.
func (e *env) issueWithController(ns string, n, existing int) (time.Duration, string) {
	pprof := e.freeAddr()
	m := e.startManager("--pprof-bind-address", pprof)
	defer m.Stop(10 * time.Second)
	e.waitIdle(m.Controller, existing)
	e.namespace(ns)
	w := e.watchKeys(ns, n, ready)
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" && existing == 0 {
		go e.saveProfile(pprof, "profile?seconds=10", filepath.Join(dir, "cpu-issuance.pb.gz"))
	}
	return e.timeWithManager(m, w, n, "Ready", func(i int) error { return e.c.Create(e.ctx, newKey(ns, i)) })
}

// timeWithManager runs trigger(i) for n keys from as many clients as a
// deployment tool would use, with the manager m running, and returns the
// time until w has seen all n keys, with the manager's requests and CPU per
// key.
func (e *env) timeWithManager(m *install, w *watcher, n int, what string, trigger func(i int) error) (time.Duration, string) {
	before := e.scrape(m.Controller)
	cpu0 := procCPU(e, m.Controller.Cmd.Process.Pid)
	start := time.Now()
	if err := parallel(n, creators, trigger); err != nil {
		e.t.Fatal(err)
	}
	last, ok := w.waitAll(10 * time.Minute)
	if !ok {
		e.t.Fatalf("%s keys %s (waited up to 10 minutes)", w, what)
	}
	cpu := procCPU(e, m.Controller.Cmd.Process.Pid) - cpu0
	return last.Sub(start), fmt.Sprintf("%s and %.1f ms of CPU a key",
		requestsPerKey(before, e.scrape(m.Controller), n), float64(cpu.Milliseconds())/float64(n))
}

// issueWithPlainClient creates n keys in a new namespace, with the manager
// stopped, and does their minimum writes with the given number of writers;
// it returns the time until a watch shows all Ready.
func (e *env) issueWithPlainClient(ns string, n, workers int) time.Duration {
	e.namespace(ns)
	w := e.watchKeys(ns, n, ready)
	return timeWithWriters(e, w, n, workers, "Ready", func(i int) (*keywardenv1alpha1.APIKey, error) {
		k := newKey(ns, i)
		return k, e.c.Create(e.ctx, k)
	}, e.writeIssued)
}

// timeWithWriters runs trigger(i) for n keys from as many clients as
// timeWithManager, and hands what each returns to write, run by the given
// number of writers (the manager stopped); it returns the time until w has
// seen all n keys.
func timeWithWriters[T any](e *env, w *watcher, n, workers int, what string, trigger func(i int) (T, error), write func(T) error) time.Duration {
	queue := make(chan T, n)
	done := make(chan error, 1)
	go func() {
		done <- parallel(n, workers, func(int) error { return write(<-queue) })
	}()
	start := time.Now()
	if err := parallel(n, creators, func(i int) error {
		v, err := trigger(i)
		if err != nil {
			return err
		}
		queue <- v
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := <-done; err != nil {
		e.t.Fatal(err)
	}
	last, ok := w.waitAll(10 * time.Minute)
	if !ok {
		e.t.Fatalf("%s baseline keys %s", w, what)
	}
	return last.Sub(start)
}

// latency creates one key at a time and measures from the create call to
// Ready as a watch shows it, against the same writes done in sequence by a
// plain client and seen by the same kind of watch.
func latency(e *env) {
	n := envInt("BENCH_LATENCY_KEYS", 300)

	m := e.startManager()
	e.waitIdle(m.Controller, 0)
	ctrl := e.oneAtATime(e.namespace("controller"), n, func(*keywardenv1alpha1.APIKey) error { return nil })
	m.Stop(10 * time.Second)
	base := e.oneAtATime(e.namespace("baseline"), n, e.writeIssued)

	report("%d keys, one at a time", n)
	report("controller: p50 %s, p99 %s", ms(percentile(ctrl, 0.5)), ms(percentile(ctrl, 0.99)))
	report("baseline (create, finalizer, Secret, status in sequence): p50 %s, p99 %s",
		ms(percentile(base, 0.5)), ms(percentile(base, 0.99)))
	report("p50 ratio: %.2f", float64(percentile(ctrl, 0.5))/float64(percentile(base, 0.5)))
	ratio("issue latency p99 vs baseline p99", float64(percentile(ctrl, 0.99))/float64(percentile(base, 0.99)), "<= 3")
}

// oneAtATime creates n keys in ns one after the other, doing write after
// each create, and returns the time from each create call to the moment a
// watch shows the key Ready. A first key, not measured, makes sure that
// whatever issues keys is running.
func (e *env) oneAtATime(ns string, n int, write func(*keywardenv1alpha1.APIKey) error) []time.Duration {
	w := e.watchKeys(ns, n+1, ready)
	lat := make([]time.Duration, 0, n)
	for i := n; i >= 0; i-- {
		k := newKey(ns, i)
		start := time.Now()
		if err := e.c.Create(e.ctx, k); err != nil {
			e.t.Fatal(err)
		}
		if err := write(k); err != nil {
			e.t.Fatal(err)
		}
		at, ok := w.waitFor(k.Name, time.Minute)
		if !ok {
			e.t.Fatalf("key %d of %s not Ready within a minute", i, ns)
		}
		if i < n {
			lat = append(lat, at.Sub(start))
		}
	}
	return lat
}
