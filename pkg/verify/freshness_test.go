package verify

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
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
	shop, billing := new(int), new(int) // two namespaces' watches
	f.delivered(shop)
	f.reached(true)
	step(time.Hour)
	want("a quiet watch is current however long nothing changes", 0)

	// Throttled or refused: every retry fails, silently to client-go.
	f.failed(shop)
	step(5 * time.Second)
	f.failed(shop)
	step(5 * time.Second)
	want("from the first failure, the API server answering all along", 10*time.Second)
	f.delivered(shop)
	want("listed again: current", 0)

	// A watch that opens and fails at once, over and over (an object no
	// client can decode): opening it is not enough.
	f.failed(shop)
	for range 10 {
		step(time.Second)
		f.opened(shop)
		step(time.Second)
		f.failed(shop)
	}
	want("a stream that fails as it opens stays stale from the first failure", 20*time.Second)
	// One that stays open, quiet, counts once it has for steadyWatch.
	f.opened(shop)
	step(steadyWatch - time.Second)
	want("opened again, not steady yet", 20*time.Second+steadyWatch-time.Second)
	step(time.Second)
	want("open and quiet for steadyWatch: working", 0)

	// One namespace's watch failing makes the index stale, whatever the
	// other's does.
	f.failed(billing)
	step(3 * time.Second)
	f.failed(shop)
	step(2 * time.Second)
	f.delivered(shop)
	want("the other namespace's watch working ends nothing", 5*time.Second)
	f.delivered(billing)
	want("both working", 0)

	// The API server does not answer: stale from the first unanswered
	// call, until one is answered; a watch's failure counts too, from
	// whichever came first.
	f.reached(false)
	step(2 * time.Second)
	f.reached(false)
	want("from the first unanswered call", 2*time.Second)
	f.failed(shop)
	step(time.Second)
	want("the earlier of the two", 3*time.Second)
	f.reached(true)
	want("answered again, but the watch has not delivered", time.Second)
	f.delivered(shop)
	want("both over", 0)
}

// TestFeedReportsEachCall: a list or watch that fails, as a throttled one
// does (client-go retries it without calling anyone), makes the index
// stale until the watch delivers something; a watch that merely opens
// does not end it.
func TestFeedReportsEachCall(t *testing.T) {
	now := t0
	f := &Freshness{Now: func() time.Time { return now }}
	throttled := apierrors.NewTooManyRequests("slow down", 1)
	var fail error
	lw := &reportedListWatch{fresh: f, lw: &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &keywardenv1alpha1.APIKeyList{}, fail
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			return watch.NewFake(), fail
		},
	}}
	var synced atomic.Bool
	st := &feedStore{index: NewIndex(), synced: &synced, fresh: f, watch: lw}
	fail = throttled
	if _, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{}); err == nil {
		t.Fatal("the error was lost")
	}
	now = now.Add(30 * time.Second)
	if _, err := lw.List(metav1.ListOptions{}); err == nil {
		t.Fatal("the error was lost")
	}
	if got := f.Staleness(); got != 30*time.Second {
		t.Fatalf("throttled for 30s: staleness %s", got)
	}
	fail = nil
	if _, err := lw.Watch(metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.Staleness(); got != 30*time.Second {
		t.Fatalf("a watch opened, nothing delivered yet: staleness %s", got)
	}
	if err := st.Bookmark("7"); err != nil {
		t.Fatal(err)
	}
	if got := f.Staleness(); got != 0 {
		t.Fatalf("a bookmark delivered: staleness %s", got)
	}
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
