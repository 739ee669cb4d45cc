//go:build bench

package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"keywarden.dev/keywarden/test/harness"
)

const mib = 1 << 20

// memory measures the controller's and the verifier's resident memory,
// each started afresh, with no keys, with 10,000 and with
// BENCH_MEMORY_KEYS keys (and their Secrets), with 2,000 unrelated 100 KiB
// Secrets added to the 10,000 keys, and with all of them under the memory
// limit of a 512 MiB container. Keys are written by a plain client while
// the components are stopped; each measurement starts them, waits until
// the controller's caches are synced and its workqueue is empty and the
// verifier has indexed every key, and reads VmRSS and VmHWM (the peak)
// from /proc, and the live heap after a collection it forces. The goal
// for the verifier: at most 256 MiB resident with 100,000 keys. What unrelated Secrets add is judged
// by the live heap: resident memory also moves with when the Go runtime
// returns freed pages to the system.
func memory(e *env) {
	small := envInt("BENCH_MEMORY_SMALL_KEYS", 10_000)
	large := envInt("BENCH_MEMORY_KEYS", 100_000)
	unrelated := envInt("BENCH_UNRELATED_SECRETS", 2000)
	ns := e.namespace("memory")

	empty, emptyVerifier := e.measure("no keys", "empty", 0)
	e.prefill(ns, 0, small, 32)
	withSmall, _ := e.measure(fmt.Sprintf("%d keys", small), "small", small)

	other := e.namespace("unrelated")
	payload := []byte(strings.Repeat("x", 100<<10))
	if err := parallel(unrelated, creators, func(i int) error {
		return e.c.Create(e.ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: fmt.Sprintf("unrelated-%05d", i)},
			Data:       map[string][]byte{"payload": payload},
		})
	}); err != nil {
		e.t.Fatal(err)
	}
	withUnrelated, _ := e.measure(fmt.Sprintf("%d keys and %d unrelated 100 KiB Secrets", small, unrelated), "unrelated", small)

	e.prefill(ns, small, large, 32)
	withLarge, largeVerifier := e.measure(fmt.Sprintf("%d keys and %d unrelated Secrets", large, unrelated), "large", large)
	report("verifier resident bytes per key: %.0f, live heap bytes per key: %.0f (from no keys to %d)",
		float64(largeVerifier.rss-emptyVerifier.rss)/float64(large), float64(largeVerifier.live-emptyVerifier.live)/float64(large), large)
	ratio(fmt.Sprintf("verifier resident memory with %d keys vs 256 MiB", large), float64(largeVerifier.rss)/(256*mib), "< 1")

	// In a container with a 512 MiB limit each component sets the Go
	// memory limit to 90% of it (see internal/app/options/memlimit.go);
	// GOMEMLIMIT does the same here, where there is no container.
	e.t.Setenv("GOMEMLIMIT", "460MiB")
	limited, _ := e.measure(fmt.Sprintf("%d keys and %d unrelated Secrets, in a 512 MiB container (GOMEMLIMIT=460MiB)", large, unrelated), "large-limited", large)

	perKey := float64(withLarge.rss-empty.rss) / float64(large)
	report("controller resident bytes per key: %.0f (from no keys to %d); %.0f at the margin (%d to %d)",
		perKey, large, float64(withLarge.rss-withSmall.rss)/float64(large-small), small, large)
	report("%d unrelated Secrets (%d MiB of data) add %+.1f MiB to the live heap (%+.0f bytes each); %+.1f MiB resident",
		unrelated, unrelated*len(payload)/mib, float64(withUnrelated.live-withSmall.live)/mib,
		float64(withUnrelated.live-withSmall.live)/float64(unrelated), float64(withUnrelated.rss-withSmall.rss)/mib)
	ratio(fmt.Sprintf("controller peak resident memory with %d keys in a 512 MiB container vs 512 MiB", large), float64(limited.hwm)/(512*mib), "< 1")
}

type memUsage struct{ rss, hwm, live int64 }

// measure starts a controller and a verifier, waits until the controller
// has reconciled the given number of keys and is idle and the verifier has
// indexed them, reads the memory of each and stops them. name names the
// heap profiles kept in BENCH_PROFILE_DIR.
func (e *env) measure(what, name string, keys int) (controller, verifier memUsage) {
	start := time.Now()
	pprof := e.freeAddr()
	m := e.startManager("--pprof-bind-address", pprof)
	e.waitIdle(m.Controller, keys)
	for e.scrape(m.Verifier).sum("keywarden_verifier_keys_indexed") < float64(keys) {
		time.Sleep(500 * time.Millisecond)
	}
	settled := time.Since(start)
	time.Sleep(2 * time.Second)
	read := func(c *harness.Component, addr, component string) (memUsage, metrics) {
		u := procMemory(e, c.Cmd.Process.Pid)
		// The heap profile, asked for with gc=1, collects first.
		path := os.DevNull
		if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
			path = filepath.Join(dir, fmt.Sprintf("heap-%s-%s-%d-keys.pb.gz", component, name, keys))
		}
		e.saveProfile(addr, "heap?gc=1", path)
		ms := e.scrape(c)
		u.live = int64(ms.sum("go_gc_heap_live_bytes"))
		return u, ms
	}
	controller, ms := read(m.Controller, pprof, "controller")
	verifier, _ = read(m.Verifier, strings.TrimPrefix(m.Verifier.PprofURL, "http://"), "verifier")
	writes := ms.sum("rest_client_requests_total", `method="POST"`, `method="PATCH"`, `method="PUT"`, `method="DELETE"`)
	m.Stop(10 * time.Second)
	report("%s: controller resident %.1f MiB, peak %.1f MiB, live heap %.1f MiB (synced and idle in %s, %0.f writes); verifier resident %.1f MiB, peak %.1f MiB, live heap %.1f MiB",
		what, float64(controller.rss)/mib, float64(controller.hwm)/mib, float64(controller.live)/mib, settled.Round(100*time.Millisecond), writes,
		float64(verifier.rss)/mib, float64(verifier.hwm)/mib, float64(verifier.live)/mib)
	return controller, verifier
}

// waitIdle waits until the APIKey controller has started and done at
// least the given number of passes, its workqueue is empty and no worker is
// busy, twice in a row.
func (e *env) waitIdle(m *harness.Component, passes int) {
	deadline := time.Now().Add(15 * time.Minute)
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			e.t.Fatal("the manager did not settle within 15 minutes")
		}
		time.Sleep(500 * time.Millisecond)
		ms := e.scrape(m)
		depth := ms.sum("workqueue_depth", `name="apikey"`)
		busy := ms.sum("controller_runtime_active_workers", `controller="apikey"`)
		done := ms.sum("controller_runtime_reconcile_total", `controller="apikey"`)
		started := ms.sum("controller_runtime_max_concurrent_reconciles", `controller="apikey"`) > 0
		if started && depth == 0 && busy == 0 && done >= float64(passes) {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// metrics is one scrape of a manager's Prometheus endpoint.
type metrics string

// scrape reads the manager's metrics.
func (e *env) scrape(m *harness.Component) metrics {
	resp, err := httpClient.Get(m.MetricsURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return metrics(body)
}

// sum adds up the samples of a metric whose labels contain any of the
// given label matchers (all samples when none is given).
func (ms metrics) sum(name string, anyOf ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(string(ms)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := len(anyOf) == 0
		for _, l := range anyOf {
			match = match || strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// requestsPerKey describes, for each of n keys, the APIKey passes and the
// API requests by method that a manager did between two scrapes.
func requestsPerKey(before, after metrics, n int) string {
	delta := func(name string, anyOf ...string) float64 {
		return (after.sum(name, anyOf...) - before.sum(name, anyOf...)) / float64(n)
	}
	s := fmt.Sprintf("%.1f passes, %.1f API requests", delta("controller_runtime_reconcile_total", `controller="apikey"`),
		delta("rest_client_requests_total"))
	var by []string
	for _, m := range []string{"GET", "POST", "PATCH", "PUT", "DELETE"} {
		if d := delta("rest_client_requests_total", `method="`+m+`"`); d >= 0.05 {
			by = append(by, fmt.Sprintf("%s %.1f", m, d))
		}
	}
	if len(by) > 0 {
		s += " (" + strings.Join(by, ", ") + ")"
	}
	return s
}

// procMemory reads VmRSS and VmHWM of a process.
func procMemory(e *env, pid int) memUsage {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		e.t.Fatal(err)
	}
	var u memUsage
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			u.rss = kb << 10
		case "VmHWM:":
			u.hwm = kb << 10
		}
	}
	return u
}

// saveProfile writes one of the manager's profiles to path, for
// go tool pprof.
func (e *env) saveProfile(addr, profile, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + profile)
	if err != nil {
		e.t.Error(err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	f, err := os.Create(path)
	if err != nil {
		e.t.Error(err)
		return
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(f, resp.Body); err != nil {
		e.t.Error(err)
		return
	}
	if path != os.DevNull {
		report("profile: %s", path)
	}
}

// freeAddr is a loopback address with a free port.
func (e *env) freeAddr() string {
	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// procCPU is the CPU time a process has used.
func procCPU(e *env, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		e.t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100
}
