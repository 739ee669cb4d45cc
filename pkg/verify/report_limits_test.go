package verify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"keywarden.dev/keywarden/internal/limits"
)

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
		if f.h.reportLimits().Allow(fmt.Sprintf("198.51.100.%d/%d", i%250, i), f.h.now()) {
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
	f.h.reportLimiter = &limits.PerSource{Rate: rate.Inf, Sources: 1}
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
