package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ContentType is how a notification is sent: a structured-mode CloudEvent.
const ContentType = "application/cloudevents+json"

// DefaultTimeout bounds one delivery, from the connection to the answer.
const DefaultTimeout = 10 * time.Second

// Sender posts notifications to receivers. It keeps one HTTP client for
// each set of trusted authorities, so that connections are reused.
type Sender struct {
	// Timeout bounds one delivery; DefaultTimeout when zero.
	Timeout time.Duration

	mu      sync.Mutex
	clients map[[32]byte]*http.Client
}

// Send posts e to url, signed with secrets at now, and returns nil when
// the receiver answered 2xx. caBundle, when set, holds the only
// authorities trusted for an https url. Redirects are not followed: a
// receiver that moves is configured anew, not followed wherever an
// answer points.
func (s *Sender) Send(ctx context.Context, url string, caBundle []byte, e Event, secrets [][]byte, now time.Time) error {
	c, err := s.client(caBundle)
	if err != nil {
		return err
	}
	body, err := e.Body()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "keywarden")
	req.Header.Set(SignatureHeader, Sign(body, now, secrets...))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	// What the receiver says is read no further than needed to reuse the
	// connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return fmt.Errorf("the receiver answered %s, a redirect, which is not followed", resp.Status)
		}
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

// ErrCABundle: a caBundle holds no certificate.
var ErrCABundle = errors.New("notifications.caBundle holds no PEM certificate")

func (s *Sender) client(caBundle []byte) (*http.Client, error) {
	id := sha256.Sum256(caBundle)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caBundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			return nil, ErrCABundle
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.MaxIdleConnsPerHost = 4
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if s.clients == nil {
		s.clients = map[[32]byte]*http.Client{}
	}
	// A few classes have receivers; a class's bundle replaced leaves its
	// old client behind until the process ends, bounded here.
	if len(s.clients) >= 64 {
		clear(s.clients)
	}
	s.clients[id] = c
	return c, nil
}
