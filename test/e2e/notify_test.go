//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"keywarden.dev/keywarden/internal/notify"
	"keywarden.dev/keywarden/test/harness"
)

// notifyClass names a receiver (the proxy below, in front of the
// receiver example of the docs) and warns an hour before expiry.
const notifyClass = `apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata:
  name: notify
spec:
  expiryWarning: 1h
  notifications:
    url: %s/hooks/keywarden
`

func notifyKey(name, lifetime string) string {
	return fmt.Sprintf(`apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata:
  name: %s
  namespace: notify
spec:
  displayName: Notified %s
  owner: alice@example.com
  role: standard
  className: notify
  lifetime: %s
`, name, name, lifetime)
}

// holdingProxy forwards notifications to the receiver, or holds them
// unanswered (a receiver that hangs), remembering the ids it held.
type holdingProxy struct {
	target  string
	mu      sync.Mutex
	holding bool
	held    []string
	release chan struct{}
}

func (p *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	holding, release := p.holding, p.release
	if holding {
		var e notify.Event
		_ = json.Unmarshal(body, &e)
		p.held = append(p.held, e.ID)
	}
	p.mu.Unlock()
	if holding {
		<-release
		http.Error(w, "held", http.StatusServiceUnavailable)
		return
	}
	req, _ := http.NewRequest(http.MethodPost, p.target+r.URL.Path, bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http1.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// notifications: a class names a receiver (the example of
// docs/notifications.md, built and run here) and the keys' lives reach
// it: each transition once by id, signed with the shared secret the
// plugin created; a receiver down for 30 s gets everything afterwards; a
// leader killed while a notification is on its way leaves it to the next
// leader, which sends it with the same id; a receiver given the wrong
// secret accepts nothing until given the right one.
func notifications(e *env) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		e.t.Fatal(err)
	}
	bin := filepath.Join(e.dir, "notify-receiver")
	build := exec.Command("go", "build", "-o", bin, "./examples/notify-receiver")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		e.t.Fatalf("building the receiver example: %v\n%s", err, out)
	}
	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	secretFile, seenFile := filepath.Join(e.dir, "receiver-secret"), filepath.Join(e.dir, "receiver-seen")
	var receiverLogs []string
	startReceiver := func() *exec.Cmd {
		e.t.Helper()
		out := e.logFile("receiver")
		receiverLogs = append(receiverLogs, out.Name())
		cmd := exec.Command(bin, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-secret-file", secretFile, "-seen-file", seenFile)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			e.t.Fatal(err)
		}
		e.eventually("the receiver listens", 10*time.Second, func() bool {
			resp, err := http1.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err == nil {
				_ = resp.Body.Close()
			}
			return err == nil
		})
		return cmd
	}
	stopReceiver := func(cmd *exec.Cmd) { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	type taken struct{ ID, Type, Subject, Reason string }
	accepted := func() []taken {
		var out []taken
		for _, name := range receiverLogs {
			b, _ := os.ReadFile(name)
			for s := bufio.NewScanner(bytes.NewReader(b)); s.Scan(); {
				var line struct{ Accepted, Type, Subject, Reason string }
				if json.Unmarshal(s.Bytes(), &line) == nil && line.Accepted != "" {
					out = append(out, taken{line.Accepted, line.Type, line.Subject, line.Reason})
				}
			}
		}
		return out
	}
	typesOf := func(key string) []string {
		var out []string
		for _, t := range accepted() {
			if t.Subject == "notify/"+key {
				out = append(out, t.Type)
			}
		}
		slices.Sort(out)
		return out
	}
	waitTypes := func(what, key string, timeout time.Duration, want ...string) {
		e.t.Helper()
		slices.Sort(want)
		e.eventually(what, timeout, func() bool { return slices.Equal(typesOf(key), want) })
	}
	receiverSaid := func(text string) bool {
		for _, name := range receiverLogs {
			if b, _ := os.ReadFile(name); bytes.Contains(b, []byte(text)) {
				return true
			}
		}
		return false
	}

	proxy := &holdingProxy{target: fmt.Sprintf("http://127.0.0.1:%d", port), release: make(chan struct{})}
	front := httptest.NewServer(proxy)
	defer front.Close()
	defer func() {
		proxy.mu.Lock()
		if proxy.holding {
			close(proxy.release)
		}
		proxy.mu.Unlock()
	}()

	e.kubectl("create", "namespace", "notify")
	if _, err := e.kubectlIn(fmt.Sprintf(notifyClass, front.URL), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	secret := strings.TrimSpace(e.pluginOK("shared-secret", "rotate", "notify").stdout)
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	receiver := startReceiver()
	defer func() { stopReceiver(receiver) }()

	// A life: created, warned (20 s after its issue, an hour before its
	// expiry), rotated, then, while the receiver is down, revoked; and a
	// short-lived key, created and expired.
	if _, err := e.kubectlIn(notifyKey("life", "1h0m20s")+"---\n"+notifyKey("short", "40s"), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	waitTypes("the receiver is told of the keys' creation", "life", 60*time.Second, notify.TypeCreated)
	e.secretKey("notify", "life")
	e.kubectl("patch", "apikey", "-n", "notify", "life", "--type=merge", "-p", `{"spec":{"rotation":{"request":"e2e-1"}}}`)
	waitTypes("the receiver is told of the warning and the rotation", "life", 60*time.Second, notify.TypeCreated, notify.TypeExpiring, notify.TypeRotated)

	stopReceiver(receiver)
	down := time.Now()
	e.kubectl("patch", "apikey", "-n", "notify", "life", "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Revoked", "apikey", "-n", "notify", "life", "--timeout=30s")
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Expired", "apikey", "-n", "notify", "short", "--timeout=60s")
	time.Sleep(30*time.Second - time.Since(down))
	receiver = startReceiver()
	waitTypes("after 30 s down, the receiver gets the revocation", "life", 90*time.Second,
		notify.TypeCreated, notify.TypeExpiring, notify.TypeRotated, notify.TypeRevoked)
	waitTypes("after 30 s down, the receiver gets the expiry", "short", 90*time.Second, notify.TypeCreated, notify.TypeExpired)
	for _, t := range accepted() {
		if t.Type == notify.TypeRevoked && t.Reason != notify.ReasonSpec {
			e.t.Fatalf("the revocation says why as %q", t.Reason)
		}
	}

	// A leader killed while its notification hangs at the receiver: the
	// next leader sends it, with the same id.
	proxy.mu.Lock()
	proxy.holding = true
	proxy.mu.Unlock()
	if _, err := e.kubectlIn(notifyKey("crash", "24h"), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	var heldID string
	e.eventually("a notification is on its way", 60*time.Second, func() bool {
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		if len(proxy.held) > 0 {
			heldID = proxy.held[0]
		}
		return heldID != ""
	})
	old := e.leader()
	old.Kill()
	var survivors []*harness.Component
	for _, m := range e.controllers {
		if m != old {
			survivors = append(survivors, m)
		}
	}
	e.controllers = survivors
	proxy.mu.Lock()
	proxy.holding = false
	close(proxy.release)
	proxy.mu.Unlock()
	e.startController()
	e.eventually("the next leader sends the notification with the same id", 90*time.Second, func() bool {
		return slices.ContainsFunc(accepted(), func(t taken) bool { return t.ID == heldID })
	})

	// A receiver with the wrong secret accepts nothing, and gets it all
	// once given the right one.
	wrong, err := notify.NewSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(wrong+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kubectlIn(notifyKey("wrong", "24h"), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.eventually("the receiver rejects a notification signed with another secret", 60*time.Second, func() bool {
		return receiverSaid("rejected a notification: bad signature")
	})
	if got := typesOf("wrong"); len(got) != 0 {
		e.t.Fatalf("a receiver with the wrong secret accepted %v", got)
	}
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	waitTypes("given the right secret, the receiver gets what it rejected", "wrong", 90*time.Second, notify.TypeCreated)

	// Each id taken once; what each key's status records as acknowledged
	// is what the receiver took.
	ids := map[string]int{}
	for _, t := range accepted() {
		ids[t.ID]++
	}
	for id, n := range ids {
		if n != 1 {
			e.t.Fatalf("id %s taken %d times", id, n)
		}
	}
	for _, key := range []string{"life", "short", "crash", "wrong"} {
		var notified []string
		if err := json.Unmarshal([]byte(e.kubectl("get", "apikey", "-n", "notify", key, "-o", "jsonpath={.status.notified}")), &notified); err != nil {
			e.t.Fatalf("status.notified of %s: %v", key, err)
		}
		for _, id := range notified {
			if ids[id] != 1 {
				e.t.Fatalf("%s records %s as acknowledged, which the receiver did not take", key, id)
			}
		}
		// A warning's id goes from the record once the key has ended: it
		// can never be due again.
		want := slices.DeleteFunc(typesOf(key), func(t string) bool { return t == notify.TypeExpiring })
		if len(notified) != len(want) {
			e.t.Fatalf("%s records %d acknowledged, the receiver took %d besides warnings", key, len(notified), len(want))
		}
	}
	e.note("notifications: %d taken once each by the receiver example, through 30 s down, a leader killed mid-delivery (resent with id %s) and a wrong secret",
		len(ids), heldID)
}
