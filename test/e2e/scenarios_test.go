//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/test/harness"
)

// quickstart: the samples become Active and verify with their owner, role
// and scopes; a revoked key is rejected within a second; a deleted key's
// Secret goes.
func quickstart(e *env) {
	e.kubectl("apply", "-k", "config/samples")
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "default", "--timeout=60s")
	if wide := e.kubectl("get", "apikey", "grafana-readonly", "-n", "default", "-o", "wide"); !strings.Contains(wide, "DESCRIPTION") ||
		!strings.Contains(wide, "Read-only dashboards for the on-call rota") || !strings.Contains(wide, "REVOKED") {
		e.t.Fatalf("kubectl get -o wide shows no description or revocation:\n%s", wide)
	}
	// The creation time, as the reference products' lists show it.
	created := e.kubectl("get", "apikey", "grafana-readonly", "-n", "default", "-o", "jsonpath={.metadata.creationTimestamp}")
	if list := e.kubectl("get", "apikeys", "-n", "default"); !strings.Contains(list, "CREATED") || created == "" || !strings.Contains(list, created) {
		e.t.Fatalf("kubectl get shows no creation time (%s):\n%s", created, list)
	}
	if described := e.kubectl("describe", "apikeyclass", "analytics"); !strings.Contains(described, "Read the audit log") {
		e.t.Fatalf("kubectl describe shows no scope descriptions:\n%s", described)
	}
	want := map[string]struct {
		secret, owner, role string
		scopes              any
	}{
		"platform-admin":   {"platform-admin-api-key", "platform-team@example.com", "admin", nil},
		"grafana-readonly": {"grafana-readonly", "observability@example.com", "readonly", []any{"audit-logs:read", "schedules:read"}},
		"wordpress-purge":  {"wordpress-purge", "contractor@agency.example", "standard", []any{"cache:purge"}},
		"bolt-schedules":   {"bolt-schedules", "analytics@example.com", "readonly", []any{"audit-logs:read", "schedules:read"}},
	}
	raws := map[string]string{}
	for name, w := range want {
		raw := e.secretKey("default", w.secret)
		raws[name] = raw
		for _, m := range e.verifiers {
			got, err := verify(m, map[string]any{"key": raw, "namespace": "default"})
			if err != nil {
				e.t.Fatal(err)
			}
			if got["valid"] != true || got["owner"] != w.owner || got["role"] != w.role || fmt.Sprint(got["scopes"]) != fmt.Sprint(w.scopes) {
				e.t.Fatalf("%s verifies as %v", name, got)
			}
		}
	}

	e.kubectl("patch", "apikey", "-n", "default", "wordpress-purge", "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	start := time.Now()
	e.eventually("the revoked key is rejected", time.Second, func() bool {
		got, err := verify(e.verifiers[0], map[string]any{"key": raws["wordpress-purge"], "namespace": "default"})
		return err == nil && got["code"] == "REVOKED"
	})
	revokedAfter := time.Since(start)
	req, _ := http.NewRequest("GET", e.verifiers[1].URL+"/v1/authz?namespace=default", nil)
	req.Header.Set("Authorization", "Bearer "+raws["wordpress-purge"])
	e.eventually("forward auth answers 401 for the revoked key", time.Second, func() bool {
		resp, err := http1.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})

	e.kubectl("delete", "apikey", "-n", "default", "platform-admin", "--wait=true", "--timeout=30s")
	if _, err := e.cluster.Kubectl(context.Background(), "get", "secret", "-n", "default", "platform-admin-api-key"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		e.t.Fatalf("the deleted key's Secret is still there: %v", err)
	}
	// Over TLS only: a client that does not trust the published CA, or
	// that speaks plain HTTP, gets no answer about a key.
	body := strings.NewReader(`{"key":"` + raws["grafana-readonly"] + `","namespace":"default"}`)
	untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: verifierName}}}
	if _, err := untrusting.Post(e.verifiers[0].URL+"/v1/keys/verify", "application/json", body); err == nil ||
		!strings.Contains(err.Error(), "certificate signed by unknown authority") {
		e.t.Fatalf("a client that does not trust the verifier's CA: %v", err)
	}
	plain := strings.Replace(e.verifiers[0].URL, "https://", "http://", 1)
	if code, answer := status(plain + "/readyz"); code != http.StatusBadRequest || strings.Contains(answer, "valid") {
		e.t.Fatalf("plain HTTP to the verifier: %d %q", code, answer)
	}
	e.note("quickstart: %d samples Ready and verified on %d verifiers; revocation seen in %s; deletion removed the Secret",
		len(want), len(e.verifiers), revokedAfter)
}

// badInput: every invalid manifest is refused by kubectl apply with a
// message naming the field, and nothing is left behind.
func badInput(e *env) {
	e.kubectl("create", "namespace", "bad-input")
	good := map[string]string{"displayName": "d", "owner": "o@example.com", "role": "readonly"}
	manifest := func(name string, spec map[string]string, extra string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata:\n  name: %q\n  namespace: bad-input\nspec:\n", name)
		for k, v := range good {
			if s, ok := spec[k]; ok {
				v = s
			}
			if v != "-" {
				fmt.Fprintf(&b, "  %s: %q\n", k, v)
			}
		}
		for k, v := range spec {
			if _, ok := good[k]; !ok {
				fmt.Fprintf(&b, "  %s: %s\n", k, v)
			}
		}
		b.WriteString(extra)
		return b.String()
	}
	cases := []struct {
		name, yaml, field string
	}{
		{"no-display-name", manifest("a", map[string]string{"displayName": "-"}, ""), "spec.displayName"},
		{"empty-display-name", manifest("b", map[string]string{"displayName": ""}, ""), "spec.displayName"},
		{"long-display-name", manifest("c", map[string]string{"displayName": strings.Repeat("x", 51)}, ""), "spec.displayName"},
		{"no-owner", manifest("d", map[string]string{"owner": "-"}, ""), "spec.owner"},
		{"long-owner", manifest("e", map[string]string{"owner": strings.Repeat("o", 254)}, ""), "spec.owner"},
		{"no-role", manifest("f", map[string]string{"role": "-"}, ""), "spec.role"},
		{"bad-role", manifest("g", map[string]string{"role": "Read Only"}, ""), "spec.role"},
		{"bad-scope", manifest("h", map[string]string{"scopes": `["Audit Logs"]`}, ""), "spec.scopes[0]"},
		{"duplicate-scope", manifest("i", map[string]string{"scopes": `["a:read", "a:read"]`}, ""), "spec.scopes[1]"},
		{"both-expiries", manifest("j", map[string]string{"lifetime": "720h", "expiresAt": "2030-01-01T00:00:00Z"}, ""), "spec.lifetime"},
		{"zero-lifetime", manifest("k", map[string]string{"lifetime": "0s"}, ""), "spec.lifetime"},
		{"bad-lifetime", manifest("l", map[string]string{"lifetime": "30 days"}, ""), "spec.lifetime"},
		{"bad-expiry", manifest("m", map[string]string{"expiresAt": "tomorrow"}, ""), "spec.expiresAt"},
		{"bad-secret-name", manifest("n", map[string]string{"secretName": "My_Secret"}, ""), "spec.secretName"},
		{"argocd-label", manifest("o", map[string]string{"secretTemplate": `{"labels": {"app.kubernetes.io/instance": "x"}}`}, ""), "spec.secretTemplate.labels"},
		{"argocd-annotation", manifest("p", map[string]string{"secretTemplate": `{"annotations": {"argocd.argoproj.io/sync-options": "Prune=false"}}`}, ""), "spec.secretTemplate.annotations"},
		{"unknown-field", manifest("q", map[string]string{"rotate": "true"}, ""), "spec.rotate"},
		{"long-name", manifest(strings.Repeat("n", 64), nil, ""), "metadata.name"},
	}
	refused := 0
	for _, c := range cases {
		out, err := e.kubectlIn(c.yaml, "apply", "-f", "-")
		if err == nil {
			e.t.Errorf("%s: accepted: %s", c.name, out)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			e.t.Errorf("%s: the error does not name %s: %v", c.name, c.field, err)
			continue
		}
		refused++
	}
	if _, err := e.cluster.Kubectl(context.Background(), "patch", "apikey", "-n", "default", "wordpress-purge", "--type=merge", "-p", `{"spec":{"revoked":false}}`); err == nil || !strings.Contains(err.Error(), "spec.revoked: Invalid value: revocation is irreversible") {
		e.t.Errorf("un-revoking: %v", err)
	} else {
		refused++
	}
	left := strings.TrimSpace(e.kubectl("get", "apikeys,secrets", "-n", "bad-input", "-o", "name"))
	if left != "" {
		e.t.Errorf("left behind: %s", left)
	}
	e.note("bad input: %d of %d invalid changes refused by kubectl with the field named; nothing left behind", refused, len(cases)+1)
}

// leader returns the controller that holds the lease, from its metrics.
func (e *env) leader() *harness.Component {
	e.t.Helper()
	var found *harness.Component
	e.eventually("a leader is elected", 30*time.Second, func() bool {
		found = e.leaderNow()
		return found != nil
	})
	return found
}

var leading = regexp.MustCompile(`(?m)^leader_election_master_status\{name="keywarden.dev"\} 1$`)

// leaderNow returns the controller whose metrics say it leads, or nil.
func (e *env) leaderNow() *harness.Component {
	for _, m := range e.controllers {
		if text, err := metricsText(m); err == nil && leading.MatchString(text) {
			return m
		}
	}
	return nil
}

// createKeys applies n APIKeys named prefix-0000... in the namespace.
func (e *env) createKeys(ns, prefix string, n int) {
	e.t.Helper()
	if _, err := e.kubectlIn(keysManifest(ns, prefix, n), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
}

// keysManifest declares n APIKeys of distinct owners.
func keysManifest(ns, prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata:\n  name: %s-%04d\n  namespace: %s\nspec:\n  displayName: %s %d\n  owner: owner-%d@example.com\n  role: standard\n",
			prefix, i, ns, prefix, i, i)
	}
	return b.String()
}

// failover: the leader controller and a verifier are killed at once; the
// other controller takes over and issues new keys, and verification on the
// other verifier never fails meanwhile.
func failover(e *env) {
	raw := e.secretKey("default", "grafana-readonly")
	old := e.leader()
	var survivor *harness.Component
	for _, m := range e.controllers {
		if m != old {
			survivor = m
		}
	}
	doomed, serving := e.verifiers[0], e.verifiers[1]
	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			got, err := verify(serving, map[string]any{"key": raw, "namespace": "default"})
			if err == nil && got["valid"] == true {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}
	})

	old.Kill()
	doomed.Kill()
	killedAt := time.Now()
	e.kubectl("create", "namespace", "failover")
	e.createKeys("failover", "after", 5)
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "failover", "--timeout=60s")
	tookOver := time.Since(killedAt)
	stop()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		e.t.Fatalf("verifications during the failover: %d valid, %d failed", ok.Load(), failed.Load())
	}
	if e.leader() != survivor {
		e.t.Fatal("the survivor is not the leader")
	}
	e.controllers, e.verifiers = []*harness.Component{survivor}, []*harness.Component{serving}
	e.startController()
	restarted := e.startVerifier()
	for _, m := range e.verifiers {
		got, err := verify(m, map[string]any{"key": e.secretKey("failover", "after-0000"), "namespace": "failover"})
		if err != nil || got["valid"] != true {
			e.t.Fatalf("a verifier (restarted: %t) does not verify a key issued in the failover: %v %v", m == restarted, got, err)
		}
	}
	e.note("failover: leader controller and a verifier killed; the other controller issued 5 new keys within %s; %d verifications on the other verifier meanwhile, 0 failed",
		tookOver.Round(100*time.Millisecond), ok.Load())
}

// metricsText reads a component's metrics endpoint.
func metricsText(m *harness.Component) (string, error) {
	resp, err := http1.Get(m.MetricsURL + "/metrics")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric reads one unlabelled metric of a component.
func metric(m *harness.Component, name string) (float64, error) {
	text, err := metricsText(m)
	if err != nil {
		return 0, err
	}
	match := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`).FindStringSubmatch(text)
	if match == nil {
		return 0, fmt.Errorf("no metric %s", name)
	}
	var v float64
	_, err = fmt.Sscan(match[1], &v)
	return v, err
}

// apiServerOutage: kube-apiserver stops for 20 seconds while the verifiers
// serve; they keep answering from their caches, no component exits, keys
// created after the restart are issued, and goroutines stay bounded.
func apiServerOutage(e *env) {
	raw := e.secretKey("default", "grafana-readonly")
	// A third replica that allows its index 5 s of staleness: it refuses
	// to answer during the outage, and answers again after it.
	strict := e.startVerifier("--verifier-max-staleness", "5s")
	e.verifiers = e.verifiers[:len(e.verifiers)-1]
	defer strict.Stop(10 * time.Second)
	components := append(slices.Clone(e.controllers), e.verifiers...)
	before := map[*harness.Component]float64{}
	for _, m := range components {
		n, err := metric(m, "go_goroutines")
		if err != nil {
			e.t.Fatal(err)
		}
		before[m] = n
	}
	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for i, m := range e.verifiers {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := verify(m, map[string]any{"key": raw, "namespace": "default"})
				if err == nil && got["valid"] == true {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("verifier %d at %s: %v %v", i, time.Now().Format(time.RFC3339Nano), got, err))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	down := time.Now()
	if err := e.cluster.StopAPIServer(); err != nil {
		e.t.Fatal(err)
	}
	var refusedAfter time.Duration
	var staleness float64
	var refusal string
	for time.Since(down) < 20*time.Second {
		if refusedAfter == 0 {
			if code, body := status(strict.URL + "/readyz"); code == http.StatusServiceUnavailable {
				refusedAfter = time.Since(down)
				_, err := verify(strict, map[string]any{"key": raw, "namespace": "default"})
				refusal = fmt.Sprint(err)
				staleness, _ = metric(strict, "keywarden_verifier_index_staleness_seconds")
				if !strings.Contains(body, "not been known current") {
					e.t.Errorf("the strict replica's /readyz says %q", body)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	duringOutage := ok.Load()
	restart := time.Now()
	if err := e.cluster.StartAPIServer(); err != nil {
		e.t.Fatal(err)
	}
	restarted := time.Since(restart)
	back := time.Now()
	e.kubectl("create", "namespace", "outage")
	e.createKeys("outage", "after", 5)
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "outage", "--timeout=150s")
	recovered := time.Since(back)
	// Issued once the controller's informers list again, which they do
	// within half a second of the API server's return, not after the
	// reflector's backoff (20 to 60 s after an outage this long); and
	// verified once each verifier's index has them.
	if recovered > 10*time.Second {
		e.t.Errorf("keys created after the API server's return were Ready %s after it, want within seconds", recovered.Round(100*time.Millisecond))
	}
	for i := range 5 {
		raw := e.secretKey("outage", fmt.Sprintf("after-%04d", i))
		for _, m := range e.verifiers {
			e.eventually("a key issued after the outage verifies on every verifier", 10*time.Second, func() bool {
				got, err := verify(m, map[string]any{"key": raw, "namespace": "outage"})
				return err == nil && got["valid"] == true
			})
		}
	}
	verified := time.Since(back)
	stop()
	wg.Wait()
	if refusedAfter == 0 {
		e.t.Fatal("the replica with --verifier-max-staleness=5s kept answering through 20 s of outage")
	}
	if !strings.Contains(refusal, "status 503") || staleness <= 5 {
		e.t.Fatalf("the strict replica, once its /readyz failed: verification %s; staleness metric %v", refusal, staleness)
	}
	e.eventually("the strict replica answers again after the outage", 60*time.Second, func() bool {
		got, err := verify(strict, map[string]any{"key": raw, "namespace": "default"})
		return err == nil && got["valid"] == true
	})
	if s, err := metric(strict, "keywarden_verifier_index_staleness_seconds"); err != nil || s != 0 {
		e.t.Fatalf("the strict replica's staleness after the outage: %v %v", s, err)
	}
	if failed.Load() != 0 || duringOutage == 0 {
		e.t.Fatalf("verifications: %d valid (%d during the outage), %d failed; first failure: %v", ok.Load(), duringOutage, failed.Load(), firstFailure.Load())
	}
	for i, m := range components {
		select {
		case <-m.Exited():
			e.t.Fatalf("component %d (%s) exited: %v", i, m.Cmd.Args[1], m.Err())
		default:
		}
		// A controller that lost its lease in the outage builds its
		// manager again, metrics server included: ask until it answers.
		var after float64
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if after, err = metric(m, "go_goroutines"); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			e.t.Fatal(err)
		}
		if after > 2*before[m]+50 {
			e.t.Errorf("component %d (%s): %v goroutines after the outage, %v before", i, m.Cmd.Args[1], after, before[m])
		}
	}
	e.note("API server outage: 20 s down (and %s to start again); %d verifications answered from the caches meanwhile, 0 failed; %d controllers and verifiers still running; 5 keys created after the restart issued within %s of its return and verified on every verifier within %s; a replica allowing 5 s of staleness answered 503 from %s into the outage (staleness %.0f s then) and valid again after it",
		restarted.Round(100*time.Millisecond), duringOutage, len(components), recovered.Round(100*time.Millisecond), verified.Round(100*time.Millisecond), refusedAfter.Round(100*time.Millisecond), staleness)
}

// crashDuringIssuance: 500 keys are created while the leader is killed three
// times at random moments; in the end every key is Active with exactly one
// Secret holding the key its status hashes. Watched by APIKey all along:
// once a key's hash is recorded, the Secret holding it is never replaced
// (another UID under the same hash), and the key never changes, not even
// through a reissue that says so (keySerial, KeyReissued): killing the
// leader is no reason to replace a key.
func crashDuringIssuance(e *env) {
	const n = 500
	e.kubectl("create", "namespace", "mass")
	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	type held struct {
		hash, secretUID string
		serial          int64
	}
	recorded := map[string]held{} // APIKey -> what its status last recorded
	var replaced []string
	var mu sync.Mutex
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	observe := func() {
		secrets, err := e.kube.CoreV1().Secrets("mass").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=keywarden"})
		if err == nil {
			for _, s := range secrets.Items {
				e.remember(string(s.Data["key"]))
			}
		}
		var list keywardenv1alpha1.APIKeyList
		if err := c.List(ctx, &list, client.InNamespace("mass")); err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range list.Items {
			st := k.Status
			if st.KeyHash == "" || st.SecretRef == nil {
				continue
			}
			now := held{st.KeyHash, st.SecretRef.UID, st.KeySerial}
			before, seen := recorded[k.Name]
			recorded[k.Name] = now
			switch {
			case !seen || before == now:
			case before.hash == now.hash:
				replaced = append(replaced, fmt.Sprintf("%s: Secret %s replaced by %s under the same key", k.Name, before.secretUID, now.secretUID))
			case now.serial <= before.serial:
				replaced = append(replaced, fmt.Sprintf("%s: key replaced with no reissue recorded", k.Name))
			default:
				replaced = append(replaced, fmt.Sprintf("%s: reissued (serial %d to %d)", k.Name, before.serial, now.serial))
			}
		}
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			observe()
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The keys are issued as fast as kubectl creates them, so the leader
	// is killed while they are being created.
	var (
		created   sync.WaitGroup
		createErr error
	)
	created.Go(func() { _, createErr = e.kubectlIn(keysManifest("mass", "k", n), "apply", "-f", "-") })
	kills := 0
	var issuedAtKills []int
	for kills < 3 {
		time.Sleep(time.Duration(300+rand.IntN(1500)) * time.Millisecond)
		l := e.leader()
		issuedAtKills = append(issuedAtKills, strings.Count(e.kubectl("get", "apikeys", "-n", "mass", "-o", "jsonpath={.items[*].status.keyHash}"), "sha256:"))
		e.replace(l)
		kills++
	}
	created.Wait()
	if createErr != nil {
		e.t.Fatal(createErr)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "mass", "--timeout=180s")
	stop()
	wg.Wait()
	observe()

	apikeys := map[string]string{} // secret name -> hash in status
	out := e.kubectl("get", "apikeys", "-n", "mass", "-o", `jsonpath={range .items[*]}{.status.secretRef.name} {.status.keyHash} {.status.phase}{"\n"}{end}`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "Active" {
			e.t.Fatalf("not Active: %q", line)
		}
		apikeys[f[0]] = f[1]
	}
	secrets, err := e.kube.CoreV1().Secrets("mass").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range secrets.Items {
		hash, ok := apikeys[s.Name]
		switch {
		case !ok:
			e.t.Errorf("orphaned Secret %s", s.Name)
		case keys.Hash(string(s.Data["key"])) != hash:
			e.t.Errorf("Secret %s does not hold the key its APIKey records", s.Name)
		}
	}
	if len(apikeys) != n || len(secrets.Items) != n {
		e.t.Fatalf("%d APIKeys Active with %d Secrets, want %d of each", len(apikeys), len(secrets.Items), n)
	}
	if len(recorded) != n {
		e.t.Fatalf("%d APIKeys seen with a recorded key, want %d", len(recorded), n)
	}
	if len(replaced) != 0 {
		e.t.Fatalf("keys replaced after their hash was recorded: %v", replaced)
	}
	if issuedAtKills[0] >= n {
		e.t.Fatalf("the first kill came after issuance was over: %v", issuedAtKills)
	}
	e.note("crash during mass issuance: %d keys issued, %d kills of the leader survived (with %v keys issued), %d Secrets each with the key its status hashes, 0 orphaned; watched by APIKey, 0 keys or Secrets replaced once recorded",
		n, kills, issuedAtKills, len(secrets.Items))
	rotateUnderKills(e, c, n)
}

// replace kills the controller and starts another in its place.
func (e *env) replace(m *harness.Component) {
	for i, o := range e.controllers {
		if o == m {
			m.Kill()
			e.controllers = append(e.controllers[:i], e.controllers[i+1:]...)
			break
		}
	}
	e.startController()
}

// rotateUnderKills asks every key of the crash scenario to rotate at once
// and kills the leader twice meanwhile. Watched throughout: every Secret
// holds a key that verifies. (Secrets are listed before APIKeys, so status
// may be ahead of the Secret: a Secret read with the key a rotation has
// since replaced holds a previous key, which verifies in its grace.) At
// the end each key rotated exactly once, from the key it had to the key
// its Secret holds, and the key it had is its one previous key.
func rotateUnderKills(e *env, c client.Client, n int) {
	before := map[string]string{}
	var list keywardenv1alpha1.APIKeyList
	if err := c.List(context.Background(), &list, client.InNamespace("mass")); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range list.Items {
		before[k.Name] = k.Status.KeyHash
	}
	if len(before) != n {
		e.t.Fatalf("%d keys before the rotation, want %d", len(before), n)
	}
	var (
		mu         sync.Mutex
		violations []string
		samples    int
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			secrets, err := e.kube.CoreV1().Secrets("mass").List(ctx, metav1.ListOptions{})
			var keysNow keywardenv1alpha1.APIKeyList
			if err == nil {
				err = c.List(ctx, &keysNow, client.InNamespace("mass"))
			}
			if err != nil {
				continue
			}
			held := map[string]string{}
			for _, s := range secrets.Items {
				e.remember(string(s.Data["key"]))
				held[s.Name] = keys.Hash(string(s.Data["key"]))
			}
			mu.Lock()
			samples++
			for _, k := range keysNow.Items {
				h, ok := held[k.Name]
				if ok && !verifiesNow(&k.Status, h) {
					violations = append(violations, k.Name+": its Secret holds a key that its status does not make valid")
				}
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	})
	var requested sync.WaitGroup
	var requestErr error
	requested.Go(func() {
		_, requestErr = e.kubectlIn(strings.ReplaceAll(keysManifest("mass", "k", n), "  role: standard\n", "  role: standard\n  rotation:\n    request: r1\n"), "apply", "-f", "-")
	})
	kills := 0
	for kills < 2 {
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		e.replace(e.leader())
		kills++
	}
	requested.Wait()
	if requestErr != nil {
		e.t.Fatal(requestErr)
	}
	var pending []string
	e.eventually("every key rotated", 3*time.Minute, func() bool {
		var now keywardenv1alpha1.APIKeyList
		if err := c.List(context.Background(), &now, client.InNamespace("mass")); err != nil {
			return false
		}
		pending = pending[:0]
		for _, k := range now.Items {
			if r := k.Status.Rotation; r == nil || r.Request != "r1" || r.Next != nil || len(r.Previous) == 0 || k.Status.Phase != keywardenv1alpha1.PhaseActive {
				pending = append(pending, k.Name)
			}
		}
		return len(pending) == 0
	})
	stop()
	wg.Wait()
	if len(violations) > 0 {
		e.t.Fatalf("%d violations in %d samples: %v", len(violations), samples, violations[:min(len(violations), 10)])
	}
	if err := c.List(context.Background(), &list, client.InNamespace("mass")); err != nil {
		e.t.Fatal(err)
	}
	secrets, err := e.kube.CoreV1().Secrets("mass").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	held := map[string]string{}
	for _, s := range secrets.Items {
		held[s.Name] = keys.Hash(string(s.Data["key"]))
	}
	for _, k := range list.Items {
		st := k.Status
		switch {
		case len(st.Rotation.Previous) != 1:
			e.t.Errorf("%s rotated %d times, want once", k.Name, len(st.Rotation.Previous))
		case st.Rotation.Previous[0].KeyHash != before[k.Name]:
			e.t.Errorf("%s: its previous key is not the key it had", k.Name)
		case held[k.Name] != st.KeyHash:
			e.t.Errorf("%s: its Secret does not hold its current key", k.Name)
		case st.KeyHash == before[k.Name]:
			e.t.Errorf("%s: not rotated", k.Name)
		}
	}
	e.note("rotation under kills: %d keys asked to rotate at once, %d kills of the leader survived; in %d samples every Secret held a key its status made valid; each key rotated once, its previous key the one it had",
		n, kills, samples)
}

// noSecretInTheOpen: none of the raw keys seen in Secrets appears in the
// components' logs, in Events, in the APIKeys or in the metrics.
func noSecretInTheOpen(e *env) {
	places := map[string]string{
		"APIKeys":                 e.kubectl("get", "apikeys", "-A", "-o", "yaml"),
		"core/v1 Events":          e.kubectl("get", "events.v1.", "-A", "-o", "yaml"),
		"events.k8s.io/v1 Events": e.kubectl("get", "events.v1.events.k8s.io", "-A", "-o", "yaml"),
	}
	for _, log := range e.logs {
		b, err := os.ReadFile(log)
		if err != nil {
			e.t.Fatal(err)
		}
		places[fmt.Sprintf("log %s", filepath.Base(log))] = string(b)
	}
	for i, m := range append(slices.Clone(e.controllers), e.verifiers...) {
		text, err := metricsText(m)
		if err != nil {
			e.t.Fatal(err)
		}
		places[fmt.Sprintf("metrics of %s %d", m.Cmd.Args[1], i)] = text
	}
	e.mu.Lock()
	places["kubectl-keywarden's output and the console's pages, but the keys they show once"] = e.pluginOutput.String()
	defer e.mu.Unlock()
	leaks, bytes := 0, 0
	for place, text := range places {
		bytes += len(text)
		for raw := range e.rawKeys {
			if strings.Contains(text, raw) {
				leaks++
				e.t.Errorf("a raw key (%s...) appears in %s", raw[:8], place)
			}
		}
	}
	if len(e.rawKeys) < 500 {
		e.t.Fatalf("only %d raw keys seen; the check needs the keys of the earlier scenarios", len(e.rawKeys))
	}
	e.note("no secret in the open: %d raw keys searched for in %d places (%d KiB of logs, events, APIKeys, metrics, plugin output and console pages): %d leaks found",
		len(e.rawKeys), len(places), bytes>>10, leaks)
}

// namespacedInstall: config/namespaced replaces the cluster-wide rights
// of the controller and the verifier with Roles in team-a and team-b, and
// both run with --namespaces team-a,team-b, each as its ServiceAccount.
// Keys there are issued and verify; a key of team-c is never touched; and
// neither component met a refusal (a list or watch of anything namespaced
// across the cluster would be refused, and logged). The other components
// are stopped first: two installs must not share namespaces.
func namespacedInstall(e *env) {
	for _, m := range append(e.controllers, e.verifiers...) {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		e.kubectl("create", "namespace", ns)
	}
	e.kubectl("apply", "-k", "config/namespaced")
	e.kubectl("delete", "clusterrolebinding", "keywarden-manager", "keywarden-verifier")
	e.startController("--namespaces=team-a,team-b")
	controllerLog := e.logs[len(e.logs)-1]
	m := e.startVerifier("--namespaces=team-a,team-b")
	verifierLog := e.logs[len(e.logs)-1]
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		e.createKeys(ns, "key", 3)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "team-a", "--timeout=60s")
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", "team-b", "--timeout=60s")
	got, err := verify(m, map[string]any{"key": e.secretKey("team-a", "key-0000"), "namespace": "team-a"})
	if err != nil || got["valid"] != true {
		e.t.Fatalf("a key of team-a: %v %v", got, err)
	}
	time.Sleep(3 * time.Second)
	if out := e.kubectl("get", "apikeys", "-n", "team-c", "-o", "jsonpath={.items[*].status.phase}"); strings.TrimSpace(out) != "" {
		e.t.Fatalf("keys of team-c, which the controller does not watch, have phases %q", out)
	}
	if secrets := e.kubectl("get", "secrets", "-n", "team-c", "-l", "app.kubernetes.io/managed-by=keywarden", "-o", "name"); strings.TrimSpace(secrets) != "" {
		e.t.Fatalf("Secrets in team-c: %s", secrets)
	}
	for _, log := range []string{controllerLog, verifierLog} {
		b, err := os.ReadFile(log)
		if err != nil {
			e.t.Fatal(err)
		}
		if n := strings.Count(string(b), "forbidden"); n > 0 {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "forbidden") {
					e.t.Fatalf("%s met %d refusals, the first: %.400s", filepath.Base(log), n, line)
				}
			}
		}
	}
	e.note("namespaced install: with Roles in team-a and team-b only, a controller and a verifier with --namespaces team-a,team-b issued and verified their 6 keys, left team-c's 3 alone, and met no refusal")
}

// verifiesNow reports whether the status makes the key of that hash valid
// now: the current key, a rotation's next key, or a previous key in its
// grace.
func verifiesNow(st *keywardenv1alpha1.APIKeyStatus, hash string) bool {
	if hash == st.KeyHash {
		return true
	}
	r := st.Rotation
	if r == nil {
		return false
	}
	if r.Next != nil && r.Next.KeyHash == hash {
		return true
	}
	for _, p := range r.Previous {
		if p.KeyHash == hash && time.Now().Before(p.ValidUntil.Time) {
			return true
		}
	}
	return false
}
