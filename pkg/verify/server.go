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
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Server serves a Handler on its own listener, with /healthz and /readyz,
// on every replica of the manager (not only the leader).
type Server struct {
	// Addr is the listen address, such as ":8090".
	Addr string
	// CertFile and KeyFile, when both set, serve TLS with that certificate,
	// reloaded when the files change.
	CertFile, KeyFile string
	// Handler answers the verification endpoints.
	Handler *Handler
	// Ready reports whether the index is complete; /readyz answers 503
	// until it is.
	Ready func() bool
	// Log receives the server's own errors.
	Log logr.Logger
}

// NeedLeaderElection is false: every replica verifies.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	mux := s.Handler.Routes()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.Ready != nil && !s.Ready() {
			http.Error(w, "the key index is not synced yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}

	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("verifier: listening on %s: %w", s.Addr, err)
	}
	if s.CertFile != "" || s.KeyFile != "" {
		cw, err := certwatcher.New(s.CertFile, s.KeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("verifier: loading the TLS certificate: %w", err)
		}
		go func() {
			if err := cw.Start(ctx); err != nil {
				s.Log.Error(err, "Certificate watcher stopped")
			}
		}()
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cw.GetCertificate})
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.Log.Info("Serving key verification", "address", ln.Addr().String(), "tls", s.CertFile != "")
	select {
	case err := <-errc:
		return fmt.Errorf("verifier: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
