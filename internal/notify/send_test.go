package notify

import (
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSend(t *testing.T) {
	secret := []byte("kwss_0123456789abcdef0123456789abcdef")
	e := FromHistory(key("kw_x"))[0]
	var got atomic.Value
	receiver := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != ContentType {
			http.Error(w, "content type", http.StatusUnsupportedMediaType)
			return
		}
		if err := Verify(body, r.Header.Get(SignatureHeader), secret, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got.Store(string(body))
	}
	tlsServer := httptest.NewTLSServer(http.HandlerFunc(receiver))
	defer tlsServer.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsServer.Certificate().Raw})
	s := &Sender{Timeout: 2 * time.Second}
	ctx := context.Background()

	if err := s.Send(ctx, tlsServer.URL, ca, e, [][]byte{secret}, time.Now()); err != nil {
		t.Fatalf("to a TLS receiver with its CA: %v", err)
	}
	if body, _ := got.Load().(string); !strings.Contains(body, e.ID) {
		t.Errorf("the receiver got %q", body)
	}
	// Attacks and failures.
	if err := s.Send(ctx, tlsServer.URL, nil, e, [][]byte{secret}, time.Now()); err == nil {
		t.Error("a receiver whose certificate no trusted authority signed was accepted")
	}
	if err := s.Send(ctx, tlsServer.URL, []byte("not PEM"), e, [][]byte{secret}, time.Now()); err == nil {
		t.Error("a CA bundle with no certificate was accepted")
	}
	if err := s.Send(ctx, tlsServer.URL, ca, e, [][]byte{[]byte("kwss_another_secret_of_enough_bytes__")}, time.Now()); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("signed with the wrong secret: %v, want the receiver's 401", err)
	}
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	if err := s.Send(ctx, redirect.URL, nil, e, [][]byte{secret}, time.Now()); err == nil || followed.Load() {
		t.Errorf("a redirect: %v, followed %v", err, followed.Load())
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer failing.Close()
	if err := s.Send(ctx, failing.URL, nil, e, [][]byte{secret}, time.Now()); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("a receiver answering 500: %v", err)
	}
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hanging.Close()
	defer close(release)
	quick := &Sender{Timeout: 200 * time.Millisecond}
	start := time.Now()
	if err := quick.Send(ctx, hanging.URL, nil, e, [][]byte{secret}, time.Now()); err == nil {
		t.Error("a receiver that never answers was taken as delivered")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hanging receiver held the sender %s", d)
	}
}
