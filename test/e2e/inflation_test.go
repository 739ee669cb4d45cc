//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/test/harness"
)

// inflation: a namespace editor creates 300 APIKeys, each with 200 KiB of
// annotations and the largest secretTemplate the CRD admits (16 labels and
// 4 KiB of annotations, keys and values). The keys are issued
// and verify, and the live heap (after a collection) of the leader
// controller and of a verifier grows by less than 10 MiB each: what every
// replica holds of a key does not grow with what its author writes.
func inflation(e *env) {
	const (
		ns    = "inflation"
		n     = 300
		limit = 10 << 20
	)
	ctx := context.Background()
	e.kubectl("create", "namespace", ns)
	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	leader, verifier := e.leader(), e.verifiers[0]
	components := []*harness.Component{leader, verifier}
	before := make([]int64, len(components))
	for i, m := range components {
		before[i] = liveHeap(e, m)
	}
	indexed, err := metric(verifier, "keywarden_verifier_keys_indexed")
	if err != nil {
		e.t.Fatal(err)
	}

	// Every key's text is its own, so that no sharing of equal strings
	// can hide what each costs.
	template := func(i int) *keywardenv1alpha1.SecretTemplate {
		t := &keywardenv1alpha1.SecretTemplate{Labels: map[string]keywardenv1alpha1.LabelValue{}}
		// 16 labels of 255 characters each (keys and values), 4080 in all.
		for j := range 16 {
			t.Labels[fmt.Sprintf("%s.example.com/%s-%03d-%02d", strings.Repeat("l", 136), strings.Repeat("k", 36), i, j)] =
				keywardenv1alpha1.LabelValue(fmt.Sprintf("%03d%s", i, strings.Repeat("v", 60)))
		}
		one, two := fmt.Sprintf("a.example.com/one-%03d", i), fmt.Sprintf("a.example.com/two-%03d", i)
		t.Annotations = map[string]string{one: fmt.Sprintf("%03d", i) + strings.Repeat("a", 2045), two: strings.Repeat("b", 4096-2048-len(one)-len(two))}
		return t
	}
	padding := func(i int) map[string]string {
		return map[string]string{"padding.example.com/a": fmt.Sprintf("%03d", i) + strings.Repeat("p", 100<<10), "padding.example.com/b": strings.Repeat("q", 100<<10)}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				k := &keywardenv1alpha1.APIKey{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-%03d", i), Annotations: padding(i)},
					Spec: keywardenv1alpha1.APIKeySpec{DisplayName: strings.Repeat("D", 50), Description: fmt.Sprintf("%03d", i) + strings.Repeat("d", 497),
						Owner: fmt.Sprintf("owner-%03d@example.com", i), Role: "standard", SecretTemplate: template(i)},
				}
				if err := c.Create(ctx, k); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		e.t.Fatalf("%d of %d APIKeys refused, the first: %v", len(errs), n, errs[0])
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", ns, "--timeout=180s")
	e.eventually("the verifier indexes the keys", 60*time.Second, func() bool {
		now, err := metric(verifier, "keywarden_verifier_keys_indexed")
		return err == nil && now >= indexed+n
	})
	got, err := verify(verifier, map[string]any{"key": e.secretKey(ns, "key-000"), "namespace": ns})
	if err != nil || got["valid"] != true {
		e.t.Fatalf("a key of the namespace: %v %v", got, err)
	}
	var grew []string
	for i, m := range components {
		after := liveHeap(e, m)
		growth := after - before[i]
		grew = append(grew, fmt.Sprintf("%s %+.1f MiB", m.Cmd.Args[1], float64(growth)/(1<<20)))
		if growth >= limit {
			e.t.Errorf("the %s's live heap grew by %.1f MiB (from %.1f to %.1f) with %d inflated keys; want less than %d MiB",
				m.Cmd.Args[1], float64(growth)/(1<<20), float64(before[i])/(1<<20), float64(after)/(1<<20), n, limit>>20)
		}
	}
	e.note("inflation: %d APIKeys with 200 KiB of annotations and the largest secretTemplate issued and verified; live heap: %s", n, strings.Join(grew, ", "))
	// The next scenarios list every APIKey: these go first (a namespace is
	// never emptied here: the control plane runs no namespace controller).
	e.kubectl("delete", "apikeys", "--all", "-n", ns, "--wait=true", "--timeout=180s")
}

var heapAlloc = regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`)

// liveHeap is a component's heap after collections: its profile endpoint
// collects before it answers (gc=1). It is asked twice, because what a
// sync.Pool holds survives one collection.
func liveHeap(e *env, m *harness.Component) int64 {
	e.t.Helper()
	var b []byte
	for range 2 {
		resp, err := http1.Get(m.PprofURL + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			e.t.Fatal(err)
		}
		b, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			e.t.Fatal(err)
		}
	}
	match := heapAlloc.FindSubmatch(b)
	if match == nil {
		e.t.Fatalf("no HeapAlloc in %s's heap profile", m.Cmd.Args[1])
	}
	v, err := strconv.ParseInt(string(match[1]), 10, 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}
