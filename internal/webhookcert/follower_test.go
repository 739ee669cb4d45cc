package webhookcert

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestFollowerServesWhatTheRotatorServes: a follower (the verifier), reading
// the Secret a rotator (the controller) keeps, at the rotator's interval,
// always serves the rotator's current certificate, signed by a CA the
// ConfigMap publishes, through a renewal.
func TestFollowerServesWhatTheRotatorServes(t *testing.T) {
	ctx := context.Background()
	fc := clocktesting.NewFakeClock(t0)
	secret := types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-verifier-tls"}
	c := fake.NewClientBuilder().Build()
	f := &Follower{Client: c, Secret: secret, CertDir: t.TempDir(), Interval: time.Hour, Clock: fc, Log: logr.Discard()}

	if err := f.Ensure(ctx); err == nil || !strings.Contains(err.Error(), "reading Secret") {
		t.Fatalf("no Secret yet: %v", err)
	}
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secret.Namespace, Name: secret.Name}, Type: corev1.SecretTypeTLS}
	if err := c.Create(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(ctx); !errors.Is(err, errNotIssued) {
		t.Fatalf("a Secret without a certificate: %v", err)
	}
	if err := c.Delete(ctx, empty); err != nil {
		t.Fatal(err)
	}

	r := &Rotator{Client: c, Secret: types.NamespacedName{Namespace: secret.Namespace, Name: "keywarden-verifier-cert"}, ServingSecret: secret,
		CAConfigMap: types.NamespacedName{Namespace: secret.Namespace, Name: "keywarden-verifier-ca"},
		Names:       []string{"keywarden-verifier.keywarden-system.svc"}, CertDir: t.TempDir(), Clock: fc, Log: logr.Discard(),
		Timing: Timing{Validity: 10 * time.Hour, RenewBefore: 5 * time.Hour, Interval: time.Hour}}
	served := map[string]bool{}
	for step := range 12 {
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{CertKey, PrivKeyKey} {
			want, err := os.ReadFile(filepath.Join(r.CertDir, name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(f.CertDir, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("step %d: the follower's %s differs from the rotator's (%v)", step, name, err)
			}
		}
		cert, err := os.ReadFile(filepath.Join(f.CertDir, CertKey))
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, r.CAConfigMap, cm); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(cm.Data[CACertKey]))
		leaf, err := x509.ParseCertificate(pemBlocks(cert)[0].Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: r.Names[0], CurrentTime: fc.Now()}); err != nil {
			t.Fatalf("step %d: the follower serves a certificate the published CA does not vouch for: %v", step, err)
		}
		served[string(cert)] = true
		// What the follower reads holds the serving pair and no key of a CA.
		tls := &corev1.Secret{}
		if err := c.Get(ctx, secret, tls); err != nil {
			t.Fatal(err)
		}
		if len(tls.Data) != 2 || tls.Data[CertKey] == nil || tls.Data[PrivKeyKey] == nil {
			t.Fatalf("step %d: the serving Secret holds %d fields, want tls.crt and tls.key alone", step, len(tls.Data))
		}
		fc.Step(time.Hour)
	}
	if len(served) < 2 {
		t.Fatalf("%d certificates served in 12 hours of 10-hour certificates: no renewal was followed", len(served))
	}
}

// TestFollowerWait: Wait returns once the certificate is there, and says
// what it waited for when it never comes.
func TestFollowerWait(t *testing.T) {
	ctx := context.Background()
	secret := types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-verifier-tls"}
	c := fake.NewClientBuilder().Build()
	f := &Follower{Client: c, Secret: secret, CertDir: t.TempDir(), Log: logr.Discard()}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := f.Wait(short); err == nil || !strings.Contains(err.Error(), "waiting for the serving certificate") {
		t.Fatalf("no certificate ever: %v", err)
	}
	r := &Rotator{Client: c, Secret: types.NamespacedName{Namespace: secret.Namespace, Name: "keywarden-verifier-cert"}, ServingSecret: secret,
		Names: []string{"keywarden-verifier.keywarden-system.svc"}, CertDir: t.TempDir(), Log: logr.Discard()}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.CertDir, CertKey)); err != nil {
		t.Fatal(err)
	}
}
