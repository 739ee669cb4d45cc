//go:build bench

// Package bench measures Keywarden on the local control plane against
// baselines measured in the same run: the same API server driven by a plain
// client doing the minimum writes, or the machine's own floor. Each
// benchmark prints its figures and then its ratio. Run it with `make bench`;
// docs/benchmarks.md describes the method and keeps the latest figures.
//
// BENCH selects benchmarks by name (comma-separated; all by default), and
// the BENCH_* variables below change their sizes.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/test/harness"
)

func TestBench(t *testing.T) {
	bin := os.Getenv("KEYWARDEN_BIN")
	if bin == "" {
		t.Fatal("KEYWARDEN_BIN is not set: run make bench")
	}
	ctrllog.SetLogger(logr.Discard())
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("BENCH"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			only[n] = true
		}
	}
	for _, b := range []struct {
		name string
		run  func(*env)
	}{
		{"issuance", issuance},
		{"rotation", rotation},
		{"latency", latency},
		{"storm", storm},
		{"expiry", expiry},
		{"lastused", lastUsed},
		{"memory", memory},
	} {
		if len(only) > 0 && !only[b.name] {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, bin)
			fmt.Printf("\n== %s\n", b.name)
			b.run(e)
		})
	}
}

// env is one benchmark's control plane, with a client that the client-side
// rate limiter never slows down.
type env struct {
	t       *testing.T
	ctx     context.Context
	cluster *harness.Cluster
	c       client.WithWatch
	bin     string
	dir     string
	logs    int
	// seals is the controller's sealing key, for keys written as it
	// writes them.
	seals *seal.Store
	// issuedAgo backdates the keys writeIssued writes.
	issuedAgo time.Duration
}

func newEnv(t *testing.T, bin string) *env {
	dir := t.TempDir()
	cluster, err := harness.StartCluster(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS = -1
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	seals := &seal.Store{Client: c, Secret: types.NamespacedName{Namespace: harness.ManagerNamespace, Name: "keywarden-sealing-key"}}
	if err := seals.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: t.Context(), cluster: cluster, c: c, bin: bin, dir: dir, seals: seals}
}

// install is a controller and a verifier, as an install runs them.
type install struct {
	Controller, Verifier *harness.Component
}

// Stop stops both.
func (i *install) Stop(timeout time.Duration) {
	i.Controller.Stop(timeout)
	i.Verifier.Stop(timeout)
}

// startManager starts a controller with its default settings and the extra
// flags, and a verifier with its defaults, and waits until the verifier is
// ready (its index is synced).
func (e *env) startManager(extra ...string) *install {
	start := func(name string, run func(*os.File) (*harness.Component, error)) (*harness.Component, *os.File) {
		e.logs++
		out, err := os.Create(filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", name, e.logs)))
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { _ = out.Close() })
		m, err := run(out)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { m.Stop(10 * time.Second) })
		return m, out
	}
	c, _ := start("controller", func(f *os.File) (*harness.Component, error) { return e.cluster.StartController(e.bin, f, extra...) })
	v, out := start("verifier", func(f *os.File) (*harness.Component, error) { return e.cluster.StartVerifier(e.bin, f, "") })
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if resp, err := httpClient.Get(v.URL + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return &install{Controller: c, Verifier: v}
			}
		}
		select {
		case <-v.Exited():
			e.t.Fatalf("the verifier exited: %v (log: %s)", v.Err(), out.Name())
		case <-c.Exited():
			e.t.Fatalf("the controller exited: %v", c.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the verifier was not ready within 5 minutes (log: %s)", out.Name())
		}
	}
}

func (e *env) namespace(name string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.c.Create(e.ctx, ns); err != nil {
		e.t.Fatal(err)
	}
	return name
}

// report prints one figure of a benchmark.
func report(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// ratio prints a benchmark's result against its baseline and its goal; it
// is the last line a benchmark prints.
func ratio(name string, value float64, goal string) {
	fmt.Printf("   RATIO %s: %.2f (goal: %s)\n", name, value, goal)
}

// percentile returns the q-quantile (0 < q <= 1) of ds by nearest rank.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err == nil {
			return d
		}
	}
	return def
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
