package console

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

func TestSessions(t *testing.T) {
	s, err := newSessions()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v, err := s.start("token-a", "alice", now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v.ID, "token-a") || len(v.ID) < 40 {
		t.Errorf("the session id %q", v.ID)
	}
	if got, err := s.get(v.ID, now); err != nil || got.Token != "token-a" || got.User != "alice" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	for name, id := range map[string]string{"tampered": v.ID[:len(v.ID)-1] + "x", "empty": "", "unknown": strings.Repeat("A", 43)} {
		if _, err := s.get(id, now); err == nil {
			t.Errorf("a %s id found a session", name)
		}
	}
	if _, err := s.get(v.ID, now.Add(2*time.Hour)); err == nil {
		t.Error("an ended session was found")
	}
	w, _ := s.start("token-b", "bob", now.Add(time.Hour), now)
	if s.validCSRF(w.ID, s.csrf(v.ID)) || s.validCSRF(w.ID, "") || !s.validCSRF(w.ID, s.csrf(w.ID)) {
		t.Error("the form token is not bound to its session")
	}
	// Signed out: the cookie, copied before, opens nothing.
	s.end(w.ID)
	if _, err := s.get(w.ID, now); err == nil {
		t.Error("a session signed out from was found")
	}
}

func TestTokenExpiry(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	for token, want := range map[string]int64{jwt(`{"exp":1800000000}`): 1800000000, jwt(`{"sub":"x"}`): 0, "opaque-token": 0, jwt("not json"): 0} {
		if got := tokenExpiry(token); (want == 0 && !got.IsZero()) || (want != 0 && got.Unix() != want) {
			t.Errorf("tokenExpiry(%q) = %v, want %d", token, got, want)
		}
	}
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
	sess, _ := s.sess.start("token-a", "alice", time.Now().Add(time.Hour), time.Now())
	good := sess.ID
	form := url.Values{"csrf": {"wrong"}}.Encode()
	tests := []struct {
		name, method, path, cookie, body string
		header                           map[string]string
		status                           int
		want                             string
	}{
		{"no session", "GET", "/keys", "", "", nil, http.StatusSeeOther, ""},
		{"a forged cookie", "GET", "/keys", good[:len(good)-2] + "AA", "", nil, http.StatusSeeOther, ""},
		{"a cross-site post", "POST", "/keys/team/k/revoke", good, url.Values{"csrf": {s.sess.csrf(good)}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"a post from another origin", "POST", "/keys/team/k/revoke", good, url.Values{"csrf": {s.sess.csrf(good)}}.Encode(),
			map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "sent from another site"},
		{"a post without its form token", "POST", "/keys/team/k/revoke", good, form, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusForbidden, "no valid form token"},
		{"a bulk deletion from another site", "POST", "/keys/selected/delete", good, url.Values{"csrf": {s.sess.csrf(good)}, "key": {"team/k/uid"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"a deletion without its form token", "POST", "/keys/team/k/delete", good, url.Values{"uid": {"x"}}.Encode(), map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusForbidden, "no valid form token"},
		{"a bulk action that is not one", "POST", "/keys/selected", good, url.Values{"csrf": {s.sess.csrf(good)}, "action": {"nuke"}, "key": {"team/k"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Choose Revoke or Delete"},
		{"a bulk action on no key", "POST", "/keys/selected", good, url.Values{"csrf": {s.sess.csrf(good)}, "action": {"delete"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "No key is ticked"},
		{"a bulk action on too many keys", "POST", "/keys/selected", good, url.Values{"csrf": {s.sess.csrf(good)}, "action": {"delete"}, "key": manyKeys(maxSelected + 1)}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "act on at most 100 at a time"},
		{"a bulk confirmation of too many keys", "POST", "/keys/selected/revoke", good, url.Values{"csrf": {s.sess.csrf(good)}, "key": manyKeys(maxSelected + 1)}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Confirm between 1 and 100 keys"},
		{"a shared secret's rotation from another site", "POST", "/classes/web/shared-secret/rotate", good, url.Values{"csrf": {s.sess.csrf(good)}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"a shared secret shown without its form token", "POST", "/classes/web/shared-secret/show", good, url.Values{"x": {"y"}}.Encode(), map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusForbidden, "no valid form token"},
		{"a shared secret read by a link", "GET", "/classes/web/shared-secret/show", good, "", nil, http.StatusMethodNotAllowed, ""},
		{"a key that would expire before it exists", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"2020-01-31"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: 2020-01-31 00:00 UTC is in the past: choose a later time, or a lifetime (such as 30d)"},
		{"a key past its expiry in another zone", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"2020-01-31T18:30"}, "zone": {"Asia/Tokyo"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: 2020-01-31 18:30 JST is in the past: choose a later time, or a lifetime (such as 30d)"},
		{"an expiry in a zone that is not one", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"2030-01-31T18:30"}, "zone": {"Mars/Olympus"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: &#34;Mars/Olympus&#34; is not a time zone: write a name such as Europe/Berlin, America/New_York or UTC"},
		{"an expiry in a zone named by a path", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"2030-01-31T18:30"}, "zone": {"../../../../etc/passwd"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: &#34;../../../../etc/passwd&#34; is not a time zone"},
		{"an expiry in the server's own zone", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"2030-01-31T18:30"}, "zone": {"Local"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: &#34;Local&#34; is not a time zone"},
		{"an expiry that is not a time", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "expiresAt": {"next week"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Expires at: &#34;next week&#34; is not a date and time (2027-01-31T18:00, or 2027-01-31 for midnight)"},
		{"a key without a role", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "step": {"create"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Choose a role: a key gets only what its role grants."},
		{"a lifetime and an expiry", "POST", "/keys/new", good, url.Values{"csrf": {s.sess.csrf(good)}, "namespace": {"team"}, "name": {"k"},
			"displayName": {"K"}, "owner": {"a"}, "role": {"r"}, "lifetime": {"30d"}, "expiresAt": {"2030-01-31"}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest, "Give a lifetime or an expiry, not both."},
		{"a sign-in from another site", "POST", "/login", "", url.Values{"token": {"x"}}.Encode(), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "sent from another site"},
		{"the sign-in page", "GET", "/login", "", "", nil, http.StatusOK, "Bearer token"},
		// What the sign-in page says of the token is what the code does
		// (see sessions): kept on the server, the cookie an id.
		{"the sign-in page on the token's keeping", "GET", "/login", "", "", nil, http.StatusOK, "The token stays in this console's memory, on the server, for this\nsession only"},
		{"the sign-in page on a session's length", "GET", "/login", "", "", nil, http.StatusOK, "after at most 8 hours; a restart"},
		{"a proxy's header, not trusted", "GET", "/keys", "", "", map[string]string{"Authorization": "Bearer token-z"}, http.StatusSeeOther, ""},
		{"a form that is not the console's", "POST", "/login", "", "token=x", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, http.StatusUnsupportedMediaType, "only its own forms"},
		{"a form too large", "POST", "/login", "", "token=" + strings.Repeat("x", 100<<10), nil, http.StatusUnauthorized, "Paste a Kubernetes bearer token"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "http://console.example"+tt.path, strings.NewReader(tt.body))
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if tt.header["Content-Type"] != "" {
			req.Header.Set("Content-Type", tt.header["Content-Type"])
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

func manyKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("team/k-%d/uid", i)
	}
	return out
}
