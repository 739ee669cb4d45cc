//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keywarden.dev/keywarden/test/harness"
)

// securedMetrics: with its metrics served as config/manager serves them
// (--metrics-secure), a controller and a verifier each answer a scrape
// without a token with 401,
// one from a ServiceAccount that may not get /metrics with 403, and one
// from a ServiceAccount bound to config/rbac's metrics reader role with the
// metrics, over the verifier's certificate, which a scraper verifies with
// the published CA; given another --metrics-cert-dir, it serves that
// certificate.
func securedMetrics(e *env) {
	ctx := context.Background()
	e.kubectl("apply", "-f", "config/rbac/metrics_reader_role.yaml")
	token := func(name string) string {
		tok, err := harness.ServiceAccountToken(ctx, e.kube, "default", name)
		if err != nil {
			e.t.Fatal(err)
		}
		return tok
	}
	scraper, stranger := token("metrics-scraper"), token("stranger")
	if err := harness.BindClusterRole(ctx, e.kube, "keywarden-metrics-reader", "default", "metrics-scraper"); err != nil {
		e.t.Fatal(err)
	}

	// As config/manager runs them: the verifier's self-issued certificate
	// (the controller issues it and writes it for its own metrics, the
	// verifier reads it from its Secret), which a scraper verifies with
	// the CA the controller publishes and the verifier's name, as
	// config/prometheus's ServiceMonitor does.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: publishedVerifierCA(e), ServerName: verifierName}}}
	for _, component := range []string{"controller", "verifier"} {
		dir := e.t.TempDir()
		addr, stop := e.startSecureMetrics(component, "verifier-cert", "--verifier-certs=self", "--verifier-cert-dir", dir, "--metrics-cert-dir", dir)
		if code := scrapeStatus(e, c, addr, ""); code != http.StatusUnauthorized {
			e.t.Fatalf("%s: a scrape without a token: %d, want 401", component, code)
		}
		if code := scrapeStatus(e, c, addr, stranger); code != http.StatusForbidden {
			e.t.Fatalf("%s: a scrape by a ServiceAccount without the reader role: %d, want 403", component, code)
		}
		if code := scrapeStatus(e, c, addr, scraper); code != http.StatusOK {
			e.t.Fatalf("%s: a scrape by the metrics reader, verifying the certificate with keywarden-verifier-ca: %d, want 200", component, code)
		}
		if resp, err := http1.Get("http://" + addr + "/metrics"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				e.t.Fatalf("%s: the secured metrics endpoint served plain HTTP", component)
			}
		}
		stop()
	}

	// Without a certificate to serve: controller-runtime's in-memory
	// self-signed one, which the published CA does not vouch for.
	addr, stop := e.startSecureMetrics("controller", "self-signed")
	e.eventually("the self-signed metrics endpoint listens, and the published CA does not vouch for it", 30*time.Second, func() bool {
		resp, err := c.Get("https://" + addr + "/metrics")
		if err == nil {
			_ = resp.Body.Close()
			e.t.Fatal("the in-memory self-signed metrics certificate verified with keywarden-verifier-ca")
		}
		var refused *tls.CertificateVerificationError
		return errors.As(err, &refused)
	})
	stop()

	// With --metrics-cert-dir: the certificate given, which the client
	// verifies.
	dir := e.t.TempDir()
	pool := writeServingCert(e, dir)
	addr, stop = e.startSecureMetrics("controller", "cert-dir", "--metrics-cert-dir", dir)
	defer stop()
	c = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code := scrapeStatus(e, c, addr, scraper); code != http.StatusOK {
		e.t.Fatalf("a scrape by the metrics reader, verifying the certificate given: %d, want 200", code)
	}
	e.note("secured metrics, on a controller and a verifier: no token 401, a ServiceAccount without the reader role 403, with it 200, the verifier's certificate verified with keywarden-verifier-ca; without it a self-signed one that CA refuses; the certificate of --metrics-cert-dir served")
}

// startSecureMetrics starts one more controller or verifier, with its
// metrics served as config/manager serves them, and returns their address
// and how to stop it.
func (e *env) startSecureMetrics(component, name string, extra ...string) (string, func()) {
	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f := e.logFile(component + "-metrics-" + name)
	var m *harness.Component
	switch component {
	case "controller":
		m, err = e.cluster.StartController(e.bin, f, append([]string{"--kubeconfig", e.managerKubeconfig,
			"--leader-elect", "--leader-election-namespace", harness.ManagerNamespace,
			"--metrics-bind-address", addr, "--metrics-secure=true"}, extra...)...)
	default:
		m, err = e.cluster.StartVerifier(e.bin, f, "", append([]string{"--kubeconfig", e.verifierKubeconfig,
			"--metrics-bind-address", addr, "--metrics-secure=true"}, extra...)...)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return addr, func() { m.Stop(10 * time.Second) }
}

// scrapeStatus scrapes the metrics with a bearer token (none when empty),
// waiting for the endpoint to listen, and returns the status; a 200 must
// carry the metrics.
func scrapeStatus(e *env, c *http.Client, addr, token string) int {
	e.t.Helper()
	var code int
	var body string
	e.eventually("the secured metrics endpoint answers", 30*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		code, body = resp.StatusCode, string(b)
		return true
	})
	if code == http.StatusOK && !strings.Contains(body, "go_goroutines ") {
		e.t.Fatal("a 200 from the metrics endpoint without the metrics")
	}
	return code
}

// writeServingCert writes a self-signed certificate for 127.0.0.1 as
// tls.crt and tls.key into dir, and returns a pool that trusts it.
func writeServingCert(e *env, dir string) *x509.CertPool {
	certPEM, keyPEM, pool, err := harness.SelfSignedCert("keywarden-metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return pool
}
