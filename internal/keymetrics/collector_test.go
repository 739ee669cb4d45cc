package keymetrics

import (
	"compress/gzip"
	"context"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func key(ns, name, class string, phase keywardenv1alpha1.APIKeyPhase, f ...func(*keywardenv1alpha1.APIKey)) keywardenv1alpha1.APIKey {
	k := keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	k.Spec.ClassName = class
	k.Status.Phase = phase
	for _, f := range f {
		f(&k)
	}
	return k
}

func at(sec int64) *metav1.Time { return &metav1.Time{Time: time.Unix(sec, 0)} }

func stalled(reason string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		k.Status.Conditions = append(k.Status.Conditions, metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: reason})
	}
}

// scraped is what a scrape of the collector's handler answers, parsed as
// Prometheus parses it, with the collector registered in the registry the
// handler gathers.
func scraped(t *testing.T, c *Collector) prometheus.Gatherer {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	h := c.Handler(reg)
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("scrape answered %d, Content-Encoding %q", rec.Code, rec.Header().Get("Content-Encoding"))
		}
		gz, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		byName, err := parser.TextToMetricFamilies(gz)
		if err != nil {
			t.Fatalf("parsing the scrape: %v", err)
		}
		// In the order the client library gathers them, which the
		// comparison expects.
		var out []*dto.MetricFamily
		for _, f := range byName {
			slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return strings.Compare(a.String(), b.String()) })
			out = append(out, f)
		}
		slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		return out, nil
	})
}

func TestCollector(t *testing.T) {
	issued := func(k *keywardenv1alpha1.APIKey) { k.Status.IssuedAt, k.Status.ExpiresAt = at(1000), at(5000) }
	tests := []struct {
		name   string
		keys   []keywardenv1alpha1.APIKey
		perKey bool
		want   string
	}{{
		name: "no keys, no series",
		want: "",
	}, {
		name: "counts by namespace, class and phase; a key not seen yet is Pending",
		keys: []keywardenv1alpha1.APIKey{
			key("a", "k1", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "k2", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "k3", "", ""),
			key("b", "k1", "gold", keywardenv1alpha1.PhaseRefused),
		},
		want: `
# HELP keywarden_apikeys APIKeys by namespace, class and phase (Pending before the controller has seen a key).
# TYPE keywarden_apikeys gauge
keywarden_apikeys{class="",namespace="a",phase="Pending"} 1
keywarden_apikeys{class="gold",namespace="a",phase="Active"} 2
keywarden_apikeys{class="gold",namespace="b",phase="Refused"} 1
`,
	}, {
		name: "stalled keys by reason",
		keys: []keywardenv1alpha1.APIKey{
			key("a", "k1", "", keywardenv1alpha1.PhaseExpired, stalled("Expired")),
			key("a", "k2", "", keywardenv1alpha1.PhaseExpired, stalled("Expired")),
			key("a", "k3", "", keywardenv1alpha1.PhaseActive, stalled("RoleNotAllowed")),
			key("a", "k4", "", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) {
				k.Status.Conditions = []metav1.Condition{{Type: "Stalled", Status: metav1.ConditionFalse, Reason: "X"}}
			}),
		},
		want: `
# HELP keywarden_apikeys_stalled APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.
# TYPE keywarden_apikeys_stalled gauge
keywarden_apikeys_stalled{class="",namespace="a",reason="Expired"} 2
keywarden_apikeys_stalled{class="",namespace="a",reason="RoleNotAllowed"} 1
`,
	}, {
		name:   "per key: phase, issuance, expiry, and last use of tracked keys only (0 never used)",
		perKey: true,
		keys: []keywardenv1alpha1.APIKey{
			key("a", "used", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) {
				k.Spec.TrackLastUsed, k.Status.LastUsedAt = true, at(3000)
			}),
			key("a", "unused", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true }),
			key("a", "untracked", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "forever", "", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) { k.Status.IssuedAt = at(1000) }),
			key("a", "waiting", "", keywardenv1alpha1.PhasePending),
		},
		want: `
# HELP keywarden_apikey_expiration_timestamp_seconds When each APIKey expires, in Unix seconds; absent for a key that never expires or is not issued yet.
# TYPE keywarden_apikey_expiration_timestamp_seconds gauge
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="untracked",namespace="a"} 5000
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="unused",namespace="a"} 5000
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="used",namespace="a"} 5000
# HELP keywarden_apikey_issued_timestamp_seconds When each issued APIKey was first issued, in Unix seconds.
# TYPE keywarden_apikey_issued_timestamp_seconds gauge
keywarden_apikey_issued_timestamp_seconds{class="",name="forever",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="untracked",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="unused",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="used",namespace="a"} 1000
# HELP keywarden_apikey_last_used_timestamp_seconds When each APIKey with trackLastUsed was last used, in Unix seconds; 0 for one never used. Absent for keys not tracked.
# TYPE keywarden_apikey_last_used_timestamp_seconds gauge
keywarden_apikey_last_used_timestamp_seconds{class="gold",name="unused",namespace="a"} 0
keywarden_apikey_last_used_timestamp_seconds{class="gold",name="used",namespace="a"} 3000
# HELP keywarden_apikey_phase 1 for each APIKey, labelled with its phase.
# TYPE keywarden_apikey_phase gauge
keywarden_apikey_phase{class="",name="forever",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="",name="waiting",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="gold",name="untracked",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="gold",name="unused",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="gold",name="used",namespace="a",phase="Active"} 1
`,
	}, {
		name:   "per-key series off: none of them, whatever the keys",
		perKey: false,
		keys: []keywardenv1alpha1.APIKey{key("a", "used", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) {
			k.Spec.TrackLastUsed, k.Status.LastUsedAt = true, at(3000)
		})},
		want: "",
	}}
	perKeyNames := []string{"keywarden_apikey_phase", "keywarden_apikey_issued_timestamp_seconds",
		"keywarden_apikey_expiration_timestamp_seconds", "keywarden_apikey_last_used_timestamp_seconds"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{PerKey: tt.perKey}
			c.SetClass("gold", true)
			for i := range tt.keys {
				c.Set(&tt.keys[i])
			}
			// Each case looks at the metrics its text names; the per-key
			// ones are always looked at, so that "none" is checked too.
			names := perKeyNames
			for _, n := range []string{"keywarden_apikeys", "keywarden_apikeys_stalled"} {
				if strings.Contains(tt.want, "# TYPE "+n+" ") {
					names = append(names, n)
				}
			}
			if err := testutil.GatherAndCompare(scraped(t, c), strings.NewReader(tt.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCollectorClassLabel: a key is labelled with the class it was issued
// under, or the existing class its spec names; the free text of a spec
// that names no class never becomes a label.
func TestCollectorClassLabel(t *testing.T) {
	c := &Collector{PerKey: true}
	c.SetClass("gold", true)
	c.SetClass("gone", true)
	c.SetClass("gone", false)
	keys := []keywardenv1alpha1.APIKey{
		key("a", "issued", "whatever", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) { k.Status.ClassName = "silver" }),
		key("a", "waiting", "gold", keywardenv1alpha1.PhaseRefused),
		key("a", "made-up", "x-9f8e7d6c5b4a", keywardenv1alpha1.PhasePending, stalled("ClassNotFound")),
		key("a", "deleted-class", "gone", keywardenv1alpha1.PhasePending, stalled("ClassNotFound")),
	}
	for i := range keys {
		c.Set(&keys[i])
	}
	c.Set(&keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "removed"}})
	c.Remove("a", "removed")
	want := `
# HELP keywarden_apikey_phase 1 for each APIKey, labelled with its phase.
# TYPE keywarden_apikey_phase gauge
keywarden_apikey_phase{class="",name="deleted-class",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="",name="made-up",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="gold",name="waiting",namespace="a",phase="Refused"} 1
keywarden_apikey_phase{class="silver",name="issued",namespace="a",phase="Active"} 1
# HELP keywarden_apikeys_stalled APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.
# TYPE keywarden_apikeys_stalled gauge
keywarden_apikeys_stalled{class="",namespace="a",reason="ClassNotFound"} 2
`
	if err := testutil.GatherAndCompare(scraped(t, c), strings.NewReader(want), "keywarden_apikey_phase", "keywarden_apikeys_stalled"); err != nil {
		t.Error(err)
	}
	c.Reset()
	if n, err := testutil.GatherAndCount(scraped(t, c)); err != nil || n != 0 {
		t.Errorf("%d series after Reset (%v), want none", n, err)
	}
}

// TestHandlerLabelValues: whatever a key's labels hold, a scrape parses
// and each label reads back as it was; no value can end its series and
// start another (the class comes from status, which whoever may write
// APIKeys' status sets).
func TestHandlerLabelValues(t *testing.T) {
	c := &Collector{PerKey: true}
	classes := []string{
		"plain",
		"quote\"} 1\nkeywarden_forged{a=\"b\"} 1\n# TYPE x gauge",
		`back\slash\`,
		"line\nbreak",
		"bad\xffutf8",
		"ünïcode",
	}
	for i, class := range classes {
		k := key("a", "k"+string(rune('0'+i)), "", keywardenv1alpha1.PhaseActive)
		k.Status.ClassName = class
		c.Set(&k)
	}
	families, err := scraped(t, c).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names, got []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetName() != "keywarden_apikey_phase" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" {
					got = append(got, l.GetValue())
				}
			}
		}
	}
	slices.Sort(names)
	if want := []string{"keywarden_apikey_phase", "keywarden_apikeys"}; !slices.Equal(names, want) {
		t.Errorf("families %q, want %q", names, want)
	}
	want := slices.Clone(classes)
	want[4] = "bad\uFFFDutf8"
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("class labels %q, want %q", got, want)
	}
}

// TestHandlerFormat: plain text unless gzip is accepted; the gatherer's
// error answers 500 and no partial scrape.
func TestHandlerFormat(t *testing.T) {
	c := &Collector{PerKey: true}
	k := key("a", "k", "", keywardenv1alpha1.PhaseActive)
	c.Set(&k)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	for _, tt := range []struct {
		accept string
		gzip   bool
	}{{"", false}, {"gzip", true}, {"deflate, gzip;q=0.5", true}, {"GZIP", true}, {"gzip;q=0", false}, {"gzip; q=0.000", false}, {"identity", false}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		if tt.accept != "" {
			req.Header.Set("Accept-Encoding", tt.accept)
		}
		c.Handler(reg).ServeHTTP(rec, req)
		var body io.Reader = rec.Body
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tt.gzip {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tt.accept, got, tt.gzip)
		} else if got {
			gz, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = gz
		}
		text, _ := io.ReadAll(body)
		if !strings.Contains(string(text), `keywarden_apikey_phase{class="",name="k",namespace="a",phase="Active"} 1`+"\n") ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Errorf("Accept-Encoding %q: %s\n%s", tt.accept, rec.Header().Get("Content-Type"), text)
		}
	}

	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return nil, io.ErrUnexpectedEOF
	})
	rec := httptest.NewRecorder()
	c.Handler(failing).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "keywarden_apikey_phase") {
		t.Errorf("a failed gathering answered %d:\n%s", rec.Code, rec.Body.String())
	}
}

// TestHandlerScrapesInTurn: no more than maxScrapes scrapes are answered
// at once; one that ends before its turn is answered 503.
func TestHandlerScrapesInTurn(t *testing.T) {
	c := &Collector{PerKey: true}
	release := make(chan struct{})
	inside := make(chan struct{}, 8)
	slow := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		inside <- struct{}{}
		<-release
		return nil, nil
	})
	h := c.Handler(slow)
	done := make(chan int, maxScrapes)
	for range maxScrapes {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			done <- rec.Code
		}()
	}
	for range maxScrapes {
		<-inside
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil).WithContext(ctx))
	if rec.Code != 503 || len(inside) != 0 {
		t.Errorf("a scrape past %d at once: %d, %d more inside", maxScrapes, rec.Code, len(inside))
	}
	close(release)
	for range maxScrapes {
		if code := <-done; code != 200 {
			t.Errorf("a scrape in its turn: %d", code)
		}
	}
}
