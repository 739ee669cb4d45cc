package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"keywarden.dev/keywarden/test/harness"
)

// selfSigned returns a PEM certificate and key for 127.0.0.1, and a pool
// that trusts it.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, pool, err := harness.SelfSignedCert(cn)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pool
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestServerTLSReloadsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certA, keyA, poolA := selfSigned(t, "a")
	certB, keyB, poolB := selfSigned(t, "b")
	write := func(cert, key []byte) {
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certA, keyA)

	addr := freeAddr(t)
	var ready atomic.Bool
	srv := &Server{Addr: addr, CertFile: certFile, KeyFile: keyFile, Handler: &Handler{Index: NewIndex(), Log: logr.Discard(), Ready: ready.Load},
		Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()

	get := func(pool *x509.CertPool, path string) (int, error) {
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://" + addr + path)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	eventually := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if f() {
				return
			}
		}
		t.Fatalf("timed out waiting: %s", what)
	}

	eventually("serving with certificate A", func() bool { code, err := get(poolA, "/healthz"); return err == nil && code == 200 })
	if code, _ := get(poolA, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the index synced = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(poolA, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the index synced = %d, want 200", code)
	}
	if _, err := get(poolB, "/healthz"); err == nil {
		t.Fatal("a client trusting only B accepted certificate A")
	}

	write(certB, keyB)
	eventually("serving with certificate B after the files changed", func() bool { code, err := get(poolB, "/healthz"); return err == nil && code == 200 })
}
