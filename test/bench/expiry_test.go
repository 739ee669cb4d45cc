//go:build bench

package bench

import (
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/lifecycle"
)

// expiry issues BENCH_EXPIRY_KEYS keys that expire in the same second and
// measures the lag from expiresAt to the moment a watch shows both the key
// Expired and its Secret deleted. At expiresAt the verifier is asked about
// every key, and must reject each.
func expiry(e *env) {
	n := envInt("BENCH_EXPIRY_KEYS", 1000)
	lead := envDuration("BENCH_EXPIRY_LEAD", 45*time.Second)

	m := e.startManager()
	ns := e.namespace("expiry")
	at := metav1.NewTime(time.Now().Add(lead).Truncate(time.Second))
	issued := e.watchKeys(ns, n, ready)
	expired := e.watchKeys(ns, n, func(k *keywardenv1alpha1.APIKey) bool {
		return k.Status.Phase == keywardenv1alpha1.PhaseExpired
	})
	deleted := e.watchSecretDeletions(ns, n)
	if err := parallel(n, creators, func(i int) error {
		k := newKey(ns, i)
		k.Spec.ExpiresAt = &at
		return e.c.Create(e.ctx, k)
	}); err != nil {
		e.t.Fatal(err)
	}
	if _, ok := issued.waitAll(time.Until(at.Time) - 3*time.Second); !ok {
		e.t.Fatalf("%s keys issued 3 s before they expire; raise BENCH_EXPIRY_LEAD", issued)
	}
	raws := e.rawKeys(ns)
	if len(raws) != n {
		e.t.Fatalf("%d Secrets for %d keys", len(raws), n)
	}
	names := make([]string, 0, n)
	for name := range raws {
		names = append(names, name)
	}
	e.waitIdle(m.Controller, n)
	before := e.scrape(m.Controller)
	// Every key is valid a second before it expires...
	time.Sleep(time.Until(at.Add(-time.Second)))
	var valid atomic.Int64
	if err := parallel(n, creators, func(i int) error {
		ok, err := verify(m.Verifier.URL, ns, raws[names[i]])
		if ok {
			valid.Add(1)
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	if valid.Load() != int64(n) {
		e.t.Fatalf("%d of %d keys valid a second before they expire", valid.Load(), n)
	}
	// ...and none is from the moment it does.
	time.Sleep(time.Until(at.Time))
	var accepted atomic.Int64
	asked := make([]time.Duration, n)
	if err := parallel(n, creators, func(i int) error {
		ok, err := verify(m.Verifier.URL, ns, raws[names[i]])
		asked[i] = time.Since(at.Time)
		if ok {
			accepted.Add(1)
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	clear(raws)

	if _, ok := expired.waitAll(time.Minute); !ok {
		e.t.Fatalf("%s keys Expired (waited up to a minute after expiresAt)", expired)
	}
	if _, ok := deleted.waitAll(time.Minute); !ok {
		e.t.Fatalf("%s Secrets deleted (waited up to a minute after expiresAt)", deleted)
	}
	lags := lagsOf(expired, deleted, at.Time)
	e.waitIdle(m.Controller, 0)
	work := requestsPerKey(before, e.scrape(m.Controller), n)
	m.Stop(10 * time.Second)
	floor := e.expiryFloor(n, controllers.DefaultMaxConcurrentReconciles, lead)
	wider := e.expiryFloor(n, 4*controllers.DefaultMaxConcurrentReconciles, lead)

	report("%d keys expiring at the same second", n)
	report("verifier: %d of %d accepted at or after expiresAt (asked within %s of it, p99)", accepted.Load(), n, ms(percentile(asked, 0.99)))
	report("lag to Expired with the Secret deleted: p50 %s, p99 %s, max %s",
		ms(percentile(lags, 0.5)), ms(percentile(lags, 0.99)), ms(percentile(lags, 1)))
	report("floor (plain client, %d writers, deleting each Secret and writing each status at expiresAt): p50 %s, p99 %s",
		controllers.DefaultMaxConcurrentReconciles, ms(percentile(floor, 0.5)), ms(percentile(floor, 0.99)))
	report("floor: %d writes done %s after expiresAt, %.0f a second, the API server's pace here",
		2*n, ms(percentile(floor, 1)), float64(2*n)/percentile(floor, 1).Seconds())
	report("floor with %d writers: p50 %s, p99 %s, %.0f writes a second",
		4*controllers.DefaultMaxConcurrentReconciles, ms(percentile(wider, 0.5)), ms(percentile(wider, 0.99)),
		float64(2*n)/percentile(wider, 1).Seconds())
	report("manager, for each key expired: %s", work)
	report("p99 vs the floor: %.2f", float64(percentile(lags, 0.99))/float64(percentile(floor, 0.99)))
	if accepted.Load() != 0 {
		e.t.Errorf("the verifier accepted %d expired keys", accepted.Load())
	}
	ratio("expiry lag p99 vs 1 s", percentile(lags, 0.99).Seconds(), "< 1")
}

// expiryFloor is what expiring n keys at the same second costs the API
// server at least: with the manager stopped, a plain client with the given
// number of writers deletes each Secret and writes each Expired status from
// expiresAt on. It returns the lags a watch shows.
func (e *env) expiryFloor(n, writers int, lead time.Duration) []time.Duration {
	ns := e.namespace(fmt.Sprintf("expiry-floor-%d", writers))
	at := metav1.NewTime(time.Now().Add(lead).Truncate(time.Second))
	keys := make([]*keywardenv1alpha1.APIKey, n)
	if err := parallel(n, creators, func(i int) error {
		k := newKey(ns, i)
		k.Spec.ExpiresAt = &at
		k.Finalizers = []string{keywardenv1alpha1.Finalizer}
		if err := e.c.Create(e.ctx, k); err != nil {
			return err
		}
		keys[i] = k
		return e.writeIssued(k)
	}); err != nil {
		e.t.Fatal(err)
	}
	if time.Now().After(at.Time) {
		e.t.Fatal("the floor's keys were issued after they expired; raise BENCH_EXPIRY_LEAD")
	}
	expired := e.watchKeys(ns, n, func(k *keywardenv1alpha1.APIKey) bool {
		return k.Status.Phase == keywardenv1alpha1.PhaseExpired
	})
	deleted := e.watchSecretDeletions(ns, n)
	time.Sleep(time.Until(at.Time))
	if err := parallel(n, writers, func(i int) error {
		k := keys[i]
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: k.Name}}
		uid := k.Status.SecretRef.UID
		if err := e.c.Delete(e.ctx, s, client.Preconditions{UID: (*types.UID)(&uid)}); err != nil {
			return err
		}
		base := k.DeepCopy()
		lifecycle.SetConditions(&k.Status, k.Generation, lifecycle.Outcome{
			Phase: keywardenv1alpha1.PhaseExpired, Reason: keywardenv1alpha1.ReasonExpired, Message: "The key expired",
		})
		return e.c.Status().Patch(e.ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	}); err != nil {
		e.t.Fatal(err)
	}
	if _, ok := expired.waitAll(time.Minute); !ok {
		e.t.Fatalf("the floor's keys: %s seen Expired", expired)
	}
	if _, ok := deleted.waitAll(time.Minute); !ok {
		e.t.Fatalf("the floor's Secrets: %s seen deleted", deleted)
	}
	return lagsOf(expired, deleted, at.Time)
}

// lagsOf is, for each key the expired watch saw, the time from at until
// the watches showed it both Expired and its Secret deleted.
func lagsOf(expired, deleted *watcher, at time.Time) []time.Duration {
	expired.mu.Lock()
	defer expired.mu.Unlock()
	lags := make([]time.Duration, 0, len(expired.seen))
	for name, x := range expired.seen {
		if d, _ := deleted.at(name); d.After(x) {
			x = d
		}
		lags = append(lags, x.Sub(at))
	}
	return lags
}
