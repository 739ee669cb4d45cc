package webhookcert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestRotatorPublishesTheCA: without a webhook configuration, the rotator
// publishes the CA in a ConfigMap for clients, creates it when missing,
// keeps its other keys, and replaces the CA when it renews.
func TestRotatorPublishesTheCA(t *testing.T) {
	ctx := context.Background()
	fc := clocktesting.NewFakeClock(t0)
	c := fake.NewClientBuilder().Build()
	secret := types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-verifier-cert"}
	caMap := types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-verifier-ca"}
	r := &Rotator{Client: c, Secret: secret, CAConfigMap: caMap, Names: []string{"keywarden-verifier.keywarden-system.svc"},
		CertDir: t.TempDir(), Clock: fc, Log: logr.Discard()}
	published := func() (string, string) {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, caMap, cm); err != nil {
			t.Fatal(err)
		}
		s := &corev1.Secret{}
		if err := c.Get(ctx, secret, s); err != nil {
			t.Fatal(err)
		}
		return cm.Data[CACertKey], string(s.Data[CACertKey])
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first, inSecret := published()
	if first == "" || first != inSecret {
		t.Fatalf("the ConfigMap's CA (%d bytes) is not the Secret's (%d bytes)", len(first), len(inSecret))
	}
	// Someone adds a key of their own; a check changes nothing.
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, caMap, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["note"] = "kept"
	if err := c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := published(); again != first {
		t.Fatal("a check replaced a usable CA")
	}
	// Within 30 days of expiry: the next CA is published beside the
	// current one, then served, then alone.
	fc.Step(340 * 24 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	both, _ := published()
	if !strings.HasPrefix(both, first) || len(both) <= len(first) {
		t.Fatal("the next CA was not published beside the current one")
	}
	next := strings.TrimPrefix(both, first)
	fc.Step(2 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got, inSecret := published(); got != next+first || inSecret != next {
		t.Fatal("once the next certificate is served, its CA and the previous one are not both published")
	}
	fc.Step(2 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := published(); got != next {
		t.Fatal("the previous CA is still published after the overlap")
	}
	if err := c.Get(ctx, caMap, cm); err != nil || cm.Data["note"] != "kept" {
		t.Fatalf("the ConfigMap's other keys were lost: %v %v", cm.Data, err)
	}
}
