package verify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Server serves a Handler on its own listener, with /healthz and /readyz
// (503 until the Handler is ready), on every replica of the manager (not
// only the leader).
type Server struct {
	// Addr is the listen address, such as ":8090".
	Addr string
	// CertFile and KeyFile, when both set, serve TLS with that certificate,
	// reloaded when the files change.
	CertFile, KeyFile string
	// Handler answers the verification endpoints.
	Handler *Handler
	// Log receives the server's own errors.
	Log logr.Logger
}

// NeedLeaderElection is false: every replica verifies.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	srv, ln, cw, err := s.build()
	if err != nil {
		return err
	}
	if cw != nil {
		go func() {
			if err := cw.Start(ctx); err != nil {
				s.Log.Error(err, "Certificate watcher stopped")
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("verifier: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// shutdownTimeout bounds a graceful shutdown.
const shutdownTimeout = 10 * time.Second

// build listens on Addr and returns the HTTP server to serve on that
// listener; with TLS, the listener presents the certificate of the
// returned watcher, which must be started to follow changes of the files.
func (s *Server) build() (*http.Server, net.Listener, *certwatcher.CertWatcher, error) {
	mux := s.Handler.Routes()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := s.Handler.Answering(); !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second, // more than MaxReportBudget
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("verifier: listening on %s: %w", s.Addr, err)
	}
	var cw *certwatcher.CertWatcher
	if s.CertFile != "" || s.KeyFile != "" {
		if cw, err = certwatcher.New(s.CertFile, s.KeyFile); err != nil {
			_ = ln.Close()
			return nil, nil, nil, fmt.Errorf("verifier: loading the TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cw.GetCertificate})
	}
	s.Log.Info("Serving key verification", "address", ln.Addr().String(), "tls", cw != nil)
	return srv, ln, cw, nil
}

// AddTo runs the server in mgr from the moment mgr starts, before the
// index is filled, on every replica: a load balancer sees /readyz answer 503
// until the index is complete, not a refused connection, and a request
// that comes early is answered 503, never NOT_FOUND. It listens at once,
// so a taken address fails here and not once the index is complete.
func (s *Server) AddTo(mgr manager.Manager) error {
	srv, ln, cw, err := s.build()
	if err != nil {
		return err
	}
	if cw != nil {
		if err := mgr.Add(everyReplica(cw.Start)); err != nil {
			_ = ln.Close()
			return err
		}
	}
	if err := mgr.Add(&manager.Server{Name: "verifier", Server: srv, Listener: ln, ShutdownTimeout: ptr.To(shutdownTimeout)}); err != nil {
		_ = ln.Close()
		return err
	}
	return nil
}

// everyReplica is a runnable that runs on every replica, leader or not.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
