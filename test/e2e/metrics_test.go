//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"keywarden.dev/keywarden/test/harness"
)

// securedMetrics: with its metrics served as config/manager serves them
// (--metrics-secure), a replica answers a scrape without a token with 401,
// one from a ServiceAccount that may not get /metrics with 403, and one
// from a ServiceAccount bound to config/rbac's metrics reader role with the
// metrics.
func securedMetrics(e *env) {
	ctx := context.Background()
	port, err := harness.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	log := filepath.Join(e.dir, "manager-secure-metrics.log")
	f, err := os.Create(log)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := e.cluster.StartManager(e.bin, f, "",
		"--leader-elect", "--leader-election-namespace", "default",
		"--metrics-bind-address", addr, "--metrics-secure=true")
	if err != nil {
		e.t.Fatal(err)
	}
	defer m.Stop(10 * time.Second)
	e.logs = append(e.logs, log)

	e.kubectl("apply", "-f", "config/rbac/metrics_reader_role.yaml")
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
		if _, err := e.kube.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
		tr, err := e.kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, name,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, stranger := token("metrics-scraper"), token("stranger")
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "keywarden-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: "metrics-scraper"}},
	}
	if _, err := e.kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}

	// The certificate is self-signed: the client checks nothing of it here.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	e.eventually("the secured metrics endpoint serves", 30*time.Second, func() bool {
		code, _ = scrape("")
		return code != 0
	})
	if code != http.StatusUnauthorized {
		e.t.Fatalf("a scrape without a token: %d, want 401", code)
	}
	if code, _ := scrape(stranger); code != http.StatusForbidden {
		e.t.Fatalf("a scrape by a ServiceAccount without the reader role: %d, want 403", code)
	}
	code, body := scrape(scraper)
	if code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
		e.t.Fatalf("a scrape by the metrics reader: %d, want 200 with the metrics", code)
	}
	if resp, err := http1.Get("http://" + addr + "/metrics"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			e.t.Fatal("the secured metrics endpoint served plain HTTP")
		}
	}
	e.note("secured metrics: no token 401, a ServiceAccount without the reader role 403, with it 200")
}
