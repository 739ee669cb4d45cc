package webhookcert

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestRotatorDefaultsAndLoop follows a rotator with its defaults on a
// fake clock: certificates valid for a year, checked every hour, renewed
// 30 days before they expire.
func TestRotatorDefaultsAndLoop(t *testing.T) {
	ctx := context.Background()
	fc := clocktesting.NewFakeClock(t0)
	secretName := types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-webhook-cert"}
	var checks atomic.Int32 // reads of the Secret: one a check
	c := fake.NewClientBuilder().
		WithObjects(&admissionv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "keywarden"},
			Webhooks:   []admissionv1.ValidatingWebhook{{Name: "vapikey.keywarden.dev"}},
		}).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if key == secretName {
				checks.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	r := &Rotator{Client: c, Secret: secretName, WebhookConfig: "keywarden", Names: []string{"keywarden-webhook-service.keywarden-system.svc"},
		CertDir: t.TempDir(), Clock: fc, Log: logr.Discard()}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	stored := func() bundle {
		t.Helper()
		s := &corev1.Secret{}
		if err := c.Get(ctx, secretName, s); err != nil {
			t.Fatal(err)
		}
		return fromData(s.Data)
	}
	notAfter := func(pemCert []byte) time.Time {
		t.Helper()
		block, _ := pem.Decode(pemCert)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert.NotAfter
	}
	secretState := func() state {
		t.Helper()
		s := &corev1.Secret{}
		if err := c.Get(ctx, secretName, s); err != nil {
			t.Fatal(err)
		}
		return stateFrom(s.Data)
	}
	first := stored()
	year := 365 * 24 * time.Hour
	if got := notAfter(first.cert); !got.Equal(t0.Add(year)) {
		t.Errorf("serving certificate valid until %s, want a year", got)
	}
	if got := notAfter(first.caCert); !got.Equal(t0.Add(year)) {
		t.Errorf("CA valid until %s, want a year", got)
	}

	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Start(loopCtx) }()
	waitFor(t, "the loop's ticker", fc.HasWaiters)

	// step moves the clock and waits for the check it triggers, if any.
	step := func(d time.Duration, wantCheck bool) {
		t.Helper()
		before := checks.Load()
		fc.Step(d)
		if wantCheck {
			waitFor(t, "a check", func() bool { return checks.Load() > before })
			return
		}
		time.Sleep(200 * time.Millisecond)
		if checks.Load() != before {
			t.Fatalf("a check %s after the last, before the hour was up", d)
		}
	}
	step(59*time.Minute, false)
	step(time.Minute, true)

	// 334 days in: 31 days left, outside the 30-day window.
	fc.SetTime(t0.Add(334 * 24 * time.Hour))
	step(time.Hour, true)
	if !stored().equal(first) {
		t.Fatal("renewed 31 days before expiry")
	}
	// 336 days in: 29 days left. The check the jump of the clock wakes
	// (its hourly timer is long past) prepares the renewal, and the one
	// two hours later serves it. The clock moves only once that check has
	// run, so that it reads the time the renewal is prepared at.
	before := checks.Load()
	fc.SetTime(t0.Add(336 * 24 * time.Hour))
	waitFor(t, "the check the clock's jump wakes", func() bool { return checks.Load() > before })
	prepared := fc.Now()
	waitFor(t, "the renewal to be prepared", func() bool { return secretState().next != nil })
	if !stored().equal(first) {
		t.Fatal("the renewed certificate was served at once, before its CA was trusted")
	}
	step(time.Hour, true)
	step(time.Hour, true)
	waitFor(t, "the renewal", func() bool { return !stored().equal(first) })
	if got, want := notAfter(stored().cert), prepared.Add(year); !got.Equal(want) {
		t.Errorf("renewed certificate valid until %s, want %s", got, want)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Start = %v", err)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
