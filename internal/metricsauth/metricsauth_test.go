package metricsauth

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
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

// countingReviews authenticates the tokens "scraper-a" and "scraper-b" as
// users allowed /metrics and no other token, counting its reviews.
type countingReviews struct{ tokens atomic.Int64 }

func (c *countingReviews) Create(_ context.Context, r *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	c.tokens.Add(1)
	time.Sleep(time.Millisecond) // an API server round trip, roughly
	out := r.DeepCopy()
	if r.Spec.Token == "scraper-a" || r.Spec.Token == "scraper-b" {
		out.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: r.Spec.Token}}
	}
	return out, nil
}

type allowAll struct{}

func (allowAll) Create(_ context.Context, r *authorizationv1.SubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	out := r.DeepCopy()
	out.Status.Allowed = true
	return out, nil
}

// scrapeStatus gets /metrics with a bearer token and returns the status, 0
// when the request fails.
func scrapeStatus(c *http.Client, base, token string) int {
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestJunkTokensDoNotStarveScrapers: 100 connections send a fresh junk
// token each, as fast as they can, for two seconds. A scraper whose
// decision is cached keeps getting 200 from its first scrape on; a scraper
// from another address gets its first 200 during the flood; the flood
// costs the API server a bounded number of reviews (the flooding
// address's budget), and is answered 429.
func TestJunkTokensDoNotStarveScrapers(t *testing.T) {
	reviews := &countingReviews{}
	a := &Authorizer{Tokens: reviews, Access: allowAll{}}
	srv := httptest.NewServer(a.Wrap(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "the metrics")
	})))
	t.Cleanup(srv.Close)
	scrape := func(c *http.Client, token string) int { return scrapeStatus(c, srv.URL, token) }
	local := &http.Client{Timeout: 5 * time.Second}
	// Another address of the loopback network.
	elsewhere := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}

	if code := scrape(local, "scraper-a"); code != http.StatusOK {
		t.Fatalf("the first scrape: %d", code)
	}
	before := reviews.tokens.Load()

	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	var junk [600]atomic.Int64 // by status
	var wg sync.WaitGroup
	flood := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 5 * time.Second}
	for range 100 {
		wg.Go(func() {
			for ctx.Err() == nil {
				junk[scrape(flood, rand.Text())].Add(1)
			}
		})
	}
	var aCodes []int
	bCode := 0
	for ctx.Err() == nil {
		aCodes = append(aCodes, scrape(local, "scraper-a"))
		if bCode == 0 && len(aCodes) == 10 {
			bCode = scrape(elsewhere, "scraper-b")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	during := reviews.tokens.Load() - before

	for i, code := range aCodes {
		if code != http.StatusOK {
			t.Fatalf("scrape %d of the cached scraper during the flood: %d", i, code)
		}
	}
	if bCode != http.StatusOK {
		t.Fatalf("the first scrape of a scraper from another address during the flood: %d", bCode)
	}
	// The flooding address: its burst, then its rate for two seconds;
	// plus the other scraper's one review.
	if limit := int64(clientReviewBurst + 3*clientReviewQPS + 1); during > limit {
		t.Fatalf("the flood cost %d token reviews, more than %d", during, limit)
	}
	if junk[http.StatusTooManyRequests].Load() == 0 || junk[http.StatusOK].Load() != 0 {
		t.Fatalf("junk tokens: %d answered 429, %d answered 200", junk[http.StatusTooManyRequests].Load(), junk[http.StatusOK].Load())
	}
	t.Logf("flood: %d requests (%d answered 429, %d 401); %d token reviews; %d scrapes of the cached scraper, all 200",
		junk[429].Load()+junk[401].Load()+junk[0].Load(), junk[429].Load(), junk[401].Load(), during, len(aCodes))
}

func TestDecisionsAreKeptByTokenAndExpire(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	reviews := &countingReviews{}
	a := &Authorizer{Tokens: reviews, Access: allowAll{}, Now: func() time.Time { return now }}
	decide := func(token, path string) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		code, err := a.Decide(req)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	steps := []struct {
		advance      time.Duration
		token, path  string
		want         int
		reviewsAfter int64
	}{
		{0, "scraper-a", "/metrics", 200, 1},
		{30 * time.Second, "scraper-a", "/metrics", 200, 1}, // kept
		{0, "scraper-a", "/other", 200, 2},                  // another path is another decision
		{0, "junk", "/metrics", 401, 3},                     //
		{5 * time.Second, "junk", "/metrics", 401, 3},       // a refusal is kept too
		{6 * time.Second, "junk", "/metrics", 401, 4},       // for refusedFor
		{20 * time.Second, "scraper-a", "/metrics", 200, 5}, // past allowedFor: reviewed again
		{0, "scraper-b", "/metrics", 200, 6},                // another token
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := decide(s.token, s.path); got != s.want || reviews.tokens.Load() != s.reviewsAfter {
			t.Fatalf("step %d: %d after %d reviews, want %d after %d", i, got, reviews.tokens.Load(), s.want, s.reviewsAfter)
		}
	}
}

// TestFloodFromManyAddresses: junk from 30 addresses spends the overall
// review budget. A scraper whose allowed decision runs out during the
// flood keeps getting 200 from it (the fallback); a token never allowed
// gets 429; an IPv6 host counts as its /64.
func TestFloodFromManyAddresses(t *testing.T) {
	reviews := &countingReviews{}
	a := &Authorizer{Tokens: reviews, Access: allowAll{}, allowedFor: 300 * time.Millisecond, refusedFor: 300 * time.Millisecond, staleFor: time.Minute}
	srv := httptest.NewServer(a.Wrap(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "the metrics")
	})))
	t.Cleanup(srv.Close)
	from := func(ip string) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
		}}
	}
	scrape := func(c *http.Client, token string) int { return scrapeStatus(c, srv.URL, token) }
	scraper := from("127.0.0.2")
	if code := scrape(scraper, "scraper-a"); code != http.StatusOK {
		t.Fatalf("the first scrape: %d", code)
	}
	// An overall budget the flood spends for certain.
	a.mu.Lock()
	a.reviews = rate.NewLimiter(2, 2)
	a.mu.Unlock()
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for i := range 30 {
		c := from(fmt.Sprintf("127.0.1.%d", i+1))
		wg.Go(func() {
			for ctx.Err() == nil {
				scrape(c, rand.Text())
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // past allowedFor: the scraper's decision is no longer fresh
	var codes []int
	for ctx.Err() == nil {
		codes = append(codes, scrape(scraper, "scraper-a"))
		time.Sleep(50 * time.Millisecond)
	}
	stranger := scrape(from("127.0.0.3"), "scraper-b")
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Fatalf("scrape %d of the allowed scraper during the flood: %d", i, code)
		}
	}
	if stranger != http.StatusOK && stranger != http.StatusTooManyRequests {
		t.Fatalf("a token never allowed, during the flood: %d", stranger)
	}
	if limit := int64(1 + 2 + 3*2 + 1); reviews.tokens.Load() > limit {
		t.Fatalf("%d token reviews, more than %d", reviews.tokens.Load(), limit)
	}

	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:4000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:4000", "2001:db8:1:2::/64"},
	} {
		if got := host(&http.Request{RemoteAddr: tc.remote}); got != tc.want {
			t.Errorf("host(%s) = %s, want %s", tc.remote, got, tc.want)
		}
	}
}
