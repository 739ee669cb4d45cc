package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
)

// fixture is a handler over an index with one valid and one revoked key.
type fixture struct {
	h              *Handler
	valid, revoked string
	logs           *bytes.Buffer
	reg            *prometheus.Registry
}

func newFixture(t testing.TB) *fixture {
	ix := NewIndex()
	valid, k := issued(t, "shop", "checkout", nil)
	ix.Upsert(k)
	revoked, r := issued(t, "shop", "old", func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true })
	ix.Upsert(r)
	logs := &bytes.Buffer{}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, ix)
	if err != nil {
		t.Fatal(err)
	}
	log := funcr.New(func(prefix, args string) { logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 1})
	h := &Handler{Index: ix, Metrics: m, Log: log, Now: func() time.Time { return t0 }, Trust: Trust{Namespaces: []string{"shop"}},
		ReportBudget: 20 * time.Millisecond}
	return &fixture{h: h, valid: valid, revoked: revoked, logs: logs, reg: reg}
}

func (f *fixture) do(method, target string, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.Routes().ServeHTTP(rec, req)
	return rec
}

func TestVerifyEndpoint(t *testing.T) {
	f := newFixture(t)
	body := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		want       map[string]any
	}{
		{"valid", "POST", body(map[string]any{"key": f.valid}), 200, map[string]any{
			"valid": true, "namespace": "shop", "name": "checkout", "owner": "team@example.com", "role": "readonly",
			"scopes": []any{"audit:read", "logs:read"}, "keyPrefix": f.valid[:8],
		}},
		{"valid with requirements", "POST", body(map[string]any{"key": f.valid, "scopes": []string{"logs:read"}, "role": "readonly", "namespace": "shop"}), 200, map[string]any{"valid": true}},
		{"revoked", "POST", body(map[string]any{"key": f.revoked}), 200, map[string]any{"valid": false, "code": "REVOKED"}},
		{"malformed", "POST", `{"key":"kw_nope"}`, 200, map[string]any{"valid": false, "code": "MALFORMED"}},
		{"insufficient scope", "POST", body(map[string]any{"key": f.valid, "scopes": []string{"admin"}}), 200, map[string]any{"valid": false, "code": "INSUFFICIENT_SCOPE"}},
		{"wrong role", "POST", body(map[string]any{"key": f.valid, "role": "admin"}), 200, map[string]any{"valid": false, "code": "WRONG_ROLE"}},
		{"wrong namespace", "POST", body(map[string]any{"key": f.valid, "namespace": "bank"}), 200, map[string]any{"valid": false, "code": "WRONG_NAMESPACE"}},
		{"not JSON", "POST", `key=abc`, 400, map[string]any{"error": "the body is not a JSON object"}},
		{"empty body", "POST", ``, 400, map[string]any{"error": "the body is not a JSON object"}},
		{"unknown field", "POST", `{"key":"x","tenant":"a"}`, 400, map[string]any{"error": `unknown field "tenant"`}},
		{"wrong type", "POST", `{"key":42}`, 400, map[string]any{"error": "field key has the wrong type"}},
		{"two objects", "POST", `{"key":"x"}{"key":"y"}`, 400, map[string]any{"error": "the body must hold exactly one JSON object"}},
		{"missing key", "POST", `{"scopes":["a"]}`, 400, map[string]any{"error": `"key" is required`}},
		{"over 8 KiB", "POST", `{"key":"` + strings.Repeat("a", 9000) + `"}`, 400, map[string]any{"error": "the body is larger than 8 KiB"}},
		{"GET", "GET", ``, 405, map[string]any{"error": "use POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(tt.method, "/v1/keys/verify", tt.body, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			for k, want := range tt.want {
				if gb, wb := body(got[k]), body(want); gb != wb {
					t.Errorf("%s = %s, want %s", k, gb, wb)
				}
			}
			if v, _ := got["valid"].(bool); !v && got["owner"] != nil {
				t.Errorf("a rejection discloses the owner")
			}
		})
	}
}

func TestAuthzEndpoint(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		query      url.Values
		hdr        map[string]string
		wantStatus int
		wantHdr    map[string]string
	}{
		{"bearer", nil, map[string]string{"Authorization": "Bearer " + f.valid}, 200, map[string]string{
			"X-Keywarden-Owner": "team@example.com", "X-Keywarden-Role": "readonly",
			"X-Keywarden-Scopes": "audit:read,logs:read", "X-Keywarden-Key": "shop/checkout",
		}},
		{"bearer, any case", nil, map[string]string{"Authorization": "bearer " + f.valid}, 200, map[string]string{"X-Keywarden-Key": "shop/checkout"}},
		{"X-API-Key", nil, map[string]string{"X-API-Key": f.valid}, 200, map[string]string{"X-Keywarden-Key": "shop/checkout"}},
		{"requirements met", url.Values{"scope": {"logs:read", "audit:read"}, "role": {"readonly"}, "namespace": {"shop"}}, map[string]string{"X-API-Key": f.valid}, 200, nil},
		{"no key", nil, nil, 401, map[string]string{"WWW-Authenticate": `Bearer realm="keywarden"`}},
		{"basic auth is not a key", nil, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, map[string]string{"WWW-Authenticate": `Bearer realm="keywarden"`}},
		{"malformed", nil, map[string]string{"X-API-Key": "kw_123"}, 401, map[string]string{"WWW-Authenticate": `Bearer realm="keywarden", error="invalid_token"`, "X-Keywarden-Code": "MALFORMED"}},
		{"revoked", nil, map[string]string{"X-API-Key": f.revoked}, 401, map[string]string{"X-Keywarden-Code": "REVOKED"}},
		{"missing scope", url.Values{"scope": {"logs:read", "billing:write"}}, map[string]string{"X-API-Key": f.valid}, 403, map[string]string{"X-Keywarden-Code": "INSUFFICIENT_SCOPE"}},
		{"wrong role", url.Values{"role": {"admin"}}, map[string]string{"X-API-Key": f.valid}, 403, map[string]string{"X-Keywarden-Code": "WRONG_ROLE"}},
		{"wrong namespace", url.Values{"namespace": {"bank"}}, map[string]string{"X-API-Key": f.valid}, 403, map[string]string{"X-Keywarden-Code": "WRONG_NAMESPACE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do("GET", "/v1/authz?"+tt.query.Encode(), "", tt.hdr)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			for k, want := range tt.wantHdr {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if rec.Code != 200 && rec.Header().Get("X-Keywarden-Owner") != "" {
				t.Errorf("a rejection discloses the owner")
			}
		})
	}
}

func TestAuthzRefusesMoreThanOneKey(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"two Authorization headers", http.Header{"Authorization": {"Bearer " + f.valid, "Bearer " + f.revoked}}, 401},
		{"two X-API-Key headers", http.Header{"X-Api-Key": {f.revoked, f.valid}}, 401},
		{"Authorization and X-API-Key with different keys", http.Header{"Authorization": {"Bearer " + f.revoked}, "X-Api-Key": {f.valid}}, 401},
		{"Authorization and X-API-Key with the same key", http.Header{"Authorization": {"Bearer " + f.valid}, "X-Api-Key": {f.valid}}, 200},
		{"Basic auth beside X-API-Key", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}, "X-Api-Key": {f.valid}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/authz", nil)
			req.Header = tc.hdr
			rec := httptest.NewRecorder()
			f.h.Routes().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 401 {
				// Two keys are the client's doing: a proxy passes a 401
				// on, where a 400 would be its own failure (nginx: 500).
				if rec.Header().Get("X-Keywarden-Owner") != "" || !strings.Contains(rec.Body.String(), "present one key") ||
					rec.Header().Get("X-Keywarden-Code") != string(CodeMalformed) {
					t.Errorf("answer %q: want the reason and nothing of any key", rec.Body)
				}
				for _, raw := range []string{f.valid, f.revoked} {
					if strings.Contains(rec.Body.String(), raw) {
						t.Error("the answer quotes a presented key")
					}
				}
			}
		})
	}
}

func TestRejectionsOfAKeyAreLoggedOnceAMinute(t *testing.T) {
	f := newFixture(t)
	now := t0
	f.h.Now = func() time.Time { return now }
	lines := func() int { return strings.Count(f.logs.String(), `"msg"="Key rejected`) }
	for range 500 {
		f.do("GET", "/v1/authz?scope=nonexistent", "", map[string]string{"X-API-Key": f.valid})
	}
	if got := lines(); got != 1 {
		t.Fatalf("%d lines for 500 rejections of one key for one reason, want 1", got)
	}
	f.do("GET", "/v1/authz", "", map[string]string{"X-API-Key": f.revoked})
	f.do("GET", "/v1/authz?role=admin", "", map[string]string{"X-API-Key": f.valid})
	if got := lines(); got != 3 {
		t.Fatalf("%d lines, want one more for another key and one more for another reason", got)
	}
	now = now.Add(time.Minute)
	f.do("GET", "/v1/authz?scope=nonexistent", "", map[string]string{"X-API-Key": f.valid})
	if got := lines(); got != 4 {
		t.Fatalf("%d lines, want one more a minute later", got)
	}
	if got := testutil.ToFloat64(f.h.Metrics.verifications.WithLabelValues("authz", "INSUFFICIENT_SCOPE")); got != 501 {
		t.Errorf("the metric counted %v rejections, want all 501", got)
	}
}

func TestRejectionsAreLoggedAndCountedWithoutTheKey(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/v1/keys/verify", `{"key":"`+f.revoked+`"}`, nil)
	f.do("GET", "/v1/authz", "", map[string]string{"X-API-Key": f.valid})
	f.do("GET", "/v1/authz", "", map[string]string{"X-API-Key": "kw_bogus"})

	logs := f.logs.String()
	if !strings.Contains(logs, f.revoked[:8]) || !strings.Contains(logs, "REVOKED") {
		t.Errorf("the rejection's log line lacks the prefix or the code:\n%s", logs)
	}
	if !strings.Contains(logs, "MALFORMED") {
		t.Errorf("the malformed key's rejection was not logged at V(1):\n%s", logs)
	}
	for _, raw := range []string{f.valid, f.revoked, "kw_bogus"} {
		if strings.Contains(logs, raw) {
			t.Errorf("a presented key is in the log")
		}
	}
	for result, want := range map[string]float64{"VALID": 1, "REVOKED": 1, "MALFORMED": 1} {
		endpoint := "authz"
		if result == "REVOKED" {
			endpoint = "verify"
		}
		if got := testutil.ToFloat64(f.h.Metrics.verifications.WithLabelValues(endpoint, result)); got != want {
			t.Errorf("verifications{%s,%s} = %v, want %v", endpoint, result, got, want)
		}
	}
	if got := testutil.CollectAndCount(f.reg, "keywarden_verification_duration_seconds"); got != 2 {
		t.Errorf("latency histograms = %d, want one per endpoint", got)
	}
	if n, err := testutil.GatherAndCount(f.reg, "keywarden_verifier_keys_indexed"); err != nil || n != 1 {
		t.Errorf("keys indexed gauge: %d, %v", n, err)
	}
}

// FuzzHandler sends arbitrary bodies, headers and queries to both
// endpoints: no panic, no 5xx, only the documented statuses (400 from
// /v1/authz only for a request that presents two different keys, names
// "*" as a namespace or class, or repeats either).
func FuzzHandler(f *testing.F) {
	fx := newFixture(f)
	f.Add(`{"key":"`+fx.valid+`"}`, "Bearer "+fx.valid, fx.valid, "scope=logs:read&role=readonly")
	f.Add(`{"key":"`+fx.revoked+`","scopes":["x"],"namespace":"shop"}`, "bearer", "", "namespace=%zz")
	f.Add(`{"key":null}`, "Basic", "kw_", "scope=&scope=a")
	f.Add(`[1,2,3]`, "", "\x00", ";;&&==")
	f.Add(`{"key":"a","key":"b"}`, "Bearer  ", " ", "role=%00")
	f.Add(`{}`, "BeArer 0", "1", "0")
	f.Fuzz(func(t *testing.T, body, auth, apiKey, query string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/keys/verify", strings.NewReader(body))
		fx.h.Routes().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("verify answered %d", rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("verify answered with a body that is not JSON")
		}

		req = httptest.NewRequest("GET", "/v1/authz", nil)
		req.URL.RawQuery = query
		if validHeader(auth) {
			req.Header.Set("Authorization", auth)
		}
		if validHeader(apiKey) {
			req.Header.Set("X-API-Key", apiKey)
		}
		rec = httptest.NewRecorder()
		fx.h.Routes().ServeHTTP(rec, req)
		_, ambiguous := presentedKey(req)
		q := req.URL.Query()
		anyNamespace := slices.Contains(List(q.Get("namespace")), "*") || slices.Contains(List(q.Get("class")), "*")
		repeated := len(q["namespace"]) > 1 || len(q["class"]) > 1
		switch {
		case rec.Code == http.StatusBadRequest && (ambiguous != "" || anyNamespace || repeated):
		case rec.Code == http.StatusOK, rec.Code == http.StatusUnauthorized, rec.Code == http.StatusForbidden:
		default:
			t.Fatalf("authz answered %d", rec.Code)
		}
	})
}

// validHeader reports whether net/http would send the value at all.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func TestVerificationWaitsForACompleteIndex(t *testing.T) {
	f := newFixture(t)
	var complete bool
	f.h.Ready = func() bool { return complete }
	verify := func() *httptest.ResponseRecorder {
		return f.do("POST", "/v1/keys/verify", `{"key":"`+f.valid+`"}`, nil)
	}
	authz := func() *httptest.ResponseRecorder {
		return f.do("GET", "/v1/authz", "", map[string]string{"Authorization": "Bearer " + f.valid})
	}
	for name, call := range map[string]func() *httptest.ResponseRecorder{"verify": verify, "authz": authz} {
		rec := call()
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s before the index is complete: %d, Retry-After %q; want 503 with Retry-After", name, rec.Code, rec.Header().Get("Retry-After"))
		}
		if strings.Contains(rec.Body.String(), f.valid) || strings.Contains(rec.Body.String(), "NOT_FOUND") {
			t.Errorf("%s before the index is complete answered %q", name, rec.Body.String())
		}
	}
	for _, endpoint := range []string{"verify", "authz"} {
		if got := testutil.ToFloat64(f.h.Metrics.errors.WithLabelValues(endpoint, "503")); got != 1 {
			t.Errorf("errors{%s,503} = %v, want 1", endpoint, got)
		}
	}
	f.do("POST", "/v1/keys/verify", `{"key":`, nil)
	if got := testutil.ToFloat64(f.h.Metrics.errors.WithLabelValues("verify", "400")); got != 1 {
		t.Errorf("errors{verify,400} = %v, want 1", got)
	}
	complete = true
	if rec := verify(); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"valid":true`) {
		t.Errorf("verify once the index is complete: %d", rec.Code)
	}
	if rec := authz(); rec.Code != http.StatusOK {
		t.Errorf("authz once the index is complete: %d", rec.Code)
	}
}

// TestTrustOverHTTP: a service accepts a key only from the namespaces or
// classes it names, or that the verifier is set to trust; a request that
// says neither, to a verifier with no default, is a 400 that says why. The
// attack: an editor of the sandbox namespace mints a key for the CFO, with
// the admin role, and presents it to every service.
func TestTrustOverHTTP(t *testing.T) {
	ix := NewIndex()
	shop, k := issued(t, "shop", "checkout", inClass("payments"))
	ix.Upsert(k)
	minted, m := issued(t, "sandbox", "cfo", func(k *keywardenv1alpha1.APIKey) {
		k.Status.Owner, k.Status.Role = "cfo@example.com", "admin"
	})
	ix.Upsert(m)

	const noTrust = "400: say whose keys"
	wrongNS, wrongClass := string(CodeWrongNamespace), string(CodeWrongClass)
	tests := []struct {
		name  string
		trust Trust
		// query is the request's namespaces and classes, in the query
		// syntax; the verify body names the same.
		query url.Values
		key   string
		want  string // "valid", a Code, or a 400's message prefix
	}{
		{"no default, no namespace named: the minted key", Trust{}, nil, minted, noTrust},
		{"no default, no namespace named: a real key", Trust{}, nil, shop, noTrust},
		{"no default, the service's namespace", Trust{}, url.Values{"namespace": {"shop"}}, shop, "valid"},
		{"no default, the service's namespace: the minted key", Trust{}, url.Values{"namespace": {"shop"}}, minted, string(CodeWrongNamespace)},
		{"no default, two namespaces", Trust{}, url.Values{"namespace": {"billing,shop"}}, shop, "valid"},
		{"no default, a class: the minted key has none", Trust{}, url.Values{"class": {"payments"}}, minted, string(CodeWrongClass)},
		{"no default, a class", Trust{}, url.Values{"class": {"payments"}}, shop, "valid"},
		{"no default, a class and another namespace", Trust{}, url.Values{"class": {"payments"}, "namespace": {"billing"}}, shop, string(CodeWrongNamespace)},
		{"no default, \"*\" is not a namespace", Trust{}, url.Values{"namespace": {"*"}}, shop, wrongNS + ": is not a namespace: trusting the keys of every namespace"},
		{"no default, \"*\" is not a class", Trust{}, url.Values{"class": {"*"}}, shop, wrongClass + ": is not a namespace: trusting the keys of every namespace"},
		{"default namespaces", Trust{Namespaces: []string{"shop"}}, nil, shop, "valid"},
		{"default namespaces: the minted key", Trust{Namespaces: []string{"shop"}}, nil, minted, string(CodeWrongNamespace)},
		// A request narrows the default, never widens it: the client that
		// adds its own namespace to a proxy's check is refused, with any key.
		{"default namespaces, the request names its own", Trust{Namespaces: []string{"shop"}}, url.Values{"namespace": {"sandbox"}}, minted, wrongNS + ": outside the verifier's trusted namespaces"},
		{"default namespaces, the request names its own: a real key", Trust{Namespaces: []string{"shop"}}, url.Values{"namespace": {"sandbox"}}, shop, wrongNS + ": outside the verifier's trusted namespaces"},
		{"default namespaces, the request adds its own to one of them", Trust{Namespaces: []string{"shop"}}, url.Values{"namespace": {"shop,sandbox"}}, minted, wrongNS + ": outside the verifier's trusted namespaces"},
		{"default namespaces, the request narrows them", Trust{Namespaces: []string{"billing", "shop"}}, url.Values{"namespace": {"shop"}}, shop, "valid"},
		{"default namespaces, the request narrows them: the minted key", Trust{Namespaces: []string{"sandbox", "shop"}}, url.Values{"namespace": {"shop"}}, minted, wrongNS},
		{"default classes, the request names another", Trust{Classes: []string{"payments"}}, url.Values{"class": {"sandbox"}}, minted, wrongClass + ": outside the verifier's trusted classes"},
		{"default classes, the request names the same", Trust{Classes: []string{"payments"}}, url.Values{"class": {"payments"}}, shop, "valid"},
		{"default namespaces and classes, the request names another class", Trust{Namespaces: []string{"shop"}, Classes: []string{"payments"}}, url.Values{"class": {"other"}}, shop, wrongClass + ": outside the verifier's trusted classes"},
		{"default namespaces and classes, the request narrows both", Trust{Namespaces: []string{"shop", "billing"}, Classes: []string{"payments", "other"}}, url.Values{"namespace": {"shop"}, "class": {"payments"}}, shop, "valid"},
		{"default classes: the minted key", Trust{Classes: []string{"payments"}}, nil, minted, string(CodeWrongClass)},
		{"default classes", Trust{Classes: []string{"payments"}}, nil, shop, "valid"},
		{"every namespace, set on the verifier", Trust{AnyNamespace: true}, nil, minted, "valid"},
		{"every namespace on the verifier, the request narrows it", Trust{AnyNamespace: true}, url.Values{"namespace": {"shop"}}, minted, string(CodeWrongNamespace)},
		// Naming a class narrows: the default namespaces still apply.
		{"default namespaces, the request names a class: a key of the class elsewhere", Trust{Namespaces: []string{"billing"}}, url.Values{"class": {"payments"}}, shop, string(CodeWrongNamespace)},
		{"default namespaces, the request names a class", Trust{Namespaces: []string{"shop"}}, url.Values{"class": {"payments"}}, shop, "valid"},
		{"default classes, the request names a namespace", Trust{Classes: []string{"payments"}}, url.Values{"namespace": {"sandbox"}}, minted, string(CodeWrongClass)},
		{"several namespaces as one list", Trust{}, url.Values{"namespace": {"billing,shop"}}, shop, "valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{Index: ix, Log: logr.Discard(), Trust: tt.trust}
			body := map[string]any{"key": tt.key}
			if ns := tt.query.Get("namespace"); ns != "" {
				body["namespaces"] = strings.Split(ns, ",")
			}
			if cl := tt.query.Get("class"); cl != "" {
				body["classes"] = strings.Split(cl, ",")
			}
			b, _ := json.Marshal(body)
			rec := httptest.NewRecorder()
			h.Routes().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/keys/verify", bytes.NewReader(b)))
			var got VerifyResponse
			var problem errorResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &got)
			_ = json.Unmarshal(rec.Body.Bytes(), &problem)

			req := httptest.NewRequest("GET", "/v1/authz?"+tt.query.Encode(), nil)
			req.Header.Set("Authorization", "Bearer "+tt.key)
			arec := httptest.NewRecorder()
			h.Routes().ServeHTTP(arec, req)

			switch {
			case strings.HasPrefix(tt.want, "400: "):
				want := strings.TrimPrefix(tt.want, "400: ")
				if rec.Code != 400 || !strings.Contains(problem.Error, want) {
					t.Errorf("verify: %d %s, want 400 saying %q", rec.Code, rec.Body, want)
				}
				if arec.Code != 400 || !strings.Contains(arec.Body.String(), want) {
					t.Errorf("authz: %d %s, want 400 saying %q", arec.Code, arec.Body, want)
				}
			case tt.want == "valid":
				if rec.Code != 200 || !got.Valid {
					t.Errorf("verify: %d %s, want valid", rec.Code, rec.Body)
				}
				if arec.Code != 200 {
					t.Errorf("authz: %d, want 200", arec.Code)
				}
				if tt.key == shop && (got.Class != "payments" || arec.Header().Get("X-Keywarden-Class") != "payments") {
					t.Errorf("the answer does not name the class: body %q, header %q", got.Class, arec.Header().Get("X-Keywarden-Class"))
				}
			default:
				code, why, _ := strings.Cut(tt.want, ": ")
				if rec.Code != 200 || got.Valid || string(got.Code) != code || got.Owner != "" || !strings.Contains(got.Error, why) {
					t.Errorf("verify: %d %s, want code %s saying %q", rec.Code, rec.Body, code, why)
				}
				if arec.Code != 403 || arec.Header().Get("X-Keywarden-Code") != code || arec.Header().Get("X-Keywarden-Owner") != "" ||
					!strings.Contains(arec.Body.String(), why) {
					t.Errorf("authz: %d code %q %s, want 403 %s saying %q", arec.Code, arec.Header().Get("X-Keywarden-Code"), arec.Body, code, why)
				}
			}
		})
	}
}

// TestAuthzTakesEachTrustParameterOnce: a proxy that builds the check's
// query from a prefix of its own and the client's path lets the client
// append a namespace; a repeated namespace or class is refused, as a key
// the check does not accept is (403 with its code: a proxy passes it on).
func TestAuthzTakesEachTrustParameterOnce(t *testing.T) {
	f := newFixture(t)
	for q, code := range map[string]Code{
		"namespace=shop&namespace=sandbox":        CodeWrongNamespace,
		"class=a&class=b":                         CodeWrongClass,
		"namespace=shop&_=/x&namespace=sandbox":   CodeWrongNamespace,
		"namespace=shop&role=admin&role=readonly": CodeWrongRole,
	} {
		rec := f.do("GET", "/v1/authz?"+q, "", map[string]string{"X-API-Key": f.valid})
		if rec.Code != http.StatusForbidden || rec.Header().Get("X-Keywarden-Code") != string(code) ||
			!strings.Contains(rec.Body.String(), "once") || rec.Header().Get("X-Keywarden-Owner") != "" {
			t.Errorf("%s: %d %q %s, want 403 %s", q, rec.Code, rec.Header().Get("X-Keywarden-Code"), rec.Body, code)
		}
	}
}

// Each use of a rotated-out key past its grace is answered ROTATED and
// counted; its APIKey is told at most once a minute, without the key.
func TestRotatedKeyUseIsReportedOnceAMinute(t *testing.T) {
	f := newFixture(t)
	old, k := issued(t, "shop", "rotated", nil)
	current, _ := issued(t, "shop", "x", nil)
	k.Status.KeyHash, k.Status.KeyPrefix = keys.Hash(current), keys.DisplayPrefix(current)
	k.Status.Rotation = &keywardenv1alpha1.RotationStatus{Previous: []keywardenv1alpha1.PreviousKey{{
		RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(old), KeyPrefix: keys.DisplayPrefix(old)},
		RotatedAt:   metav1.Time{Time: t0.Add(-2 * time.Hour)}, ValidUntil: metav1.Time{Time: t0.Add(-time.Hour)},
	}}}
	f.h.Index.Upsert(k)
	now := t0
	f.h.Now = func() time.Time { return now }
	var told []string
	f.h.Suspects = func(k Suspect) {
		if k.Reported || k.KeyHash != keys.Hash(old) {
			t.Errorf("suspect %+v, want the rotated-out key, not reported", k)
		}
		told = append(told, k.APIKey.String()+" "+k.KeyPrefix)
	}
	for range 50 {
		rec := f.do("POST", "/v1/keys/verify", `{"key":"`+old+`","namespace":"shop"}`, nil)
		if !strings.Contains(rec.Body.String(), `"code":"ROTATED"`) || strings.Contains(rec.Body.String(), "rotated") {
			t.Fatalf("answer %s, want ROTATED and no word of the APIKey", rec.Body.String())
		}
		f.do("GET", "/v1/authz", "", map[string]string{"X-API-Key": old})
	}
	want := "shop/rotated " + keys.DisplayPrefix(old)
	if len(told) != 1 || told[0] != want {
		t.Fatalf("told %v, want once %q", told, want)
	}
	now = now.Add(time.Minute)
	f.do("POST", "/v1/keys/verify", `{"key":"`+old+`","namespace":"shop"}`, nil)
	if len(told) != 2 {
		t.Fatalf("told %d times, want once more a minute later", len(told))
	}
	if got := testutil.ToFloat64(f.h.Metrics.verifications.WithLabelValues("verify", "ROTATED")); got != 51 {
		t.Errorf("the metric counted %v uses, want all 51", got)
	}
	if strings.Contains(f.logs.String(), old) {
		t.Error("the logs quote the rotated-out key")
	}
	if res := f.do("POST", "/v1/keys/verify", `{"key":"`+current+`","namespace":"shop"}`, nil); !strings.Contains(res.Body.String(), `"valid":true`) {
		t.Errorf("the current key: %s", res.Body.String())
	}
}

// POST /v1/keys/report: a key that verifies has its revocation stored
// before the answer; any other body that is well formed gets the very same
// answer and changes nothing; the endpoint is rate-limited and never logs
// the key.
func TestReport(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var stored []string
	f.h.Report = func(ctx context.Context, k Suspect) error {
		if !k.Reported || k.KeyHash != keys.Hash(f.valid) {
			t.Errorf("suspect %+v, want the reported key", k)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the write has no deadline")
		}
		mu.Lock()
		defer mu.Unlock()
		stored = append(stored, k.APIKey.String()+" "+k.KeyPrefix)
		return nil
	}
	f.h.Suspects = func(k Suspect) { t.Errorf("a report queued for later: %+v", k) }
	storedNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(stored)
	}
	unknown, _ := issued(t, "shop", "never-indexed", nil)
	malformed := f.valid[:len(f.valid)-1] + flip(f.valid[len(f.valid)-1])
	report := func(body string) *httptest.ResponseRecorder { return f.do("POST", "/v1/keys/report", body, nil) }
	from := func(addr, body string) int {
		req := httptest.NewRequest("POST", "/v1/keys/report", strings.NewReader(body))
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		f.h.Routes().ServeHTTP(rec, req)
		return rec.Code
	}

	var answers []string
	for _, key := range []string{unknown, malformed, f.revoked, "not a key at all", f.valid} {
		start := time.Now()
		rec := report(`{"key":"` + key + `"}`)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("report: %d %s, want 202", rec.Code, rec.Body.String())
		}
		// Found or not, written or not, every answer takes the budget.
		if took := time.Since(start); took < f.h.ReportBudget {
			t.Errorf("a report answered in %s, under the budget of %s: its time tells whether a key exists", took, f.h.ReportBudget)
		}
		answers = append(answers, rec.Header().Get("Content-Type")+" "+rec.Body.String())
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("answers differ: %q and %q: the endpoint tells whether a key exists", answers[0], a)
		}
	}
	// The 202 came after the write: nothing is left to wait for.
	if got, want := storedNow(), []string{"shop/checkout " + keys.DisplayPrefix(f.valid)}; !slices.Equal(got, want) {
		t.Fatalf("stored before the answers %q, want %q: only a key that verifies revokes, and before its 202", got, want)
	}
	if got := testutil.ToFloat64(f.h.Metrics.reports.WithLabelValues("ignored")); got != 4 {
		t.Errorf("ignored reports counted %v, want 4", got)
	}

	// A revocation that cannot be stored is not answered 202: the
	// reporter is told to try again, in the same time.
	f.h.Report = func(context.Context, Suspect) error { return errors.New("the API server is unreachable") }
	start := time.Now()
	rec := report(`{"key":"` + f.valid + `"}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), f.valid) {
		t.Errorf("a report not stored: %d Retry-After %q %s, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if took := time.Since(start); took < f.h.ReportBudget {
		t.Errorf("a report not stored answered in %s, under the budget", took)
	}
	if got := testutil.ToFloat64(f.h.Metrics.reports.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed reports counted %v, want 1", got)
	}
	// Nor is one whose write has not returned when the budget ends: a
	// 202 is never given for a write still under way (or queued), which a
	// crash would lose.
	f.h.Report = func(ctx context.Context, _ Suspect) error {
		<-ctx.Done()
		return ctx.Err()
	}
	if rec := report(`{"key":"` + f.valid + `"}`); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a report whose write outlasts the budget: %d, want 503", rec.Code)
	}
	f.h.Report = func(context.Context, Suspect) error { return nil }

	for _, bad := range []string{`{"key":`, `{"credential":"x"}`, `{}`, `{"key":"a"}{"key":"b"}`} {
		if rec := report(bad); rec.Code != http.StatusBadRequest {
			t.Errorf("report %s: %d, want 400", bad, rec.Code)
		}
	}
	if rec := f.do("GET", "/v1/keys/report?key="+f.valid, "", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
	// One source flooding is limited; another is not held back by it.
	limited := 0
	for range 2 * ReportBurst {
		if from("203.0.113.7:4000", `{"key":"`+unknown+`"}`) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("no report refused with 429 past a source's burst")
	}
	if code := from("198.51.100.9:5000", `{"key":"`+f.valid+`"}`); code != http.StatusAccepted {
		t.Errorf("another source during the flood: %d, want 202", code)
	}
	for _, key := range []string{f.valid, unknown, malformed, f.revoked} {
		if strings.Contains(f.logs.String(), key) {
			t.Fatal("the logs quote a reported key")
		}
	}
}

// TestReportOfAKeyNotIndexedYet: a key issued or rotated a moment ago may
// reach this replica's index after its report does; the report looks for
// it again within its budget instead of ignoring it. A key never indexed
// is still ignored, in the same time.
func TestReportOfAKeyNotIndexedYet(t *testing.T) {
	f := newFixture(t)
	f.h.ReportBudget = time.Second
	var stored atomic.Int32
	f.h.Report = func(context.Context, Suspect) error { stored.Add(1); return nil }
	late, k := issued(t, "shop", "just-issued", nil)
	time.AfterFunc(200*time.Millisecond, func() { f.h.Index.Upsert(k) })
	start := time.Now()
	if rec := f.do("POST", "/v1/keys/report", `{"key":"`+late+`"}`, nil); rec.Code != http.StatusAccepted {
		t.Fatalf("report: %d %s", rec.Code, rec.Body)
	}
	if stored.Load() != 1 {
		t.Fatal("the report of a key indexed 200 ms after it came was ignored")
	}
	took := time.Since(start)
	never, _ := issued(t, "shop", "never-indexed", nil)
	start = time.Now()
	if rec := f.do("POST", "/v1/keys/report", `{"key":"`+never+`"}`, nil); rec.Code != http.StatusAccepted || stored.Load() != 1 {
		t.Fatalf("a key never indexed: %d, %d stored", rec.Code, stored.Load())
	}
	if d := time.Since(start) - took; d > 300*time.Millisecond || d < -300*time.Millisecond {
		t.Errorf("a report of a key found late took %s, one never found %s: the time tells", took, time.Since(start))
	}
}

// slowBody gives its bytes after a pause, as a reporter that sends its
// body slowly does.
type slowBody struct {
	pause time.Duration
	r     io.Reader
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.pause > 0 {
		time.Sleep(b.pause)
		b.pause = 0
	}
	return b.r.Read(p)
}

// TestSlowReportGetsItsWholeBudget: the budget runs once the body is read,
// so a reporter that sends it slowly cannot leave the write no time (and
// learn, from a 503, that its key exists).
func TestSlowReportGetsItsWholeBudget(t *testing.T) {
	f := newFixture(t)
	var left time.Duration
	f.h.Report = func(ctx context.Context, _ Suspect) error {
		d, _ := ctx.Deadline()
		left = time.Until(d)
		return nil
	}
	body := &slowBody{pause: 3 * f.h.ReportBudget, r: strings.NewReader(`{"key":"` + f.valid + `"}`)}
	rec := httptest.NewRecorder()
	f.h.Routes().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/keys/report", body))
	if rec.Code != http.StatusAccepted || left < f.h.ReportBudget/2 {
		t.Fatalf("a report sent slowly: %d, the write had %s of a %s budget", rec.Code, left, f.h.ReportBudget)
	}
}
