//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/test/harness"
)

// service stands in for the keywarden-verifier Service: the endpoints it
// routes to are the ready pods with a port named verifier, which a
// terminating pod leaves before it stops. Requests go to each in turn.
type service struct {
	mu        sync.Mutex
	endpoints []*harness.Component
	next      int
}

func (s *service) add(m *harness.Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append(s.endpoints, m)
}

func (s *service) remove(m *harness.Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = slices.DeleteFunc(s.endpoints, func(o *harness.Component) bool { return o == m })
}

func (s *service) pick() *harness.Component {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.endpoints[s.next%len(s.endpoints)]
}

// upgradeFromOneProcess: an install of the release before the split (its
// manager binary, built from this repository's history by
// hack/previous.sh, running everything in two replicas under its
// config/rbac) holds active keys, a key rotating and a key refused for its
// owner's limit, while clients verify through the verifier's Service.
// Then the manifests change over as `kubectl apply` of this release does:
// its config/rbac is applied, its controllers stand for the lease (and
// write the serving pair of the certificate the old replicas issued for
// its verifiers), its verifiers join the Service once ready, and the old
// replicas leave one by one, as a rolling update replaces pods. A rotation is asked for while
// both run and another once only the new ones do, and the refused key's
// place is freed. No verification fails, no key is reissued (the same hash
// and Secret for each), every rotation completes, and the refused key is
// issued by the new controller.
func upgradeFromOneProcess(e *env) {
	prev := os.Getenv("PREVIOUS_RELEASE_DIR")
	if prev == "" {
		e.t.Fatal("PREVIOUS_RELEASE_DIR is not set: run make test-e2e (hack/previous.sh builds it)")
	}
	for _, m := range append(e.controllers, e.verifiers...) {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	ctx := context.Background()
	const ns = "upgrade"

	// The earlier release, as it was installed.
	e.kubectl("apply", "-k", filepath.Join(prev, "src", "config", "rbac"))
	var started int
	// startPrevious starts a manager of the earlier release and waits for
	// it to be ready.
	startPrevious := func() *harness.Component {
		e.t.Helper()
		addrs := make([]string, 3)
		for j := range addrs {
			p, err := harness.FreePort()
			if err != nil {
				e.t.Fatal(err)
			}
			addrs[j] = "127.0.0.1:" + strconv.Itoa(p)
		}
		started++
		m, err := harness.StartBinary(filepath.Join(prev, "manager"), e.logFile("previous-manager"), []string{
			"--kubeconfig", e.managerKubeconfig, "--metrics-bind-address", addrs[0], "--metrics-secure=false",
			"--health-probe-bind-address", addrs[1], "--verifier-bind-address", addrs[2],
			"--leader-elect", "--leader-election-namespace", harness.ManagerNamespace,
			"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms",
			"--verifier-certs=self", "--verifier-cert-dir", filepath.Join(e.dir, fmt.Sprintf("previous-certs-%d", started)),
		}, "https://"+addrs[2], "http://"+addrs[0], "")
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { m.Stop(10 * time.Second) })
		e.trustVerifierCA()
		e.eventually("a manager of the earlier release is ready", 60*time.Second, func() bool {
			code, _ := status(m.URL + "/readyz")
			return code == 200
		})
		return m
	}
	old := []*harness.Component{startPrevious(), startPrevious()}
	svc := &service{}
	for _, m := range old {
		svc.add(m)
	}
	e.kubectl("create", "namespace", ns)
	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	apply := func(manifest string) {
		e.t.Helper()
		if _, err := e.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
			e.t.Fatal(err)
		}
	}
	keyManifest := func(name, spec string) string {
		return "---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: {displayName: " + name + ", " + spec + "}\n"
	}
	// phases reads every key's phase through the API server.
	phases := func() map[string]keywardenv1alpha1.APIKeyPhase {
		var list keywardenv1alpha1.APIKeyList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			e.t.Fatal(err)
		}
		out := map[string]keywardenv1alpha1.APIKeyPhase{}
		for _, k := range list.Items {
			out[k.Name] = k.Status.Phase
		}
		return out
	}
	waitPhase := func(what string, phase keywardenv1alpha1.APIKeyPhase, names ...string) {
		e.t.Helper()
		e.eventually(what, 90*time.Second, func() bool {
			got := phases()
			return !slices.ContainsFunc(names, func(n string) bool { return got[n] != phase })
		})
	}
	names := func(prefix string, n int, suffix ...string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%03d", prefix, i) + strings.Join(suffix, "")
		}
		return out
	}

	// 300 keys in every state, as the earlier release leaves them. The
	// keys that expire go first: their clock runs while the rest are made.
	expiring, steady, rotating := names("expired", 10), names("steady", 240), names("rotating", 10)
	revoked, reported := names("revoked", 10), names("reported", 10)
	expiresAt := time.Now().Add(40 * time.Second).UTC().Format(time.RFC3339)
	var manifest strings.Builder
	for i, n := range expiring {
		manifest.WriteString(keyManifest(n, fmt.Sprintf("owner: expiring-%d@example.com, role: reader, expiresAt: %q", i, expiresAt)))
	}
	manifest.WriteString("---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKeyClass\nmetadata: {name: upgrade-one-each}\nspec: {maxActiveKeysPerOwner: 1}\n")
	for i, n := range steady {
		// Every other key has its last use recorded.
		manifest.WriteString(keyManifest(n, fmt.Sprintf("owner: steady-%d@example.com, role: reader, trackLastUsed: %v", i, i%2 == 0)))
	}
	rotatingManifest := func(request string) string {
		var b strings.Builder
		for i, n := range rotating {
			b.WriteString(keyManifest(n, fmt.Sprintf("owner: rotating-%d@example.com, role: reader, rotation: {gracePeriod: 1h, request: %q}", i, request)))
		}
		return b.String()
	}
	manifest.WriteString(rotatingManifest("r0"))
	for i, n := range append(slices.Clone(revoked), reported...) {
		manifest.WriteString(keyManifest(n, fmt.Sprintf("owner: ended-%d@example.com, role: reader", i)))
	}
	// Five owners of one key each: a holder, and two keys refused while it
	// holds the place, the first created first.
	const owners = 5
	holders := names("holder", owners)
	for i, n := range holders {
		manifest.WriteString(keyManifest(n, fmt.Sprintf("owner: shared-%d@example.com, role: reader, className: upgrade-one-each", i)))
	}
	apply(manifest.String())
	waitPhase("the earlier release issues every key", keywardenv1alpha1.PhaseActive,
		slices.Concat(expiring, steady, rotating, revoked, reported, holders)...)
	for _, queue := range []string{"a", "b"} {
		var waiting strings.Builder
		queued := names("waiting", owners, "-"+queue)
		for i, n := range queued {
			waiting.WriteString(keyManifest(n, fmt.Sprintf("owner: shared-%d@example.com, role: reader, className: upgrade-one-each", i)))
		}
		apply(waiting.String())
		waitPhase("keys past their owners' limit are refused", keywardenv1alpha1.PhaseRefused, queued...)
		// The second queue is created strictly after the first is refused.
		time.Sleep(1100 * time.Millisecond)
	}

	// Every raw key, read from its Secret as a workload does.
	readKeys := func() map[string]string {
		e.t.Helper()
		secrets, err := e.kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range secrets.Items {
			if raw := string(s.Data[keywardenv1alpha1.SecretKeyField]); raw != "" {
				e.remember(raw)
				out[s.Name] = raw
			}
		}
		return out
	}
	raws := readKeys()
	var (
		mu       sync.Mutex
		held     []string              // keys that must verify throughout
		dead     = map[string]string{} // keys that must never verify, with their code
		checks   atomic.Int64
		failures []string
	)
	hold := func(raw string) {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(held, raw) {
			held = append(held, raw)
		}
	}
	for _, n := range slices.Concat(steady, rotating, holders) {
		hold(raws[n])
	}
	rotateAll := func(request string) {
		e.t.Helper()
		apply(rotatingManifest(request))
		e.eventually("the keys rotate ("+request+")", 90*time.Second, func() bool {
			var list keywardenv1alpha1.APIKeyList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return false
			}
			for _, k := range list.Items {
				if slices.Contains(rotating, k.Name) && (k.Status.Rotation == nil || k.Status.Rotation.Request != request || k.Status.Rotation.Next != nil) {
					return false
				}
			}
			return true
		})
		for n, raw := range readKeys() {
			if slices.Contains(rotating, n) {
				hold(raw)
			}
		}
	}
	// A rotation under the earlier release: both keys verify, the first
	// for its hour of grace.
	rotateAll("r1")
	// Revoked by its spec, and reported as leaked to a replica.
	for _, n := range revoked {
		e.kubectl("patch", "apikey", n, "-n", ns, "--type=merge", "-p", `{"spec":{"revoked":true}}`)
		dead[raws[n]] = "REVOKED"
	}
	for _, n := range reported {
		resp, err := http1.Post(old[0].URL+"/v1/keys/report", "application/json", strings.NewReader(`{"key":"`+raws[n]+`"}`))
		if err != nil {
			e.t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			e.t.Fatalf("report to the earlier release: %d", resp.StatusCode)
		}
		dead[raws[n]] = "REVOKED"
	}
	waitPhase("revoked and reported keys are Revoked", keywardenv1alpha1.PhaseRevoked, slices.Concat(revoked, reported)...)
	for _, n := range expiring {
		dead[raws[n]] = "EXPIRED"
	}
	waitPhase("the expiring keys expire", keywardenv1alpha1.PhaseExpired, expiring...)
	before := record(ctx, e, c, ns)

	stop := make(chan struct{})
	var clients sync.WaitGroup
	for range 2 {
		clients.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				keys := slices.Clone(held)
				refused := maps.Clone(dead)
				mu.Unlock()
				fail := func(f string) {
					mu.Lock()
					failures = append(failures, f)
					mu.Unlock()
				}
				for _, raw := range keys {
					m := svc.pick()
					got, err := verify(m, map[string]any{"key": raw, "namespace": ns})
					checks.Add(1)
					if err != nil || got["valid"] != true {
						fail(fmt.Sprintf("%s at %s: %v %v", raw[:8], m.URL, got["code"], err))
					}
				}
				for raw, code := range refused {
					m := svc.pick()
					got, err := verify(m, map[string]any{"key": raw, "namespace": ns})
					checks.Add(1)
					if err != nil || got["valid"] != false || got["code"] != code {
						fail(fmt.Sprintf("%s at %s: %v %v, want %s", raw[:8], m.URL, got["code"], err, code))
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	// This release's manifests: RBAC first (kubectl apply orders by
	// kind), then its Deployments.
	e.kubectl("apply", "-k", "config/rbac")
	// A pod that starts before the API server enforces this release's
	// policies is restarted by its Deployment; a process here is not: wait.
	mc, err := clientcmd.BuildConfigFromFlags("", e.managerKubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	manager, err := kubernetes.NewForConfig(mc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.eventually("this release's admission policies are in force", 30*time.Second, func() bool {
		_, err := manager.CoreV1().Secrets(harness.ManagerNamespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "keywarden-verifier-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: nil, corev1.TLSPrivateKeyKey: nil}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil || apierrors.IsAlreadyExists(err)
	})
	for range 2 {
		e.startController()
	}
	for range 2 {
		v := e.startVerifier()
		svc.add(v)
	}
	rotateAll("r2") // the earlier release's leader, or a new controller, rotates them
	for _, m := range old {
		svc.remove(m)
		m.Stop(10 * time.Second)
		time.Sleep(2 * time.Second)
	}
	if l := e.leader(); !slices.Contains(e.controllers, l) {
		e.t.Fatal("no controller of this release leads")
	}
	rotateAll("r3")
	// Each holder's key is given up (its clients stop using it) before it
	// is deleted, which frees its owner's place for the key refused first.
	holderKeys := map[string]bool{}
	for _, n := range holders {
		holderKeys[raws[n]] = true
	}
	mu.Lock()
	held = slices.DeleteFunc(held, func(raw string) bool { return holderKeys[raw] })
	mu.Unlock()
	time.Sleep(time.Second)
	for _, n := range holders {
		e.kubectl("delete", "apikey", n, "-n", ns, "--wait=false")
	}
	waitPhase("the key refused first is issued to each owner", keywardenv1alpha1.PhaseActive, names("waiting", owners, "-a")...)
	time.Sleep(2 * time.Second)
	got := phases()
	for _, n := range names("waiting", owners, "-b") {
		if got[n] != keywardenv1alpha1.PhaseRefused {
			e.t.Errorf("%s, refused after its owner's first waiting key: %s, want still Refused", n, got[n])
		}
	}
	for n, raw := range readKeys() {
		if strings.HasSuffix(n, "-a") {
			hold(raw)
		}
	}

	// A key whose lifetime is in days, which the earlier release cannot
	// read: found by the README's query and rewritten in hours before
	// going back, as it says.
	apply(keyManifest("in-days", "owner: days@example.com, role: reader, lifetime: 30d"))
	waitPhase("this release issues a key whose lifetime is in days", keywardenv1alpha1.PhaseActive, "in-days")
	inDays := regexp.MustCompile(`(?m)(ifetime|every|Every|race[Pp]eriod|expiryWarning): "?[0-9]+[dw]"?$`)
	if yaml := e.kubectl("get", "apikeys,apikeyclasses", "-A", "-o", "yaml"); len(inDays.FindAllString(yaml, -1)) != 1 {
		e.t.Fatalf("the README's query finds %q, want the one lifetime in days", inDays.FindAllString(yaml, -1))
	}
	e.kubectl("patch", "apikey", "in-days", "-n", ns, "--type=merge", "-p", `{"spec":{"lifetime":"720h"}}`)
	if yaml := e.kubectl("get", "apikeys,apikeyclasses", "-A", "-o", "yaml"); inDays.MatchString(yaml) {
		e.t.Fatalf("a duration in days is left before going back: %q", inDays.FindAllString(yaml, -1))
	}

	// Going back, as the README says it may be done: the earlier
	// release's manifests again (this release's CRDs stay), its pods
	// replacing these one by one. It verifies every key this release
	// issued or rotated, rotates, and issues; then forward once more.
	e.kubectl("apply", "-k", filepath.Join(prev, "src", "config", "rbac"))
	back := []*harness.Component{startPrevious(), startPrevious()}
	for _, m := range back {
		svc.add(m)
	}
	for _, v := range e.verifiers {
		svc.remove(v)
		v.Stop(10 * time.Second)
		time.Sleep(time.Second)
	}
	for _, m := range e.controllers {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	rotateAll("r4")
	apply(keyManifest("issued-back", "owner: back@example.com, role: reader"))
	waitPhase("the earlier release issues a key after going back", keywardenv1alpha1.PhaseActive, "issued-back")
	hold(readKeys()["issued-back"])
	e.kubectl("apply", "-k", "config/rbac")
	for range 2 {
		e.startController()
	}
	for range 2 {
		svc.add(e.startVerifier())
	}
	for _, m := range back {
		svc.remove(m)
		m.Stop(10 * time.Second)
		time.Sleep(time.Second)
	}
	rotateAll("r5")
	time.Sleep(time.Second)
	close(stop)
	clients.Wait()

	if len(failures) > 0 {
		e.t.Fatalf("%d of %d verifications through the change failed, the first: %s; the last: %s", len(failures), checks.Load(), failures[0], failures[len(failures)-1])
	}
	after := record(ctx, e, c, ns)
	for name, was := range before {
		now, ok := after[name]
		switch {
		case slices.Contains(holders, name), slices.Contains(expiring, name), slices.Contains(revoked, name), slices.Contains(reported, name):
		case !ok:
			e.t.Errorf("%s: no longer issued", name)
		case now.secretUID != was.secretUID:
			e.t.Errorf("%s: its Secret was replaced", name)
		case slices.Contains(rotating, name):
			var k keywardenv1alpha1.APIKey
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &k); err != nil {
				e.t.Fatal(err)
			}
			// r1 rotated the first key out, r2 to r5 the next four.
			if which, _ := k.Status.Holds(was.hash); which != keywardenv1alpha1.HoldsPrevious || len(k.Status.Rotation.Previous) != 5 {
				e.t.Errorf("%s: the key it held before the change is %v, with %d keys rotated out; want it rotated out, one of five", name, which, len(k.Status.Rotation.Previous))
			}
		case now.hash != was.hash:
			e.t.Errorf("%s: reissued (its key hash changed)", name)
		}
	}
	left := 0
	for n, phase := range phases() {
		if phase == keywardenv1alpha1.PhasePending || phase == "" {
			e.t.Errorf("%s is left %q", n, phase)
		}
		if phase == keywardenv1alpha1.PhaseActive {
			left++
		}
	}
	e.note("upgrade from one process: 2 managers of the release before the split, holding %d keys (active, tracking last use, rotating in grace, refused for a limit, revoked, reported, expired), replaced by 2 controllers and 2 verifiers under their own accounts, back to the earlier release and forward again; %d verifications through the changes, 0 failed, no ended key accepted; no key reissued, 5 rotations of 10 keys across them, each owner's first refused key issued first, a key issued after going back",
		len(before)+len(revoked)+len(reported)+len(expiring)+2*owners, checks.Load())
}

// issued is what a key holds: its hash and its Secret.
type issued struct{ hash, secretUID string }

// record reads the key and Secret of every issued key of the namespace.
func record(ctx context.Context, e *env, c client.Client, ns string) map[string]issued {
	e.t.Helper()
	var list keywardenv1alpha1.APIKeyList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]issued{}
	for _, k := range list.Items {
		if k.Status.SecretRef != nil && k.Status.Phase == keywardenv1alpha1.PhaseActive {
			out[k.Name] = issued{k.Status.KeyHash, k.Status.SecretRef.UID}
		}
	}
	return out
}
