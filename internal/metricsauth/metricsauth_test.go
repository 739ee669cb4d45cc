package metricsauth

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"keywarden.dev/keywarden/test/harness"
)

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"Bearer  abc ", "abc", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"abc", "", false},
	} {
		if token, ok := bearer(tc.header); token != tc.token || ok != tc.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tc.header, token, ok, tc.token, tc.ok)
		}
	}
}

// TestFilterAgainstTheAPIServer serves a handler behind the filter, with a
// real API server reviewing the tokens of two ServiceAccounts: one bound
// to a role that may get /metrics, one bound to nothing.
func TestFilterAgainstTheAPIServer(t *testing.T) {
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(cfg)

	token := func(name string) string {
		tok, err := harness.ServiceAccountToken(ctx, kube, "default", name)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	reader, stranger := token("reader"), token("stranger")
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := harness.BindClusterRole(ctx, kube, "metrics-reader", "default", "reader"); err != nil {
		t.Fatal(err)
	}

	filter, err := Filter(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "the metrics")
	}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}

	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"the reader gets /metrics", http.MethodGet, "/metrics", "Bearer " + reader, http.StatusOK},
		{"the reader asks for HEAD", http.MethodHead, "/metrics", "Bearer " + reader, http.StatusOK},
		{"the reader may not get another path", http.MethodGet, "/debug/pprof/", "Bearer " + reader, http.StatusForbidden},
		{"the reader may not post", http.MethodPost, "/metrics", "Bearer " + reader, http.StatusForbidden},
		{"a ServiceAccount without the role", http.MethodGet, "/metrics", "Bearer " + stranger, http.StatusForbidden},
		{"no token", http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"a token the API server does not know", http.MethodGet, "/metrics", "Bearer not-a-token", http.StatusUnauthorized},
		{"another scheme", http.MethodGet, "/metrics", "Basic " + reader, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			served := strings.Contains(string(body), "the metrics")
			if served != (tc.want == http.StatusOK && tc.method != http.MethodHead) {
				t.Fatalf("status %d with the handler's body served: %v", resp.StatusCode, served)
			}
			if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("a 401 without WWW-Authenticate")
			}
		})
	}
}

type failingReviews struct{}

func (failingReviews) Create(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	return nil, errors.New("the API server is unreachable")
}

// TestReviewFailure: when the API server cannot review a token the request
// is refused with 500, and the error is logged without the token.
func TestReviewFailure(t *testing.T) {
	var logged strings.Builder
	log := funcr.New(func(prefix, args string) { logged.WriteString(prefix + args + "\n") }, funcr.Options{})
	a := &Authorizer{Tokens: failingReviews{}}
	served := false
	h := a.Wrap(log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer secret-token-value")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || served {
		t.Fatalf("status %d, served %v; want 500, not served", rec.Code, served)
	}
	if !strings.Contains(logged.String(), "the API server is unreachable") {
		t.Fatalf("the failure was not logged: %q", logged.String())
	}
	if strings.Contains(logged.String(), "secret-token-value") || strings.Contains(rec.Body.String(), "secret-token-value") {
		t.Fatal("the token appears in the log or the response")
	}
}
