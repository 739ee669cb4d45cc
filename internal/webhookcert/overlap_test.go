package webhookcert

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestRenewalOverlapsAcrossReplicas: two replicas, checking an hour apart
// each and out of step with each other, go through a renewal. At every
// moment the certificate each one serves is signed by a CA that both the
// webhook configuration and the CA ConfigMap publish.
func TestRenewalOverlapsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	fc := clocktesting.NewFakeClock(t0)
	c := fake.NewClientBuilder().WithObjects(&admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "keywarden"},
		Webhooks:   []admissionv1.ValidatingWebhook{{Name: "vapikey.keywarden.dev"}},
	}).Build()
	name := "keywarden-webhook-service.keywarden-system.svc"
	replica := func() *Rotator {
		return &Rotator{Client: c, Secret: types.NamespacedName{Namespace: "keywarden-system", Name: "cert"},
			WebhookConfig: "keywarden", CAConfigMap: types.NamespacedName{Namespace: "keywarden-system", Name: "ca"},
			Names: []string{name}, CertDir: t.TempDir(), Clock: fc, Log: logr.Discard()}
	}
	a, b := replica(), replica()
	served := map[*Rotator]string{}
	ensure := func(r *Rotator) {
		t.Helper()
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		pemCert, err := os.ReadFile(filepath.Join(r.CertDir, CertKey))
		if err != nil {
			t.Fatal(err)
		}
		served[r] = string(pemCert)
	}
	// check verifies what each replica serves against what is published.
	check := func(when string) {
		t.Helper()
		hook := &admissionv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, types.NamespacedName{Name: "keywarden"}, hook); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "keywarden-system", Name: "ca"}, cm); err != nil {
			t.Fatal(err)
		}
		for what, bundle := range map[string]string{"the webhook configuration": string(hook.Webhooks[0].ClientConfig.CABundle), "the CA ConfigMap": cm.Data[CACertKey]} {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(bundle)) {
				t.Fatalf("%s: %s holds no CA", when, what)
			}
			for r, cert := range served {
				block, _ := pem.Decode([]byte(cert))
				parsed, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := parsed.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: fc.Now()}); err != nil {
					t.Fatalf("%s: replica %s serves a certificate %s does not trust: %v", when, map[*Rotator]string{a: "a", b: "b"}[r], what, err)
				}
			}
		}
	}
	ensure(a)
	ensure(b)
	check("issued")
	first := served[a]

	fc.SetTime(t0.Add(336 * 24 * time.Hour)) // within 30 days of the end
	ensure(a)
	check("a prepared the renewal")
	fc.Step(30 * time.Minute)
	ensure(b)
	check("b saw it")
	fc.Step(30 * time.Minute)
	ensure(a)
	check("a an hour later")
	fc.Step(30 * time.Minute)
	ensure(b)
	check("b an hour later")
	fc.Step(30 * time.Minute)
	ensure(a)
	if served[a] == first {
		t.Fatal("two hours after the renewal was prepared, a does not serve it")
	}
	if served[b] != first {
		t.Fatal("b switched before its own check")
	}
	check("a serves the renewed certificate, b the old one")
	fc.Step(30 * time.Minute)
	ensure(b)
	check("b serves the renewed certificate too")
	for range 4 {
		fc.Step(30 * time.Minute)
		ensure(a)
		check("after the overlap, a")
		fc.Step(30 * time.Minute)
		ensure(b)
		check("after the overlap, b")
	}
	hook := &admissionv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Name: "keywarden"}, hook); err != nil {
		t.Fatal(err)
	}
	if n := len(pemBlocks(hook.Webhooks[0].ClientConfig.CABundle)); n != 1 {
		t.Fatalf("the old CA is still trusted long after the renewal: %d CAs", n)
	}
}

func pemBlocks(b []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		out = append(out, block)
	}
}
