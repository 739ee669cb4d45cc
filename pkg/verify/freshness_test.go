package verify

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := t0
	f := &Freshness{Now: func() time.Time { return now }}
	step := func(d time.Duration) { now = now.Add(d) }
	want := func(what string, d time.Duration) {
		t.Helper()
		if got := f.Staleness(); got != d {
			t.Fatalf("%s: staleness %s, want %s", what, got, d)
		}
	}
	f.heard("100")
	step(time.Hour)
	want("a quiet watch is current however long nothing changes", 0)
	f.failed("100")
	step(5 * time.Second)
	f.failed("100")
	step(5 * time.Second)
	want("from the first failure", 10*time.Second)
	f.heard("100")
	want("the same resource version is nothing heard", 10*time.Second)
	f.heard("101")
	want("a new resource version: current again", 0)
	step(time.Minute)
	f.failed("100")
	step(3 * time.Second)
	want("a later failure counts from itself", 3*time.Second)
	f.heard("102")
	want("a version past the failure's ends it", 0)
	// The version moved before the failure, within one reading: the
	// failure stands until the version moves past it.
	f.heard("103")
	f.failed("104")
	step(time.Second)
	f.heard("104")
	want("the version of the failure itself ends nothing", time.Second)
	f.heard("105")

	// The API server does not answer: stale from the first unanswered
	// call, until one is answered; the watch's own failure counts too,
	// from whichever came first.
	f.reached(false)
	step(2 * time.Second)
	f.reached(false)
	want("from the first unanswered call", 2*time.Second)
	f.failed("100")
	step(time.Second)
	want("the earlier of the two", 3*time.Second)
	f.reached(true)
	want("answered again, but the watch has not been heard since it failed", time.Second)
	f.heard("103")
	want("both over", 0)
}

func TestVerificationRefusesAStaleIndex(t *testing.T) {
	f := newFixture(t)
	stale := time.Duration(0)
	f.h.Staleness, f.h.MaxStaleness = func() time.Duration { return stale }, 30*time.Second
	verify := func() (int, string) {
		rec := f.do("POST", "/v1/keys/verify", `{"key":"`+f.valid+`"}`, nil)
		return rec.Code, rec.Body.String()
	}
	for _, tt := range []struct {
		stale time.Duration
		want  int
	}{{0, http.StatusOK}, {30 * time.Second, http.StatusOK}, {31 * time.Second, http.StatusServiceUnavailable}} {
		stale = tt.stale
		code, body := verify()
		if code != tt.want {
			t.Errorf("%s stale: %d %s, want %d", tt.stale, code, body, tt.want)
		}
		if code == http.StatusServiceUnavailable && !strings.Contains(body, "not been known current for 31s") {
			t.Errorf("the 503 does not say how stale: %s", body)
		}
		authz := f.do("GET", "/v1/authz", "", map[string]string{"X-API-Key": f.valid})
		if authz.Code != tt.want {
			t.Errorf("authz %s stale: %d, want %d", tt.stale, authz.Code, tt.want)
		}
	}
	f.h.MaxStaleness = 0
	if code, _ := verify(); code != http.StatusOK {
		t.Errorf("with no maximum, a stale index still answers: %d", code)
	}
}
