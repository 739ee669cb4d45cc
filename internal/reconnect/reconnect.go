// Package reconnect makes an informer's lists and watches wait out an API
// server that cannot be reached, rather than fail.
//
// A reflector that fails backs off before it tries again, doubling from
// 800 ms up to 30 s (client-go does not let a shared informer choose
// otherwise). After an outage of twenty seconds it sleeps for up to half
// a minute once the API server is back, and the controller issues no key
// created meanwhile until it wakes. A list or watch made through Patient
// instead tries again every Every while the API server is unreachable (a
// refused or reset connection, a timeout, 503), for up to For, so that
// the reflector resumes within Every of the API server's return. Every
// other error, such as a refusal by RBAC, is returned at once.
package reconnect

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/watchlist"
)

const (
	// Every is how often a list or watch is tried again while the API
	// server cannot be reached.
	Every = 500 * time.Millisecond
	// For bounds how long one list or watch waits before it returns the
	// error (and the reflector backs off as it would have).
	For = 2 * time.Minute
)

// Patient wraps lw so that its lists and watches wait out an unreachable
// API server. failed, when set, is told of each attempt that could not
// reach it.
func Patient(lw toolscache.ListerWatcher, failed func(error)) toolscache.ListerWatcher {
	return &patient{lw: lw, ctx: toolscache.ToListerWatcherWithContext(lw), failed: failed, every: Every, limit: For}
}

type patient struct {
	lw           toolscache.ListerWatcher
	ctx          toolscache.ListerWatcherWithContext
	failed       func(error)
	every, limit time.Duration
}

func (p *patient) List(opts metav1.ListOptions) (runtime.Object, error) {
	return p.ListWithContext(context.Background(), opts)
}

func (p *patient) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return p.WatchWithContext(context.Background(), opts)
}

func (p *patient) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	return retry(ctx, p, func() (runtime.Object, error) { return p.ctx.ListWithContext(ctx, opts) })
}

func (p *patient) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return retry(ctx, p, func() (watch.Interface, error) { return p.ctx.WatchWithContext(ctx, opts) })
}

// IsWatchListSemanticsUnSupported passes on what the wrapped list-watch
// says, which the reflector asks before it streams its first list.
func (p *patient) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(p.lw)
}

func retry[T any](ctx context.Context, p *patient, call func() (T, error)) (T, error) {
	deadline := time.Now().Add(p.limit)
	for {
		v, err := call()
		if err == nil || !Unreachable(err) || !time.Now().Add(p.every).Before(deadline) {
			return v, err
		}
		if p.failed != nil {
			p.failed(err)
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(p.every):
		}
	}
}

// Unreachable reports whether err says that the API server could not be
// reached or is not serving yet, rather than that it refused the request.
func Unreachable(err error) bool {
	var netErr net.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, syscall.ECONNREFUSED), utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err),
		utilnet.IsProbableEOF(err), errors.As(err, &netErr):
		return true
	case apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return true
	}
	return false
}
