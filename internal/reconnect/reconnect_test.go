package reconnect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// unreachable is the error a client gets from an address nothing listens
// on: a real refused connection.
func unreachable(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, err = http.Get("http://" + addr + "/apis")
	if err == nil {
		t.Fatal("a closed port answered")
	}
	return err
}

func TestUnreachable(t *testing.T) {
	gr := schema.GroupResource{Group: "keywarden.dev", Resource: "apikeys"}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"a refused connection", unreachable(t), true},
		{"a refused connection, wrapped", fmt.Errorf("listing: %w", unreachable(t)), true},
		{"503 while the API server starts", apierrors.NewServiceUnavailable("starting"), true},
		{"a server timeout", apierrors.NewServerTimeout(gr, "list", 1), true},
		{"forbidden by RBAC: at once", apierrors.NewForbidden(gr, "", errors.New("no")), false},
		{"gone (a relist is due): at once", apierrors.NewResourceExpired("too old"), false},
		{"throttled (client-go retries it itself)", apierrors.NewTooManyRequests("slow down", 1), false},
		{"no error", nil, false},
	} {
		if got := Unreachable(tt.err); got != tt.want {
			t.Errorf("%s: Unreachable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// flaky fails its first calls as an unreachable API server would, then
// answers; or fails with err every time.
type flaky struct {
	down  int32
	err   error
	calls atomic.Int32
}

func (f *flaky) call() error {
	n := f.calls.Add(1)
	if f.err != nil {
		return f.err
	}
	if n <= f.down {
		return apierrors.NewServiceUnavailable("the API server is not serving yet")
	}
	return nil
}

func (f *flaky) List(metav1.ListOptions) (runtime.Object, error) {
	if err := f.call(); err != nil {
		return nil, err
	}
	return &metav1.List{}, nil
}

func (f *flaky) Watch(metav1.ListOptions) (watch.Interface, error) {
	if err := f.call(); err != nil {
		return nil, err
	}
	return watch.NewEmptyWatch(), nil
}

func (f *flaky) IsWatchListSemanticsUnSupported() bool { return true }

func patientFor(lw toolscache.ListerWatcher, failed func(error), limit time.Duration) *patient {
	p := Patient(lw, failed).(*patient)
	p.every, p.limit = 10*time.Millisecond, limit
	return p
}

func TestPatientWaitsOutAnUnreachableAPIServer(t *testing.T) {
	lw := &flaky{down: 5}
	var told atomic.Int32
	p := patientFor(lw, func(error) { told.Add(1) }, time.Minute)
	if _, err := p.ListWithContext(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatalf("a list through five failures: %v", err)
	}
	if got := lw.calls.Load(); got != 6 {
		t.Errorf("%d calls, want 6: five failed and the one that answered", got)
	}
	if told.Load() != 5 {
		t.Errorf("told of %d failures, want 5", told.Load())
	}
	w, err := p.WatchWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("a watch once the API server answers: %v", err)
	}
	w.Stop()
	if !p.IsWatchListSemanticsUnSupported() {
		t.Error("what the wrapped list-watch says of watch-list semantics is lost")
	}
}

func TestPatientReturnsOtherErrorsAtOnce(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "apikeys"}, "", errors.New("no"))
	lw := &flaky{err: forbidden}
	p := patientFor(lw, nil, time.Minute)
	if _, err := p.ListWithContext(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v, want the refusal", err)
	}
	if lw.calls.Load() != 1 {
		t.Errorf("a refusal was tried %d times", lw.calls.Load())
	}
}

func TestPatientGivesUpAtItsLimitAndOnCancel(t *testing.T) {
	lw := &flaky{down: 1 << 30}
	p := patientFor(lw, nil, 100*time.Millisecond)
	if _, err := p.ListWithContext(context.Background(), metav1.ListOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("past its limit: err = %v, want the last failure", err)
	}
	if n := lw.calls.Load(); n < 3 || n > 12 {
		t.Errorf("%d calls within a 100 ms limit at 10 ms apart", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p = patientFor(&flaky{down: 1 << 30}, nil, time.Hour)
	done := make(chan error, 1)
	go func() { _, err := p.WatchWithContext(ctx, metav1.ListOptions{}); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled watch answered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled watch kept waiting")
	}
}
