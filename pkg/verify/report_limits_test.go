package verify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestReportSource(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:443":                     "192.0.2.1",
		"[::ffff:192.0.2.1]:443":            "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:1": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:1":               "2001:db8:1:3::/64",
		"[fe80::1%eth0]:1":                  "fe80::/64",
		"@":                                 "@", // a Unix socket's peer
	} {
		r := httptest.NewRequest("POST", "/v1/keys/report", nil)
		r.RemoteAddr = addr
		if got := source(r); got != want {
			t.Errorf("source(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestReportLimitsForgetTheLeastRecent: past reportSources, the source
// seen least recently is forgotten (a flood of new sources cannot keep a
// limited one's bucket), in constant time.
func TestReportLimitsForgetTheLeastRecent(t *testing.T) {
	s := &sourceLimits{global: rate.NewLimiter(rate.Inf, 0)}
	now := time.Unix(1_800_000_000, 0)
	for range ReportBurst {
		s.allow("flooder", now)
	}
	if s.allow("flooder", now) {
		t.Fatal("a source past its burst allowed")
	}
	for i := range reportSources - 1 {
		s.allow(fmt.Sprintf("other-%d", i), now)
	}
	s.allow("flooder", now) // seen again: the most recent
	s.allow("one-more", now)
	if len(s.m) != reportSources || s.recent.Len() != reportSources {
		t.Fatalf("%d sources followed (%d in order), want %d", len(s.m), s.recent.Len(), reportSources)
	}
	if _, ok := s.m["other-0"]; ok {
		t.Error("the least recently seen source was kept")
	}
	if s.allow("flooder", now) {
		t.Error("a limited source seen recently was forgotten")
	}
	for i := range reportSources {
		s.allow(fmt.Sprintf("new-%d", i), now)
	}
	if !s.allow("flooder", now) {
		t.Error("a source not seen among the last 4,096 still limited")
	}
}

// TestReportFloods: one subscriber's /64 is one source however many
// addresses it uses; sources that each stay within their limit are held
// to the global budget together; reports beyond MaxReportsInFlight wait
// for none; and verification goes on answering through all of it.
func TestReportFloods(t *testing.T) {
	f := newFixture(t)
	unknown, _ := issued(t, "shop", "never-indexed", nil)
	body := `{"key":"` + unknown + `"}`
	from := func(addr string) int {
		req := httptest.NewRequest("POST", "/v1/keys/report", strings.NewReader(body))
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		f.h.Routes().ServeHTTP(rec, req)
		return rec.Code
	}
	verifies := func() {
		t.Helper()
		if rec := f.do("POST", "/v1/keys/verify", `{"key":"`+f.valid+`","namespace":"shop"}`, nil); rec.Code != http.StatusOK ||
			!strings.Contains(rec.Body.String(), `"valid":true`) {
			t.Fatalf("a verification during the flood: %d %s", rec.Code, rec.Body.String())
		}
	}

	limited := 0
	for i := range 2 * ReportBurst {
		if from(fmt.Sprintf("[2001:db8:7:7::%x]:443", i+1)) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != ReportBurst {
		t.Errorf("%d of %d reports from addresses of one /64 refused, want %d: each address its own bucket", limited, 2*ReportBurst, ReportBurst)
	}
	if code := from("[2001:db8:7:8::1]:443"); code != http.StatusAccepted {
		t.Errorf("the next /64 during the flood: %d, want 202", code)
	}
	verifies()

	// Many sources, each within its limit: the global budget holds them.
	accepted := 0
	for i := range ReportGlobalBurst {
		if f.h.reportLimits.allow(fmt.Sprintf("198.51.100.%d/%d", i%250, i), f.h.now()) {
			accepted++
		}
	}
	if accepted == ReportGlobalBurst {
		t.Fatal("the global budget allowed its whole burst after the reports above")
	}
	if code := from("192.0.2.200:443"); code != http.StatusTooManyRequests {
		t.Errorf("a new source past the global budget: %d, want 429", code)
	}
	verifies()

	// Reports answered at once are bounded: one more waits for none.
	f.h.reportLimits = sourceLimits{global: rate.NewLimiter(rate.Inf, 0)}
	f.h.reportsInFlight.Store(MaxReportsInFlight)
	if code := from("192.0.2.201:443"); code != http.StatusTooManyRequests {
		t.Errorf("a report past %d at once: %d, want 429", MaxReportsInFlight, code)
	}
	f.h.reportsInFlight.Store(MaxReportsInFlight - 1)
	if code := from("192.0.2.202:443"); code != http.StatusAccepted {
		t.Errorf("a report within the bound: %d, want 202", code)
	}
	if n := f.h.reportsInFlight.Load(); n != MaxReportsInFlight-1 {
		t.Errorf("%d reports in flight after the answers, want %d", n, MaxReportsInFlight-1)
	}
	verifies()
}
