//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"keywarden.dev/keywarden/test/harness"
)

// behindNginx: a service behind Debian's NGINX, which asks a verifier
// (trusting the namespace proxy-shop by default) with auth_request, as its
// documentation shows. What a client sends must end as the client's own
// 401 or 403, never as a 5xx of the proxy: a valid key passes with its
// owner; a key without the scope is 403 with its code; no key and a bad
// key are 401; two keys are 401 (the verifier's 400 was a 500 here); a
// key minted in the client's own namespace, with that namespace added to
// the check's query through the client's path, is 403; a revocation
// reaches the proxy within seconds.
func behindNginx(e *env) {
	ctx := context.Background()
	nginx := os.Getenv("NGINX")
	if nginx == "" {
		e.t.Skip("NGINX is not installed (hack/nginx.sh installs Debian's nginx when run as root): the scenario behind a reverse proxy did not run")
	}
	const shop, sandbox = "proxy-shop", "proxy-sandbox"
	e.kubectl("create", "namespace", shop)
	e.kubectl("create", "namespace", sandbox)
	if _, err := e.kubectlIn(`apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: checkout, namespace: `+shop+`}
spec: {displayName: Checkout, owner: checkout@example.com, role: standard, scopes: ["orders:read"]}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: reports, namespace: `+shop+`}
spec: {displayName: Reports, owner: reports@example.com, role: readonly, scopes: ["reports:read"]}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: minted, namespace: `+sandbox+`}
spec: {displayName: Minted, owner: cfo@example.com, role: admin, scopes: ["orders:read"]}
`, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey/checkout", "apikey/reports", "-n", shop, "--timeout=60s")
	e.kubectl("wait", "--for=condition=Ready", "apikey/minted", "-n", sandbox, "--timeout=60s")
	checkout, reports, minted := e.secretKey(shop, "checkout"), e.secretKey(shop, "reports"), e.secretKey(sandbox, "minted")

	// A verifier of its own, with a default trust; the others have none.
	v := e.startVerifier("--verifier-trusted-namespaces=" + shop)
	defer func() {
		v.Stop(10 * time.Second)
		e.verifiers = e.verifiers[:len(e.verifiers)-1]
	}()

	// The service behind the proxy greets the key's owner that the proxy
	// passes on.
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-Keywarden-Owner"))
	}))
	defer service.Close()

	dir := filepath.Join(e.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	cm, err := e.kube.CoreV1().ConfigMaps(harness.ManagerNamespace).Get(ctx, "keywarden-verifier-ca", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte(cm.Data["ca.crt"]), 0o644); err != nil {
		e.t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		e.t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // its workers read the test's files
	}
	// The check passes the client's own URI along (for the verifier's
	// logs, say): a client that puts "&namespace=..." in its path adds a
	// namespace to the check's query.
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 64; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/tmp; proxy_temp_path %[2]s/tmp; fastcgi_temp_path %[2]s/tmp; uwsgi_temp_path %[2]s/tmp; scgi_temp_path %[2]s/tmp;
	server {
		listen %[3]s;
		location = /_keywarden {
			internal;
			proxy_pass %[4]s/v1/authz?scope=orders:read&uri=$request_uri;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_ssl_trusted_certificate %[5]s;
			proxy_ssl_verify on;
			proxy_ssl_name %[6]s;
			proxy_ssl_server_name on;
		}
		location / {
			auth_request /_keywarden;
			auth_request_set $owner $upstream_http_x_keywarden_owner;
			auth_request_set $code $upstream_http_x_keywarden_code;
			add_header X-Keywarden-Code $code always;
			proxy_set_header X-Keywarden-Owner $owner;
			proxy_pass %[7]s;
		}
	}
}
`, user, dir, addr, v.URL, ca, verifierName, service.URL)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		e.t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	plain := &http.Client{Timeout: 5 * time.Second}
	get := func(path string, hdr http.Header) (int, string, string) {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header = hdr
		resp, err := plain.Do(req)
		if err != nil {
			return 0, "", err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return resp.StatusCode, resp.Header.Get("X-Keywarden-Code"), string(body)
	}
	e.eventually("NGINX answers", 20*time.Second, func() bool {
		code, _, _ := get("/", nil)
		return code != 0
	})

	bearer := func(keys ...string) http.Header {
		h := http.Header{}
		for _, k := range keys {
			h.Add("X-API-Key", k)
		}
		return h
	}
	for _, c := range []struct {
		what   string
		path   string
		hdr    http.Header
		status int
		code   string
		body   string
	}{
		{"a valid key", "/orders", bearer(checkout), 200, "", "hello checkout@example.com"},
		{"a key without the scope", "/orders", bearer(reports), 403, "INSUFFICIENT_SCOPE", ""},
		{"no key", "/orders", nil, 401, "", ""},
		{"a bad key", "/orders", bearer("kw_not-a-key"), 401, "MALFORMED", ""},
		{"two keys", "/orders", bearer(checkout, reports), 401, "MALFORMED", ""},
		{"a key minted in the client's own namespace", "/orders", bearer(minted), 403, "WRONG_NAMESPACE", ""},
		{"a minted key, its namespace added through the path", "/orders?x=1&namespace=" + sandbox, bearer(minted), 403, "WRONG_NAMESPACE", ""},
		{"a valid key, another namespace added through the path", "/orders?x=1&namespace=" + sandbox, bearer(checkout), 403, "WRONG_NAMESPACE", ""},
	} {
		status, code, body := get(c.path, c.hdr)
		if status != c.status || code != c.code || !strings.Contains(body, c.body) {
			e.t.Errorf("%s: the client saw %d %q %q; want %d %q", c.what, status, code, strings.TrimSpace(body), c.status, c.code)
		}
	}

	// A revocation reaches the proxy.
	e.kubectl("patch", "apikey", "checkout", "-n", shop, "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	start := time.Now()
	e.eventually("the revoked key is refused behind NGINX", 10*time.Second, func() bool {
		status, code, _ := get("/orders", bearer(checkout))
		return status == 401 && code == "REVOKED"
	})
	took := time.Since(start)
	if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil && strings.Contains(string(b), "auth request unexpected status") {
		e.t.Errorf("NGINX took an answer of the verifier for a failure of the check:\n%s", b)
	}
	e.note("behind NGINX (auth_request): a valid key 200 with its owner; no scope 403 INSUFFICIENT_SCOPE; no key, a bad key, two keys 401; a minted key 403 WRONG_NAMESPACE, also with its namespace added through the path; a revocation refused after %s", took.Round(time.Millisecond))
}

// freeAddr is a free loopback address.
func freeAddr() (string, error) {
	port, err := harness.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// reportThroughACrash: a verifier killed with SIGKILL right after it
// answered 202 to a leak report has stored the revocation: five keys, each
// reported to a replica of its own that is killed at once, are revoked in
// the API server and refused by every other verifier.
func reportThroughACrash(e *env) {
	const ns = "crash-report"
	e.kubectl("create", "namespace", ns)
	var manifest strings.Builder
	for i := range 5 {
		fmt.Fprintf(&manifest, "---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: leaked-%d, namespace: %s}\nspec: {displayName: Leaked, owner: o@example.com, role: readonly}\n", i, ns)
	}
	if _, err := e.kubectlIn(manifest.String(), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	raws := make([]string, 5)
	for i := range raws {
		e.kubectl("wait", "--for=condition=Ready", fmt.Sprintf("apikey/leaked-%d", i), "-n", ns, "--timeout=60s")
		raws[i] = e.secretKey(ns, fmt.Sprintf("leaked-%d", i))
	}
	for i, raw := range raws {
		m := e.startVerifier()
		e.verifiers = e.verifiers[:len(e.verifiers)-1]
		resp, err := http1.Post(m.URL+"/v1/keys/report", "application/json", strings.NewReader(`{"key":"`+raw+`"}`))
		if err != nil {
			m.Kill()
			e.t.Fatal(err)
		}
		_ = resp.Body.Close()
		m.Kill()
		if resp.StatusCode != http.StatusAccepted {
			e.t.Fatalf("report %d: %d, want 202", i, resp.StatusCode)
		}
		if reason := e.kubectl("get", "apikey", fmt.Sprintf("leaked-%d", i), "-n", ns, "-o", "jsonpath={.status.revocation.reason}"); reason != "KeyReported" {
			e.t.Errorf("key %d, reported and its verifier killed right after the 202: revocation %q, want KeyReported", i, reason)
		}
	}
	for _, m := range e.verifiers {
		for i, raw := range raws {
			e.eventually(fmt.Sprintf("key %d refused by every verifier", i), 10*time.Second, func() bool {
				got, err := verify(m, map[string]any{"key": raw, "namespace": ns})
				return err == nil && got["code"] == "REVOKED"
			})
		}
	}
	e.note("a report through a crash: 5 keys, each reported to a verifier killed with SIGKILL right after its 202, all revoked in the API server and refused by the other verifiers")
}
