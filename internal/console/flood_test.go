package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// TestSessionsBounded: one person's sign-ins end only their own oldest
// sessions; once the console holds as many as it may, one session each,
// a sign-in is refused and no one's session is ended for it; held by
// identities with many sessions each, they give up theirs.
func TestSessionsBounded(t *testing.T) {
	s, err := newSessions()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bob, _ := s.start("token-b", "bob", now.Add(time.Hour), now)
	var alice []*session
	for i := range maxSessionsPerUser + 5 {
		v, err := s.start(fmt.Sprintf("token-a%d", i), "alice", now.Add(time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		alice = append(alice, v)
	}
	for i, v := range alice {
		_, err := s.get(v.ID, now)
		if kept := i >= 5; kept != (err == nil) {
			t.Errorf("alice's session %d kept: %v, want %v", i, err == nil, kept)
		}
	}
	if _, err := s.get(bob.ID, now); err != nil {
		t.Error("alice's sign-ins ended bob's session")
	}
	if n := len(s.byUser["alice"]); n != maxSessionsPerUser {
		t.Errorf("alice holds %d sessions, want %d", n, maxSessionsPerUser)
	}

	// Alice signs out everywhere; fill the console with other people's
	// sessions, one each (one of them short).
	for _, v := range alice {
		s.end(v.ID)
	}
	for i := len(s.byID); i < maxSessions; i++ {
		expires := now.Add(time.Hour)
		if i == maxSessions-1 {
			expires = now.Add(time.Minute)
		}
		if _, err := s.start("t", fmt.Sprintf("user-%d", i), expires, now); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	if _, err := s.start("token-m", "mallory", now.Add(time.Hour), now); !errors.Is(err, errTooManySessions) {
		t.Fatalf("a sign-in past %d sessions: %v, want refused", maxSessions, err)
	}
	if _, err := s.get(bob.ID, now); err != nil || len(s.byID) != maxSessions {
		t.Errorf("a refused sign-in ended a session: bob's %v, %d sessions", err, len(s.byID))
	}
	// Once one ends, there is room again.
	later := now.Add(2 * time.Minute)
	if _, err := s.start("token-m", "mallory", later.Add(time.Hour), later); err != nil {
		t.Errorf("a sign-in once a session ended: %v", err)
	}
	s.end(bob.ID)
	if _, ok := s.byUser["bob"]; ok {
		t.Error("bob's sessions are still listed after he signed out")
	}

	// Identities minted to fill the console (twenty sessions each) give
	// up their own sessions to a person holding none; that person's
	// sessions are not taken by the next identity of the flood.
	f, _ := newSessions()
	for i := range maxSessions {
		if _, err := f.start("t", fmt.Sprintf("minted-%d", i/maxSessionsPerUser), now.Add(time.Hour), now); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	carol, err := f.start("token-c", "carol", now.Add(time.Hour), now)
	if err != nil {
		t.Fatalf("a person signing in to a console full of minted identities: %v", err)
	}
	if _, err := f.start("t", "minted-0", now.Add(time.Hour), now); err != nil {
		t.Fatalf("a minted identity signing in again: %v", err)
	}
	if _, err := f.get(carol.ID, now); err != nil || len(f.byID) != maxSessions {
		t.Errorf("carol's session after the flood signed in again: %v, %d sessions", err, len(f.byID))
	}
}

// TestSessionsOfOnePersonExpire: a person signing in again, with an
// expired session (another browser's) before a live one, gets a session
// and keeps the live one.
func TestSessionsOfOnePersonExpire(t *testing.T) {
	s, err := newSessions()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.start("t1", "alice", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	live, _ := s.start("t2", "alice", now.Add(time.Hour), now)
	later := now.Add(2 * time.Minute)
	again, err := s.start("t3", "alice", later.Add(time.Hour), later)
	if err != nil || again == nil {
		t.Fatalf("signing in again: %v", err)
	}
	if _, err := s.get(live.ID, later); err != nil {
		t.Error("the live session ended")
	}
	if n := len(s.byUser["alice"]); n != 2 {
		t.Errorf("alice holds %d sessions, want 2", n)
	}
}

// TestSignInFlood: sign-ins are limited by address (an IPv6 /64 is one)
// and in all, before the API server is asked; a signed-in person goes on
// using the console throughout.
func TestSignInFlood(t *testing.T) {
	s, err := New(Options{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	sess, _ := s.sess.start("token-a", "alice", time.Now().Add(time.Hour), time.Now())
	signIn := func(addr string) int {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {"not-a-real-token"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests && (rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "Too many sign-ins")) {
			t.Errorf("a refused sign-in without its reason: %v %s", rec.Header(), rec.Body)
		}
		return rec.Code
	}
	stillSignedIn := func() {
		t.Helper()
		req := httptest.NewRequest("GET", "/keys", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: sess.ID})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests || rec.Code == http.StatusSeeOther {
			t.Fatalf("a signed-in person during the flood: %d", rec.Code)
		}
	}

	limited := 0
	for i := range 2 * signInBurst {
		if signIn(fmt.Sprintf("[2001:db8:9:9::%x]:5000", i+1)) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != signInBurst {
		t.Errorf("%d of %d sign-ins from one /64 refused, want %d", limited, 2*signInBurst, signInBurst)
	}
	if code := signIn("192.0.2.1:5000"); code == http.StatusTooManyRequests {
		t.Error("another address held back by one address's flood")
	}
	stillSignedIn()

	// Behind a trusted proxy, each client is limited by its own address.
	proxied, err := New(Options{Config: &rest.Config{Host: "https://127.0.0.1:1"}, Log: logr.Discard(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	through := func(client string) int {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {"not-a-real-token"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", client)
		req.RemoteAddr = "10.0.0.9:443"
		rec := httptest.NewRecorder()
		proxied.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for range 2 * signInBurst {
		through("198.51.100.77")
	}
	if code := through("198.51.100.78"); code == http.StatusTooManyRequests {
		t.Error("a client behind the trusted proxy held back by another client's flood through it")
	}
	if code := through("198.51.100.77"); code != http.StatusTooManyRequests {
		t.Errorf("the flooding client behind the trusted proxy: %d, want 429", code)
	}

	limited = 0
	for i := range signInGlobalBurst {
		if signIn(fmt.Sprintf("198.51.100.%d:5000", i+1)) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("sign-ins from many addresses, each within its limit, not held to the global limit")
	}
	stillSignedIn()
}
