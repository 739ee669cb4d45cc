package webhookcert

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"keywarden.dev/keywarden/test/harness"
)

// TestRotatorAgainstTheAPIServer issues a certificate, has the real API
// server call a webhook served with it, then renews it.
func TestRotatorAgainstTheAPIServer(t *testing.T) {
	env, err := harness.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Labels: map[string]string{"guarded": "true"}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	hook := &admissionv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "rotator-test"},
		Webhooks: []admissionv1.ValidatingWebhook{{
			Name:                    "deny.keywarden.dev",
			ClientConfig:            admissionv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:" + strconv.Itoa(port) + "/deny")},
			Rules:                   []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"guarded": "true"}},
			SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptr.To(admissionv1.Fail),
		}},
	}
	if err := c.Create(ctx, hook); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	// Checks a second apart: the renewal's overlap is two seconds.
	rotator := func(renewBefore time.Duration) *Rotator {
		return &Rotator{
			Client: c, Secret: types.NamespacedName{Namespace: "default", Name: "webhook-cert"},
			WebhookConfig: hook.Name, Names: []string{"127.0.0.1"}, CertDir: dir,
			Timing: Timing{RenewBefore: renewBefore, Interval: time.Second}, Log: logr.Discard(),
		}
	}
	if err := rotator(0).Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "webhook-cert"}, secret); err != nil {
		t.Fatal(err)
	}
	first := fromData(secret.Data)
	if err := first.usable([]string{"127.0.0.1"}, time.Now(), 30*24*time.Hour); err != nil {
		t.Fatalf("the stored certificate is not usable: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls.crt")); string(b) != string(first.cert) {
		t.Fatal("tls.crt in the cert dir is not the stored certificate")
	}

	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register("/deny", &webhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Denied("denied by the test webhook")
	})})
	go func() { _ = srv.Start(ctx) }()

	denied := func() error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "guarded", GenerateName: "cm-"}}
		return c.Create(ctx, cm)
	}
	eventually(t, "the API server trusts the webhook", func() bool {
		err := denied()
		return err != nil && strings.Contains(err.Error(), "denied by the test webhook")
	})

	t.Log("a second replica reuses the stored certificate")
	rv := secret.ResourceVersion
	if err := rotator(0).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	if secret.ResourceVersion != rv {
		t.Fatal("a replica replaced a usable certificate")
	}

	t.Log("renewal inside the renewal window (here: longer than the validity), calling the webhook throughout")
	calls, failed := 0, 0
	call := func() {
		calls++
		if err := denied(); err == nil || !strings.Contains(err.Error(), "denied by the test webhook") {
			failed++
			t.Errorf("a call through the API server during the renewal: %v", err)
		}
	}
	stored := func() state {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			t.Fatal(err)
		}
		return stateFrom(secret.Data)
	}
	injected := func() string {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(hook), hook); err != nil {
			t.Fatal(err)
		}
		return string(hook.Webhooks[0].ClientConfig.CABundle)
	}
	renewing := rotator(400 * 24 * time.Hour)
	if err := renewing.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	st := stored()
	if st.next == nil || !st.current.equal(first) {
		t.Fatal("the renewal did not start by preparing the next certificate beside the served one")
	}
	if injected() != string(first.caCert)+string(st.next.caCert) {
		t.Fatal("the next CA is not trusted before it is served")
	}
	next := *st.next
	// The API server reads the webhook configuration again: both CAs.
	for range 10 {
		call()
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := renewing.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		call()
		if st = stored(); st.current.equal(next) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the next certificate was never served")
		}
	}
	if injected() != string(next.caCert)+string(first.caCert) {
		t.Fatal("the previous CA is not trusted while replicas may still serve it")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls.crt")); string(b) != string(next.cert) {
		t.Fatal("the renewed certificate is not served")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := rotator(0).Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		call()
		if stored().previousCA == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the previous CA was never dropped")
		}
	}
	if injected() != string(next.caCert) {
		t.Fatal("the previous CA is still trusted after the overlap")
	}
	for range 10 {
		call()
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d calls through the API server across the renewal, %d failed", calls, failed)
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out: %s", what)
}
