//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/test/harness"
)

// certRenewal: two controllers serve the admission webhook (as
// config/with-webhook installs it) and issue the verifier's certificate,
// which two verifiers serve, with self-issued certificates that last 40
// seconds and are renewed 30 seconds before their end, checked every 2
// seconds: a renewal every 10 seconds or so. The controllers inject each
// new CA into the webhook configuration under the admission policy that
// lets them change nothing else there. Throughout, the API server calls the
// webhook, at one controller or the other at random, about a key it must
// refuse (its failure policy is Ignore: a call that fails lets the key in),
// and a client that trusts the CA ConfigMap as it reads it calls both
// verifiers. Not one call fails, while each replica goes through two
// renewals of each certificate.
func certRenewal(e *env) {
	for _, m := range append(e.controllers, e.verifiers...) {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	ctx := context.Background()
	webhookRBAC := []string{"-f", "config/with-webhook/cert_secret_role.yaml", "-f", "config/with-webhook/webhook_configuration_role.yaml",
		"-f", "config/with-webhook/webhook_configuration_policy.yaml"}
	e.kubectl("apply", "-k", "config/webhook")
	e.kubectl(append([]string{"apply"}, webhookRBAC...)...)
	// The verifier's certificate of the earlier scenarios lasts a year:
	// this one is issued with the short timing, and its CA published anew.
	e.kubectl("delete", "secret", "-n", harness.ManagerNamespace, "keywarden-verifier-cert", "keywarden-verifier-tls")
	e.kubectl("delete", "configmap", "-n", harness.ManagerNamespace, "keywarden-verifier-ca")
	// EndpointSlices refuse loopback addresses: the replicas are reached
	// at the machine's own address (the webhook listens on every one).
	ip := hostAddress(e)
	var ports [2]int
	for i := range ports {
		p, err := harness.FreePort()
		if err != nil {
			e.t.Fatal(err)
		}
		ports[i] = p
		// Each replica behind the webhook's Service, as the
		// EndpointSlice controller would list a Pod.
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("keywarden-webhook-service-%d", i), Namespace: harness.ManagerNamespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: "keywarden-webhook-service"},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To(int32(p)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		if _, err := e.kube.DiscoveryV1().EndpointSlices(harness.ManagerNamespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	http1.Transport = nil // trust the new verifier CA
	for i, p := range ports {
		e.startController("--self-issued-cert-validity=40s", "--self-issued-cert-renew-before=30s", "--self-issued-cert-check-interval=2s",
			"--enable-webhook", "--webhook-port="+strconv.Itoa(p), "--webhook-cert-dir", filepath.Join(e.dir, fmt.Sprintf("webhook-certs-%d", i)))
	}
	for i, p := range ports {
		addr := net.JoinHostPort(ip, strconv.Itoa(p))
		e.eventually(fmt.Sprintf("controller %d serves its webhook", i), 30*time.Second, func() bool {
			_, err := servedCert(addr)
			return err == nil
		})
	}
	for range ports {
		e.startVerifier("--self-issued-cert-check-interval=2s")
	}

	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	refused := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "renewal-probe"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Renewal probe", Owner: "ops@example.com", Role: "reader", ClassName: "no-such-class"},
	}
	// The API server is kept calling the webhook by two callers: every
	// change of the CA bundle makes it open new connections, and a
	// replica serving a certificate the bundle does not trust fails them.
	var (
		mu                                sync.Mutex
		calls, verifies                   int
		webhookFailures, verifierFailures []string
	)
	stop := make(chan struct{})
	var callers sync.WaitGroup
	for range 2 {
		callers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := c.Create(ctx, refused.DeepCopy(), client.DryRunAll)
				mu.Lock()
				calls++
				switch {
				case err == nil:
					webhookFailures = append(webhookFailures, "the webhook was not reached: a key of an unknown class was let in")
				case !strings.Contains(err.Error(), `admission webhook "vapikey.keywarden.dev" denied the request`):
					webhookFailures = append(webhookFailures, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	served := map[string]map[string]bool{} // replica and certificate -> fingerprints served
	renewed := func() bool {
		for _, fps := range served {
			if len(fps) < 3 {
				return false
			}
		}
		return len(served) == 2*len(ports)
	}
	for deadline := time.Now().Add(90 * time.Second); !renewed(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(stop)
			e.t.Fatalf("no two renewals of each certificate in 90 s; served: %v", served)
		}
		verifier := verifierClient(e)
		for i, m := range e.verifiers {
			webhookAddr := net.JoinHostPort(ip, strconv.Itoa(ports[i]))
			verifierAddr := strings.TrimPrefix(m.URL, "https://")
			for what, addr := range map[string]string{"controller's webhook": webhookAddr, "verifier": verifierAddr} {
				fp, err := servedCert(addr)
				if err != nil {
					close(stop)
					e.t.Fatalf("replica %d's %s: %v", i, what, err)
				}
				id := fmt.Sprintf("replica %d's %s", i, what)
				if served[id] == nil {
					served[id] = map[string]bool{}
				}
				served[id][fp] = true
			}
			resp, err := verifier.Get(m.URL + "/readyz")
			mu.Lock()
			verifies++
			if err != nil {
				verifierFailures = append(verifierFailures, fmt.Sprintf("replica %d's verifier: %v", i, err))
			}
			mu.Unlock()
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}
	close(stop)
	callers.Wait()
	if len(webhookFailures)+len(verifierFailures) > 0 {
		e.t.Fatalf("across the renewals, %d of %d webhook calls failed %q, and %d of %d verifier calls %q",
			len(webhookFailures), calls, append(webhookFailures, "")[0], len(verifierFailures), verifies, append(verifierFailures, "")[0])
	}
	for i, m := range e.controllers {
		n, err := metricSum(m, `controller_runtime_webhook_requests_total{`, `webhook="/validate-keywarden-dev-v1alpha1-apikey"`)
		if err != nil || n == 0 {
			e.t.Fatalf("controller %d served %v webhook calls (%v): the API server must call both", i, n, err)
		}
	}

	// Back to the install without the webhook, for the scenarios after.
	for _, m := range append(e.controllers, e.verifiers...) {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	e.kubectl("delete", "-k", "config/webhook")
	e.kubectl(append([]string{"delete"}, webhookRBAC...)...)
	e.kubectl("delete", "endpointslices", "-n", harness.ManagerNamespace, "-l", discoveryv1.LabelServiceName+"=keywarden-webhook-service")
	e.kubectl("delete", "secret", "-n", harness.ManagerNamespace, "keywarden-verifier-cert", "keywarden-verifier-tls", "keywarden-webhook-cert")
	e.kubectl("delete", "configmap", "-n", harness.ManagerNamespace, "keywarden-verifier-ca")
	http1.Transport = nil
	e.note("certificate renewal: across two renewals of the webhook's and the verifier's certificates on two replicas, %d webhook calls through the API server and %d verifier calls trusting the published CA: none failed", calls, verifies)
}

// hostAddress is an IPv4 address of this machine's other than loopback.
func hostAddress(e *env) string {
	e.t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	e.t.Fatalf("no IPv4 address but loopback among %v: the API server cannot be sent to a webhook on loopback", addrs)
	return ""
}

// verifierClient is an HTTP client that trusts the verifier's CA as the
// ConfigMap publishes it now.
func verifierClient(e *env) *http.Client {
	e.t.Helper()
	cm, err := e.kube.CoreV1().ConfigMaps(harness.ManagerNamespace).Get(context.Background(), "keywarden-verifier-ca", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cm.Data["ca.crt"])) {
		e.t.Fatal("the published CA is not PEM")
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: verifierName, MinVersion: tls.VersionTLS12},
	}}
}

// servedCert is the fingerprint of the certificate a TLS server serves,
// whoever signed it.
func servedCert(addr string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reads the certificate
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return fmt.Sprintf("%x", sum[:8]), nil
}

// metricSum adds up the series of a manager's metric whose line starts
// with prefix and contains label.
func metricSum(m *harness.Component, prefix, label string) (float64, error) {
	text, err := metricsText(m)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}
