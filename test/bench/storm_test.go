//go:build bench

package bench

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// storm measures a new key's time to Ready, one key at a time, while
// BENCH_STORM_KEYS keys of a class rotate as often as it allows
// (rotation.minEvery and every of a minute, the shortest the CRD takes),
// against the same controller idle, started the same way. Goal: p99 at
// most twice the idle one's (routine rotation waits behind issuance).
func storm(e *env) {
	n := envInt("BENCH_STORM_KEYS", 2000)
	probes := envInt("BENCH_STORM_PROBES", 200)
	minute := &keywardenv1alpha1.Duration{Duration: time.Minute}
	class := &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "storm"},
		Spec: keywardenv1alpha1.APIKeyClassSpec{Rotation: &keywardenv1alpha1.ClassRotation{MinEvery: minute, Every: minute}}}
	if err := e.c.Create(e.ctx, class); err != nil {
		e.t.Fatal(err)
	}

	m := e.startManager()
	e.waitIdle(m.Controller, 0)
	idle := e.oneAtATime(e.namespace("storm-idle"), probes, func(*keywardenv1alpha1.APIKey) error { return nil })
	m.Stop(10 * time.Second)

	// Keys of the class, issued more than a minute ago: every one is due
	// when the controller starts, and again each minute.
	ns := e.namespace("storm")
	e.issuedAgo = 2 * time.Minute
	err := parallel(n, 32, func(i int) error {
		k := newKey(ns, i)
		k.Spec.ClassName = class.Name
		k.Finalizers = []string{keywardenv1alpha1.Finalizer}
		if err := e.c.Create(e.ctx, k); err != nil {
			return err
		}
		return e.writeIssued(k)
	})
	e.issuedAgo = 0
	if err != nil {
		e.t.Fatal(err)
	}

	m = e.startManager()
	start := time.Now()
	// Let the storm begin: a tenth of the keys rotated.
	for e.rotatedSince(ns, start) < n/10 {
		if time.Since(start) > 5*time.Minute {
			e.t.Fatal("the keys did not begin to rotate within 5 minutes")
		}
		time.Sleep(time.Second)
	}
	from := time.Now()
	busy := e.oneAtATime(e.namespace("storm-busy"), probes, func(*keywardenv1alpha1.APIKey) error { return nil })
	took := time.Since(from)
	rotated := e.rotatedSince(ns, from)
	m.Stop(10 * time.Second)

	report("%d keys of a class rotating every minute; %d new keys, one at a time", n, probes)
	report("idle controller: p50 %s, p99 %s", ms(percentile(idle, 0.5)), ms(percentile(idle, 0.99)))
	report("during the storm: p50 %s, p99 %s; %d keys rotated in those %s (%.0f a second)",
		ms(percentile(busy, 0.5)), ms(percentile(busy, 0.99)), rotated, took.Round(100*time.Millisecond), float64(rotated)/took.Seconds())
	if rotated == 0 {
		e.t.Fatal("no key rotated while the new keys were issued: there was no storm")
	}
	ratio("new key time to Ready p99, during a rotation storm vs idle", float64(percentile(busy, 0.99))/float64(percentile(idle, 0.99)), "<= 2")
}

// rotatedSince counts the keys of ns that completed a rotation since t.
func (e *env) rotatedSince(ns string, t time.Time) int {
	var list keywardenv1alpha1.APIKeyList
	if err := e.c.List(e.ctx, &list, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for i := range list.Items {
		if r := list.Items[i].Status.Rotation; r != nil && r.LastRotatedAt != nil && !r.LastRotatedAt.Time.Before(t.Truncate(time.Second)) {
			n++
		}
	}
	return n
}
