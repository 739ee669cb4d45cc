//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/test/harness"
)

// The soak's bounds.
const (
	// soakStaleness is the --verifier-max-staleness of the soak's
	// verifiers: no ended key may verify later than this after its end
	// was stored (plus soakSlack for the watch to carry it).
	soakStaleness = 15 * time.Second
	soakSlack     = 3 * time.Second
	// soakLimit is the class's maxActiveKeysPerOwner; soakOwners share
	// the keys, so that creations run into it.
	soakLimit  = 3
	soakOwners = 6
	// soakSettle is how long after the last fault every key must have
	// reached Ready or its documented end.
	soakSettle = 30 * time.Second
)

// soakKey is what the soak knows of one key value.
type soakKey struct {
	name      string
	uid       types.UID
	raw, hash string
	// endedAt is when its revocation, report or deletion was stored
	// (zero while it lives); expiresAt when it expires (zero: never).
	endedAt, expiresAt time.Time
	endedBy            string
}

// soak is the state of one chaos soak.
type soak struct {
	e      *env
	c      client.Client
	ns     string
	mu     sync.Mutex
	byRaw  map[string]*soakKey
	byName map[string][]*soakKey // every value a key has held
	hashes map[types.UID]string  // the hash last seen in each key's status
	// rotatedAt is when each key was last asked to rotate.
	rotatedAt map[string]time.Time
	verifiers []*harness.Component
	// console runs as config/console runs it, at consoleAddr; the soak
	// asks it for its sign-in page.
	console     *harness.Component
	consoleAddr string
	ops         map[string]int
	faults      map[string]int
	violations  []string
	verified    atomic.Int64
	// refused counts the answers about values past their end or expiry:
	// each one refused, or it is a violation.
	refused atomic.Int64
	memory  map[string][]memSample
	next    atomic.Int64
}

type memSample struct {
	at  time.Time
	rss float64 // MiB
}

func (s *soak) count(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops[op]++
}

func (s *soak) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 1000 {
		s.violations = append(s.violations, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
}

// chaosSoak runs the workload a platform team's keys see (creations, some
// past an owner's limit; spec edits, some refused; revocations, leak
// reports, rotations, deletions, expiries; verifications from several
// clients, and the console's sign-in page) while faults arrive every 10 to
// 30 seconds (SIGKILL of a controller, a verifier or the console, SIGSTOP
// of a verifier or the console for 20 seconds, a restart of kube-apiserver,
// a restart of etcd; see faultKinds for a paused controller), for
// SOAK_MINUTES (2 by default).
// Checked all along: no ended key verifies later than the verifiers'
// staleness bound after its end was stored, and no expired key after its
// expiry; no owner ever holds more active keys than its limit; no key's
// value changes but by a rotation. At the end: every key reaches Ready or
// its documented end within 30 s of the last fault, no Secret outlives its
// APIKey, no raw key is in any log, event, APIKey or metric, and no
// process's memory grows steadily. The table is printed, and written to
// SOAK_REPORT when set (make soak writes docs/reliability.md).
func chaosSoak(e *env) {
	minutes := 2.0
	if v := os.Getenv("SOAK_MINUTES"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil || m <= 0 {
			e.t.Fatalf("SOAK_MINUTES=%q: want a positive number of minutes", v)
		}
		minutes = m
	}
	duration := time.Duration(minutes * float64(time.Minute))
	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	s := &soak{e: e, c: c, ns: "soak", byRaw: map[string]*soakKey{}, byName: map[string][]*soakKey{}, hashes: map[types.UID]string{},
		rotatedAt: map[string]time.Time{}, ops: map[string]int{}, faults: map[string]int{}, memory: map[string][]memSample{}}
	e.kubectl("create", "namespace", s.ns)
	if _, err := e.kubectlIn(fmt.Sprintf(`apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata: {name: soak}
spec:
  maxActiveKeysPerOwner: %d
  rotation: {minEvery: 1m}
  roles:
    - {name: reader, scopes: [data:read]}
    - {name: writer, scopes: [data:read, data:write]}
`, soakLimit), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	for range 2 {
		s.verifiers = append(s.verifiers, s.startVerifier())
	}
	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	s.consoleAddr = fmt.Sprintf("127.0.0.1:%d", port)
	s.console = s.startConsole()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, v := range append(s.verifiers, s.console) {
			v.Stop(10 * time.Second)
		}
	}()

	ctx, stop := context.WithCancel(context.Background())
	var work sync.WaitGroup
	every := func(period time.Duration, f func()) {
		work.Go(func() {
			for ctx.Err() == nil {
				f()
				select {
				case <-ctx.Done():
				case <-time.After(period):
				}
			}
		})
	}
	every(300*time.Millisecond, s.create)
	every(time.Second, s.harvest)
	every(400*time.Millisecond, s.mutate)
	every(5*time.Second, s.sampleMemory)
	every(time.Second, func() {
		if code, _ := status("http://" + s.consoleAddr + "/login"); code == http.StatusOK {
			s.count("console page")
		}
	})
	for range 3 {
		every(20*time.Millisecond, s.verify)
	}

	start := time.Now()
	deadline := start.Add(duration)
	var lastFault time.Time
	for {
		wait := time.Duration(10+rand.IntN(21)) * time.Second
		if time.Now().Add(wait + 25*time.Second).After(deadline) {
			break
		}
		time.Sleep(wait)
		s.fault()
		lastFault = time.Now()
	}
	time.Sleep(time.Until(deadline))
	stop()
	work.Wait()
	// A controller stopped while it led has lost its lease, and exits on
	// waking, as it must: its Deployment would start another.
	for _, m := range slices.Clone(e.controllers) {
		select {
		case <-m.Exited():
			e.replace(m)
		default:
		}
	}
	// Every key settles within soakSettle of the last fault, and of the
	// last operation (which may come later).
	settleFrom := time.Now()
	if lastFault.After(settleFrom) {
		settleFrom = lastFault
	}
	s.settle(settleFrom)
	if code, _ := status("http://" + s.consoleAddr + "/login"); code != http.StatusOK {
		s.violate("the console does not answer after the soak: %d", code)
	}
	s.harvest()
	s.checkSecrets()
	leaks := s.checkLeaks()
	s.checkMemory()

	table := s.table(duration, leaks)
	fmt.Println(table)
	if out := os.Getenv("SOAK_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) > 0 {
		e.t.Fatalf("%d violations, the first: %s\nthe last: %s", len(s.violations), s.violations[0], s.violations[len(s.violations)-1])
	}
	if s.refused.Load() == 0 {
		e.t.Fatal("no value was asked about past its end: the soak checked nothing of ended keys")
	}
	e.note("chaos soak: %s, %d faults (%s), %d operations, %d verifications (%d about ended or expired values, all refused), 0 violations",
		duration, sum(s.faults), describe(s.faults), sum(s.ops), s.verified.Load(), s.refused.Load())
}

// startConsole starts the console as config/console runs it (its own
// ServiceAccount, bound to nothing) and waits for its sign-in page.
func (s *soak) startConsole() *harness.Component {
	e := s.e
	m, err := e.cluster.StartConsole(e.bin, e.logFile("console"), s.consoleAddr, "--kubeconfig", e.accountKubeconfig("keywarden-console"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.eventually("the console answers", 30*time.Second, func() bool {
		code, _ := status("http://" + s.consoleAddr + "/login")
		return code == http.StatusOK
	})
	return m
}

func (s *soak) startVerifier() *harness.Component {
	v := s.e.startVerifier("--verifier-max-staleness", soakStaleness.String())
	s.e.verifiers = slices.DeleteFunc(s.e.verifiers, func(o *harness.Component) bool { return o == v })
	return v
}

// create makes a key of a random owner, a writer now and then, some
// expiring within the soak.
func (s *soak) create() {
	n := s.next.Add(1)
	name := fmt.Sprintf("k-%04d", n)
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{DisplayName: name, Owner: fmt.Sprintf("owner-%d@example.com", rand.IntN(soakOwners)),
			Role: "reader", ClassName: "soak"},
	}
	if n%4 == 0 {
		k.Spec.Role = "writer"
	}
	if n%5 == 0 {
		k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 40 * time.Second}
	}
	if err := s.c.Create(context.Background(), k); err == nil {
		s.count("create")
	}
}

// harvest reads every key as the API server has it: the value of each
// issued key from its Secret, each change of a key's hash (which must be
// a rotation), and each owner's active keys (never more than the limit).
func (s *soak) harvest() {
	ctx := context.Background()
	var list keywardenv1alpha1.APIKeyList
	if err := s.c.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
		return
	}
	active := map[string][]string{}
	for i := range list.Items {
		k := &list.Items[i]
		st := &k.Status
		if lifecycle.Issued(st) && !lifecycle.Ending(k) {
			active[k.GrantedOwner()] = append(active[k.GrantedOwner()], k.Name)
		}
		if st.KeyHash == "" {
			continue
		}
		s.mu.Lock()
		was, seen := s.hashes[k.UID]
		s.hashes[k.UID] = st.KeyHash
		s.mu.Unlock()
		if seen && was != st.KeyHash {
			if which, _ := st.Holds(was); which != keywardenv1alpha1.HoldsPrevious {
				var history []string
				for _, h := range st.History {
					history = append(history, h.At.Format("15:04:05")+" "+h.Event+": "+h.Message)
				}
				s.violate("%s: its key changed from %s to %s without a rotation (%v); its history: %s; its Events: %s",
					k.Name, short(was), short(st.KeyHash), which, strings.Join(history, " | "), s.eventsOf(ctx, k))
			}
		}
		s.mu.Lock()
		_, known := s.byHash(st.KeyHash)
		s.mu.Unlock()
		if known || lifecycle.Ending(k) || st.SecretRef == nil {
			continue
		}
		secret, err := s.e.kube.CoreV1().Secrets(s.ns).Get(ctx, st.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		raw := string(secret.Data[keywardenv1alpha1.SecretKeyField])
		if raw == "" || keys.Hash(raw) != st.KeyHash {
			continue // mid-rotation: read again next time
		}
		s.e.remember(raw)
		sk := &soakKey{name: k.Name, uid: k.UID, raw: raw, hash: st.KeyHash}
		if st.ExpiresAt != nil {
			sk.expiresAt = st.ExpiresAt.Time
		}
		s.mu.Lock()
		s.byRaw[raw] = sk
		s.byName[k.Name] = append(s.byName[k.Name], sk)
		s.mu.Unlock()
	}
	for owner, names := range active {
		if len(names) > soakLimit {
			s.violate("owner %s holds %d active keys, over its limit of %d: %v", owner, len(names), soakLimit, names)
		}
	}
}

// eventsOf tells the Events of a key, oldest first, with the component
// that emitted each: what a violation report needs to say who acted.
func (s *soak) eventsOf(ctx context.Context, k *keywardenv1alpha1.APIKey) string {
	list, err := s.e.kube.CoreV1().Events(s.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(k.UID)})
	if err != nil {
		return "(not listed: " + err.Error() + ")"
	}
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		out = append(out, fmt.Sprintf("%s %s by %s: %s", e.EventTime.Format("15:04:05.000"), e.Reason, e.ReportingInstance, e.Message))
	}
	return strings.Join(out, " | ")
}

func (s *soak) byHash(hash string) (*soakKey, bool) {
	for _, k := range s.byRaw {
		if k.hash == hash {
			return k, true
		}
	}
	return nil, false
}

// live is a random key value that has not ended.
func (s *soak) live() *soakKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*soakKey
	for _, k := range s.byRaw {
		if k.endedAt.IsZero() {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out[rand.IntN(len(out))]
}

// end records that every value of the key ended at the time given.
func (s *soak) end(name, by string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.byName[name] {
		if k.endedAt.IsZero() {
			k.endedAt, k.endedBy = at, by
		}
	}
}

// mutate changes a random key: an edit of its display name, an edit to a
// role its class refuses, a rotation, a revocation, a leak report, or a
// deletion.
func (s *soak) mutate() {
	k := s.live()
	if k == nil {
		return
	}
	ctx := context.Background()
	patch := func(p string) error {
		obj := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: k.name}}
		return s.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(p)))
	}
	switch r := rand.IntN(12); {
	case r < 3:
		if patch(fmt.Sprintf(`{"spec":{"displayName":"edited %d"}}`, rand.IntN(1000))) == nil {
			s.count("edit")
		}
	case r < 4:
		if patch(`{"spec":{"role":"admin"}}`) == nil {
			s.count("edit refused by its class")
		}
	case r < 7:
		s.mu.Lock()
		recent := time.Since(s.rotatedAt[k.name]) < 70*time.Second
		if !recent {
			s.rotatedAt[k.name] = time.Now()
		}
		s.mu.Unlock()
		if !recent && patch(fmt.Sprintf(`{"spec":{"rotation":{"request":"r%d"}}}`, time.Now().UnixNano())) == nil {
			s.count("rotation")
		}
	case r < 9:
		if patch(`{"spec":{"revoked":true}}`) == nil {
			s.end(k.name, "revoked", time.Now())
			s.count("revocation")
		}
	case r < 10:
		s.mu.Lock()
		v := s.verifiers[rand.IntN(len(s.verifiers))]
		s.mu.Unlock()
		resp, err := http1.Post(v.URL+"/v1/keys/report", "application/json", strings.NewReader(`{"key":"`+k.raw+`"}`))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				s.end(k.name, "reported", time.Now())
				s.count("report")
			}
		}
	default:
		obj := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: k.name}}
		if err := s.c.Delete(ctx, obj); err == nil || apierrors.IsNotFound(err) {
			s.end(k.name, "deleted", time.Now())
			s.count("deletion")
		}
	}
}

// verify asks a random verifier about a random value, ended or not: an
// ended key that verifies past the staleness bound, or an expired one, is
// a violation.
func (s *soak) verify() {
	s.mu.Lock()
	if len(s.byRaw) == 0 {
		s.mu.Unlock()
		return
	}
	all := make([]*soakKey, 0, len(s.byRaw))
	for _, k := range s.byRaw {
		all = append(all, k)
	}
	k := all[rand.IntN(len(all))]
	v := s.verifiers[rand.IntN(len(s.verifiers))]
	endedAt, by, expiresAt := k.endedAt, k.endedBy, k.expiresAt
	s.mu.Unlock()
	asked := time.Now()
	got, err := verify(v, map[string]any{"key": k.raw, "namespace": s.ns})
	if err != nil {
		return // a verifier killed, stopped or stale (503): no answer
	}
	s.verified.Add(1)
	pastEnd := !endedAt.IsZero() && asked.After(endedAt.Add(soakStaleness+soakSlack)) || !expiresAt.IsZero() && asked.After(expiresAt.Add(time.Second))
	if got["valid"] != true {
		if pastEnd {
			s.refused.Add(1)
		}
		return
	}
	if !endedAt.IsZero() && asked.After(endedAt.Add(soakStaleness+soakSlack)) {
		s.violate("%s (%s...) %s at %s verified at %s, %s later", k.name, k.raw[:8], by, endedAt.Format("15:04:05.000"),
			asked.Format("15:04:05.000"), asked.Sub(endedAt).Round(time.Millisecond))
	}
	if !expiresAt.IsZero() && asked.After(expiresAt.Add(time.Second)) {
		s.violate("%s (%s...) expired at %s verified at %s", k.name, k.raw[:8], expiresAt.Format("15:04:05"), asked.Format("15:04:05.000"))
	}
}

// faultKinds are the faults the soak chooses from: all of them, or those
// SOAK_FAULTS lists (numbers, comma-separated): 0 SIGKILL of a
// controller, 1 of a verifier, 2 SIGSTOP of a verifier or the console for
// 20 s, 3 a restart of kube-apiserver, 4 of etcd, 5 SIGKILL of the
// console, 6 SIGSTOP of the leading controller for 20 s (longer than its
// lease: it wakes believing it leads, with a cache from before the pause).
func faultKinds() []int {
	v := os.Getenv("SOAK_FAULTS")
	if v == "" {
		return []int{0, 1, 2, 3, 4, 5, 6}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n >= 0 && n < 7 {
			out = append(out, n)
		}
	}
	return out
}

// fault injects one fault, chosen at random, and returns once it is over.
func (s *soak) fault() {
	e := s.e
	kinds := faultKinds()
	switch kind := kinds[rand.IntN(len(kinds))]; kind {
	case 0:
		m := e.controllers[rand.IntN(len(e.controllers))]
		e.replace(m)
		s.faultDone("SIGKILL of a controller")
	case 1:
		s.mu.Lock()
		i := rand.IntN(len(s.verifiers))
		v := s.verifiers[i]
		s.verifiers = slices.Delete(s.verifiers, i, i+1)
		s.mu.Unlock()
		v.Kill()
		n := s.startVerifier()
		s.mu.Lock()
		s.verifiers = append(s.verifiers, n)
		s.mu.Unlock()
		s.faultDone("SIGKILL of a verifier")
	case 2, 6:
		s.mu.Lock()
		all := append(slices.Clone(s.verifiers), s.console)
		what := "SIGSTOP of a verifier or the console for 20 s"
		s.mu.Unlock()
		if kind == 6 {
			all, what = slices.Clone(e.controllers), "SIGSTOP of a controller for 20 s"
			if l := e.leaderNow(); l != nil {
				all, what = []*harness.Component{l}, "SIGSTOP of the leading controller for 20 s"
			}
		}
		m := all[rand.IntN(len(all))]
		_ = m.Cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(20 * time.Second)
		_ = m.Cmd.Process.Signal(syscall.SIGCONT)
		s.faultDone(what)
	case 3:
		if err := e.cluster.StopAPIServer(); err != nil {
			s.violate("stopping the API server: %v", err)
		}
		if err := e.cluster.StartAPIServer(); err != nil {
			e.t.Fatalf("starting the API server again: %v", err)
		}
		s.faultDone("restart of kube-apiserver")
	case 4:
		if err := e.cluster.StopEtcd(); err != nil {
			s.violate("stopping etcd: %v", err)
		}
		time.Sleep(2 * time.Second)
		if err := e.cluster.StartEtcd(); err != nil {
			e.t.Fatalf("starting etcd again: %v", err)
		}
		s.faultDone("restart of etcd")
	case 5:
		s.mu.Lock()
		m := s.console
		s.mu.Unlock()
		m.Kill()
		n := s.startConsole()
		s.mu.Lock()
		s.console = n
		s.mu.Unlock()
		s.faultDone("SIGKILL of the console")
	}
}

func (s *soak) faultDone(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[kind]++
}

// settle waits until every key is Ready or in its documented end: Active
// and Ready (perhaps Stalled on a refused edit), Refused for its owner's
// limit, Revoked, Expired, or gone once deleted; at most soakSettle after
// the last fault (or the end of the workload).
func (s *soak) settle(from time.Time) {
	var pending []string
	for deadline := from.Add(soakSettle); ; time.Sleep(500 * time.Millisecond) {
		var list keywardenv1alpha1.APIKeyList
		if err := s.c.List(context.Background(), &list, client.InNamespace(s.ns)); err != nil {
			pending = []string{err.Error()}
		} else {
			pending = pending[:0]
			for _, k := range list.Items {
				ready := apimeta.IsStatusConditionTrue(k.Status.Conditions, keywardenv1alpha1.ConditionReady)
				switch {
				case !k.DeletionTimestamp.IsZero():
					pending = append(pending, k.Name+" still being deleted")
				case k.Status.Phase == keywardenv1alpha1.PhaseActive && ready && !k.Spec.Revoked && k.Status.Revocation == nil:
				case k.Status.Phase == keywardenv1alpha1.PhaseRefused && !k.Spec.Revoked:
				case k.Status.Phase == keywardenv1alpha1.PhaseRevoked, k.Status.Phase == keywardenv1alpha1.PhaseExpired:
				default:
					pending = append(pending, fmt.Sprintf("%s %s (Ready %v)", k.Name, k.Status.Phase, ready))
				}
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.violate("%d keys neither Ready nor ended %s after the last fault: %v", len(pending), soakSettle, pending[:min(len(pending), 10)])
			return
		}
	}
}

// checkSecrets: no Secret outlives its APIKey, and each Active key's
// Secret holds the key its status records.
func (s *soak) checkSecrets() {
	ctx := context.Background()
	var list keywardenv1alpha1.APIKeyList
	if err := s.c.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
		s.violate("listing APIKeys: %v", err)
		return
	}
	byUID := map[types.UID]*keywardenv1alpha1.APIKey{}
	for i := range list.Items {
		byUID[list.Items[i].UID] = &list.Items[i]
	}
	secrets, err := s.e.kube.CoreV1().Secrets(s.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.violate("listing Secrets: %v", err)
		return
	}
	held := map[types.UID]bool{}
	for _, sec := range secrets.Items {
		ref := metav1.GetControllerOf(&sec)
		if ref == nil || byUID[ref.UID] == nil {
			s.violate("Secret %s outlives its APIKey", sec.Name)
			continue
		}
		k := byUID[ref.UID]
		held[k.UID] = true
		if k.Status.Phase == keywardenv1alpha1.PhaseActive && keys.Hash(string(sec.Data[keywardenv1alpha1.SecretKeyField])) != k.Status.KeyHash {
			s.violate("Secret %s does not hold the key its APIKey records", sec.Name)
		}
	}
	for _, k := range list.Items {
		if k.Status.Phase == keywardenv1alpha1.PhaseActive && !held[k.UID] {
			s.violate("%s is Active without its Secret", k.Name)
		}
	}
}

// checkLeaks searches every log, event, APIKey and metric for the values
// of the soak's keys.
func (s *soak) checkLeaks() int {
	e := s.e
	places := map[string]string{
		"APIKeys": e.kubectl("get", "apikeys", "-n", s.ns, "-o", "yaml"),
		"Events":  e.kubectl("get", "events", "-n", s.ns, "-o", "yaml"),
	}
	for _, log := range e.logs {
		b, err := os.ReadFile(log)
		if err != nil {
			e.t.Fatal(err)
		}
		places["log "+filepath.Base(log)] = string(b)
	}
	for i, m := range append(slices.Clone(e.controllers), s.verifiers...) {
		if text, err := metricsText(m); err == nil {
			places[fmt.Sprintf("metrics of %s %d", m.Cmd.Args[1], i)] = text
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	leaks := 0
	for place, text := range places {
		for raw := range s.byRaw {
			if strings.Contains(text, raw) {
				leaks++
				s.violations = append(s.violations, fmt.Sprintf("a raw key (%s...) appears in %s", raw[:8], place))
			}
		}
	}
	return leaks
}

// sampleMemory reads the resident memory of each running component.
func (s *soak) sampleMemory() {
	s.mu.Lock()
	all := append(slices.Clone(s.e.controllers), append(slices.Clone(s.verifiers), s.console)...)
	s.mu.Unlock()
	for _, m := range all {
		rss, err := residentMiB(m.Cmd.Process.Pid)
		if err != nil {
			continue
		}
		key := fmt.Sprintf("%s pid %d", filepath.Base(m.Cmd.Args[1]), m.Cmd.Process.Pid)
		s.mu.Lock()
		s.memory[key] = append(s.memory[key], memSample{time.Now(), rss})
		s.mu.Unlock()
	}
}

func residentMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// checkMemory: a process that ran for at least a minute holds, over the
// last third of its samples, no more than half again what it held over
// the first third after its first 15 seconds, plus 30 MiB.
func (s *soak) checkMemory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for process, samples := range s.memory {
		samples = slices.DeleteFunc(slices.Clone(samples), func(m memSample) bool { return m.at.Sub(samples[0].at) < 15*time.Second })
		if len(samples) < 6 || samples[len(samples)-1].at.Sub(samples[0].at) < time.Minute {
			continue
		}
		third := len(samples) / 3
		first, last := mean(samples[:third]), mean(samples[len(samples)-third:])
		if last > 1.5*first+30 {
			s.violations = append(s.violations, fmt.Sprintf("%s grew from %.0f MiB to %.0f MiB", process, first, last))
		}
	}
}

func mean(s []memSample) float64 {
	var t float64
	for _, m := range s {
		t += m.rss
	}
	return t / float64(len(s))
}

// table is the soak's report, in Markdown.
func (s *soak) table(duration time.Duration, leaks int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability: the chaos soak\n\n")
	fmt.Fprintf(&b, "Written by `make soak` (`SOAK_MINUTES=%g`), %s, on the development machine: a real etcd and kube-apiserver, two controllers, two verifiers and the console as processes under their own ServiceAccounts (the verifiers with `--verifier-max-staleness=%s`). `make test-e2e` runs the same for two minutes.\n\n",
		duration.Minutes(), time.Now().UTC().Format("2006-01-02"), soakStaleness)
	fmt.Fprintf(&b, "| | count |\n|---|---|\n")
	for _, m := range []map[string]int{s.faults, s.ops} {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "| %s | %d |\n", n, m[n])
		}
	}
	fmt.Fprintf(&b, "| faults injected | **%d** |\n| operations | **%d** |\n| verifications answered | **%d** |\n| of which about values past their end or expiry (each refused) | %d |\n| key values followed | %d |\n| raw keys found in logs, events, APIKeys, metrics | %d |\n| processes whose memory was followed for a minute or more | %d |\n| violations | **%d** |\n\n",
		sum(s.faults), sum(s.ops), s.verified.Load(), s.refused.Load(), len(s.byRaw), leaks, followed(s.memory), len(s.violations))
	fmt.Fprintf(&b, "Checked all along: no revoked, reported or deleted key verified later than %s after its end was stored (the staleness bound, plus %s for the watch to carry it), and no expired key after its expiry; no owner held more than %d active keys; no key's value changed but by a rotation. At the end: every key was Ready, Refused for its owner's limit, Revoked or Expired within %s of the last fault; no Secret outlived its APIKey; no raw key was found; no process's memory grew by half again plus 30 MiB.\n",
		soakStaleness, soakSlack, soakLimit, soakSettle)
	for _, v := range s.violations[:min(len(s.violations), 20)] {
		fmt.Fprintf(&b, "\n- %s", v)
	}
	return b.String()
}

func followed(m map[string][]memSample) int {
	n := 0
	for _, s := range m {
		if len(s) > 1 && s[len(s)-1].at.Sub(s[0].at) >= time.Minute {
			n++
		}
	}
	return n
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func describe(m map[string]int) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func short(hash string) string {
	if len(hash) > 15 {
		return hash[:15]
	}
	return hash
}
