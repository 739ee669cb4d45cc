//go:build e2e

// Package e2e drives Keywarden the way a cluster does: its components
// (bin/keywarden, built by make build) run as processes, the controllers
// with leader election, each under its own ServiceAccount, against etcd
// and kube-apiserver from hack/; manifests go through kubectl, keys are
// verified over HTTP, and Secrets are read as a workload reads them.
// Run it with `make test-e2e`.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"keywarden.dev/keywarden/test/harness"
)

// env is the running installation the scenarios share.
type env struct {
	t       *testing.T
	cluster *harness.Cluster
	kube    kubernetes.Interface
	bin     string
	dir     string
	logs    []string
	// controllers run `keywarden controller`, verifiers `keywarden
	// verifier`: two of each.
	controllers, verifiers []*harness.Component
	// managerKubeconfig presents a token of the controller's
	// ServiceAccount (keywarden-manager), verifierKubeconfig one of the
	// verifier's (keywarden-verifier), with config/rbac applied: the
	// components run with the rights and the admission policies an install
	// gives them.
	managerKubeconfig, verifierKubeconfig string

	mu      sync.Mutex
	rawKeys map[string]bool // every raw key seen in a Secret
	// pluginBin is kubectl-keywarden; pluginOutput all it printed but
	// the keys create printed.
	pluginBin    string
	pluginOutput strings.Builder
	summary      []string
}

var http1 = &http.Client{Timeout: 5 * time.Second}

func TestE2E(t *testing.T) {
	// The scenarios' own controller-runtime clients log nothing worth
	// keeping; the components' logs are the ones checked.
	logf.SetLogger(logr.Discard())
	bin := os.Getenv("KEYWARDEN_BIN")
	if bin == "" {
		t.Fatal("KEYWARDEN_BIN is not set: run make test-e2e")
	}
	dir := os.Getenv("E2E_DIR") // where to keep the logs; a temporary directory by default
	if dir == "" {
		dir = t.TempDir()
	}
	cluster, err := harness.StartCluster(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cluster.Stop() }()
	kube, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cluster: cluster, kube: kube, bin: bin, dir: dir, rawKeys: map[string]bool{}, pluginBin: os.Getenv("PLUGIN_BIN")}
	if e.pluginBin == "" {
		t.Fatal("PLUGIN_BIN is not set: run make test-e2e")
	}
	e.kubectl("apply", "-k", "config/crd")
	e.kubectl("apply", "-k", "config/rbac")
	// Every install is one the API server accepts as it is.
	for _, dir := range []string{"config/base", "config/default", "config/with-webhook", "config/owner-binding", "config/verifier-autoscaling", "config/console"} {
		e.kubectl("apply", "--dry-run=server", "-k", dir)
	}
	e.managerKubeconfig = e.accountKubeconfig("keywarden-manager")
	e.verifierKubeconfig = e.accountKubeconfig("keywarden-verifier")
	e.startController()
	e.startController()
	e.startVerifier()
	e.startVerifier()
	defer func() {
		for _, m := range append(e.controllers, e.verifiers...) {
			m.Stop(10 * time.Second)
		}
	}()

	for _, s := range []struct {
		name string
		run  func(*env)
	}{
		{"quickstart", quickstart},
		{"rotation", rotation},
		{"kubectl plugin", kubectlPlugin},
		{"README session", readmeSession},
		{"web console", webConsole},
		{"notifications", notifications},
		{"monitoring", monitoring},
		{"bad input at the door", badInput},
		{"failover", failover},
		{"API server outage", apiServerOutage},
		{"crash during mass issuance", crashDuringIssuance},
		{"attacker with namespace rights", attacker},
		{"stolen controller token", stolenManagerToken},
		{"stolen verifier token", stolenVerifierToken},
		{"stolen console token", stolenConsoleToken},
		{"no tenant inflates a component", inflation},
		{"behind NGINX", behindNginx},
		{"a report through a crash", reportThroughACrash},
		{"secured metrics", securedMetrics},
		{"certificate renewal", certRenewal},
		{"upgrade from one process", upgradeFromOneProcess},
		{"restore from a backup", restoreFromBackup},
		{"chaos soak", chaosSoak},
		{"release", releaseScenario},
		{"namespaced install", namespacedInstall},
		{"no secret in the open", noSecretInTheOpen},
	} {
		ok := t.Run(s.name, func(t *testing.T) {
			e.t = t
			s.run(e)
		})
		e.t = t
		if !ok {
			break
		}
	}
	fmt.Printf("\nEnd-to-end summary:\n  %s\n", strings.Join(e.summary, "\n  "))
}

// accountKubeconfig writes a kubeconfig that presents a token of the
// ServiceAccount of that name in the components' namespace.
func (e *env) accountKubeconfig(account string) string {
	e.t.Helper()
	token, err := harness.Token(context.Background(), e.kube, harness.ManagerNamespace, account, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, account+".kubeconfig")
	if err := e.cluster.KubeconfigWithToken(path, token); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// logFile creates a log file for one more component process.
func (e *env) logFile(component string) *os.File {
	e.t.Helper()
	log := filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", component, len(e.logs)))
	f, err := os.Create(log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.logs = append(e.logs, log)
	return f
}

// startController starts one more controller with leader election, as the
// controller's ServiceAccount, issuing the verifier's certificate as
// config/manager runs it.
func (e *env) startController(extra ...string) *harness.Component {
	e.t.Helper()
	m, err := e.cluster.StartController(e.bin, e.logFile("controller"), append([]string{"--kubeconfig", e.managerKubeconfig,
		"--leader-elect", "--leader-election-namespace", harness.ManagerNamespace,
		"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms",
		"--verifier-certs=self", "--verifier-cert-dir", filepath.Join(e.dir, fmt.Sprintf("verifier-certs-%d", len(e.logs)))}, extra...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.controllers = append(e.controllers, m)
	return m
}

// startVerifier starts one more verifier, as the verifier's
// ServiceAccount, serving the certificate the controllers issue as
// config/manager runs it, and waits for it to be ready.
func (e *env) startVerifier(extra ...string) *harness.Component {
	e.t.Helper()
	m, err := e.cluster.StartVerifier(e.bin, e.logFile("verifier"), "", append([]string{"--kubeconfig", e.verifierKubeconfig,
		"--last-used-interval", "2s",
		"--verifier-certs=self", "--verifier-cert-dir", filepath.Join(e.dir, fmt.Sprintf("verifier-certs-%d", len(e.logs)))}, extra...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	m.URL = strings.Replace(m.URL, "http://", "https://", 1)
	e.trustVerifierCA()
	e.verifiers = append(e.verifiers, m)
	e.eventually("a new verifier is ready", 30*time.Second, func() bool {
		resp, err := http1.Get(m.URL + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	})
	return m
}

func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	out, err := e.cluster.Kubectl(context.Background(), args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// kubectlIn runs kubectl with stdin, returning its output and error.
func (e *env) kubectlIn(stdin string, args ...string) (string, error) {
	return e.cluster.KubectlIn(context.Background(), strings.NewReader(stdin), args...)
}

func (e *env) eventually(what string, timeout time.Duration, f func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if f() {
			return
		}
	}
	e.t.Fatalf("timed out after %s: %s", timeout, what)
}

func (e *env) note(format string, args ...any) {
	e.summary = append(e.summary, fmt.Sprintf(format, args...))
	e.t.Logf(format, args...)
}

// secretKey reads the raw key from a Secret the way a workload would, and
// remembers it for the leak check.
func (e *env) secretKey(ns, name string) string {
	e.t.Helper()
	out := e.kubectl("get", "secret", "-n", ns, name, "-o", "jsonpath={.data.key}")
	raw, err := base64.StdEncoding.DecodeString(out)
	if err != nil {
		e.t.Fatal(err)
	}
	e.remember(string(raw))
	return string(raw)
}

func (e *env) remember(raw string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rawKeys[raw] = true
}

// verifierName is the name the verifier's self-issued certificate is for,
// as config/manager's Service.
const verifierName = "keywarden-verifier." + harness.ManagerNamespace + ".svc"

// trustVerifierCA makes http1 trust the CA that the controllers publish in
// the ConfigMap keywarden-verifier-ca, for the verifier's name, as a client
// in the cluster would (the verifiers listen on loopback addresses).
func (e *env) trustVerifierCA() {
	e.t.Helper()
	if http1.Transport != nil {
		return // the verifiers share the certificate
	}
	http1.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: publishedVerifierCA(e), ServerName: verifierName, MinVersion: tls.VersionTLS12}}
}

// publishedVerifierCA waits for the ConfigMap keywarden-verifier-ca and
// returns a pool of the CAs it holds.
func publishedVerifierCA(e *env) *x509.CertPool {
	e.t.Helper()
	var ca string
	e.eventually("the verifier's CA is published", 30*time.Second, func() bool {
		cm, err := e.kube.CoreV1().ConfigMaps(harness.ManagerNamespace).Get(context.Background(), "keywarden-verifier-ca", metav1.GetOptions{})
		if err != nil {
			return false
		}
		ca = cm.Data["ca.crt"]
		return ca != ""
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca)) {
		e.t.Fatal("the published CA is not PEM")
	}
	return pool
}

// status GETs a URL and returns the status and the body ("" on error).
func status(url string) (int, string) {
	resp, err := http1.Get(url)
	if err != nil {
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// verify calls POST /v1/keys/verify on a verifier.
func verify(m *harness.Component, req map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(req)
	resp, err := http1.Post(m.URL+"/v1/keys/verify", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// account makes a ServiceAccount with a Role of the rules in the
// namespace (and, with classes, the right to read APIKeyClasses) and
// returns a token of it.
func (e *env) account(ns, name, rules string, classes bool) string {
	e.t.Helper()
	role := `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"` + name + `","namespace":"` + ns + `"},"rules":` + rules + `}`
	if _, err := e.kubectlIn(role, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("create", "serviceaccount", name, "-n", ns)
	e.kubectl("create", "rolebinding", name, "-n", ns, "--role", name, "--serviceaccount", ns+":"+name)
	if classes {
		e.kubectl("create", "clusterrole", name+"-classes", "--verb=get,list", "--resource=apikeyclasses.keywarden.dev")
		e.kubectl("create", "clusterrolebinding", name+"-classes", "--clusterrole", name+"-classes", "--serviceaccount", ns+":"+name)
	}
	token, err := harness.Token(context.Background(), e.kube, ns, name, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return token
}
