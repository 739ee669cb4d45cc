package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

func TestSealer(t *testing.T) {
	s, err := newSealer()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v, err := s.seal(session{Token: "token-a", User: "alice", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "token-a") || strings.Contains(v, "alice") {
		t.Error("the cookie shows what it seals")
	}
	if got, err := s.open(v, now); err != nil || got.Token != "token-a" || got.User != "alice" {
		t.Fatalf("open: %+v, %v", got, err)
	}
	other, _ := newSealer()
	b := []byte(v)
	b[len(b)/2] ^= 1
	for name, value := range map[string]string{"tampered": string(b), "empty": "", "not base64": "%%%", "another process's": mustSeal(t, other, now)} {
		if _, err := s.open(value, now); err == nil {
			t.Errorf("a %s cookie opened", name)
		}
	}
	if _, err := s.open(v, now.Add(2*time.Hour)); err == nil {
		t.Error("an ended session opened")
	}
	if s.validCSRF("token-a", s.csrf("token-b")) || s.validCSRF("token-a", "") || !s.validCSRF("token-a", s.csrf("token-a")) {
		t.Error("the form token is not bound to the session's token")
	}
}

func mustSeal(t *testing.T, s *sealer, now time.Time) string {
	v, err := s.seal(session{Token: "x", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The checks before any call to the API server: no session, a forged
// cookie, a cross-site post and a post without its form token are refused,
// and every answer carries the security headers.
func TestRefusals(t *testing.T) {
	s, err := New(Options{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	good, _ := s.seal.seal(session{Token: "token-a", User: "alice", Expires: time.Now().Add(time.Hour)})
	form := url.Values{"csrf": {"wrong"}}.Encode()
	tests := []struct {
		name, method, path, cookie, body string
		header                           map[string]string
		status                           int
		want                             string
	}{
		{"no session", "GET", "/keys", "", "", nil, http.StatusSeeOther, ""},
		{"a forged cookie", "GET", "/keys", good[:len(good)-2] + "AA", "", nil, http.StatusSeeOther, ""},
		{"a cross-site post", "POST", "/keys/team/k/revoke", good, url.Values{"csrf": {s.seal.csrf("token-a")}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"a post from another origin", "POST", "/keys/team/k/revoke", good, url.Values{"csrf": {s.seal.csrf("token-a")}}.Encode(),
			map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "sent from another site"},
		{"a post without its form token", "POST", "/keys/team/k/revoke", good, form, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusForbidden, "no valid form token"},
		{"a sign-in from another site", "POST", "/login", "", url.Values{"token": {"x"}}.Encode(), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"the sign-in page", "GET", "/login", "", "", nil, http.StatusOK, "Bearer token"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "http://console.example"+tt.path, strings.NewReader(tt.body))
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		if tt.cookie != "" {
			req.AddCookie(&http.Cookie{Name: cookieName, Value: tt.cookie})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("%s: %d %q, want %d with %q", tt.name, rec.Code, rec.Body.String(), tt.status, tt.want)
		}
		if tt.status == http.StatusSeeOther && rec.Header().Get("Location") != "/login" {
			t.Errorf("%s: sent to %q, want /login", tt.name, rec.Header().Get("Location"))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); csp != contentSecurityPolicy || rec.Header().Get("Cache-Control") != "no-store" ||
			rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tt.name, rec.Header())
		}
	}
}
