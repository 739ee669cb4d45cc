package options

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// TestServerOptionsScrape: a component's own scrape handler answers
// /metrics in place of the registry's, and every other path is left to
// the handler controller-runtime wraps; without one, nothing is wrapped
// on a plain endpoint, and a secure one keeps its authentication filter
// (which needs an API server: test/e2e's securedMetrics).
func TestServerOptionsScrape(t *testing.T) {
	answer := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) })
	}
	if o := (Metrics{BindAddress: ":0"}).ServerOptions(nil); o.FilterProvider != nil || o.SecureServing {
		t.Fatalf("a plain endpoint without a scrape handler: %+v", o)
	}
	if o := (Metrics{BindAddress: ":0", Secure: true}).ServerOptions(nil); o.FilterProvider == nil || !o.SecureServing {
		t.Fatalf("a secure endpoint without its filter: %+v", o)
	}

	o := Metrics{BindAddress: ":0"}.ServerOptions(answer("own"))
	if o.FilterProvider == nil {
		t.Fatal("no filter puts the scrape handler in place")
	}
	filter, err := o.FilterProvider(&rest.Config{}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	h, err := filter(logr.Discard(), answer("registry"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/metrics": "own", "/metrics/extra": "registry", "/other": "registry"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := rec.Body.String(); got != want {
			t.Errorf("%s answered by %q, want %q", path, got, want)
		}
	}
}
