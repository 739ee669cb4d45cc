//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/test/harness"
)

// stolenVerifierToken: whoever holds the verifier's token (taken from a
// pod that answers every service's requests) may read APIKeys and patch
// their status, and nothing else. It reads no Secret but its own
// certificate's (RBAC refuses), and the admission policy of config/rbac
// refuses every status write but the verifier's own two: a chosen key's
// hash recorded on an issued key or on one not issued yet, a key serial or
// a rotation's next key, a widened grant (role, scopes, owner, expiry,
// class), a cleared or altered revocation, and a revocation of another
// reason, or of a reused key on an APIKey that never rotated; another
// policy refuses it events about anything but an APIKey. RBAC allows each
// of those writes: the policies refuse them, with their messages. Its own
// writes pass: lastUsedAt, and a revocation of a
// reported key (the rotation and leak scenarios run with this token).
func stolenVerifierToken(e *env) {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.verifierKubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	stolen, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	mustAllow(e, stolen, authorizationv1.ResourceAttributes{Namespace: "default", Verb: "patch", Group: "keywarden.dev", Resource: "apikeys", Subresource: "status"})

	// Secrets: its own serving pair, without a CA's key, and no other, in
	// any verb.
	own, err := stolen.CoreV1().Secrets(harness.ManagerNamespace).Get(ctx, "keywarden-verifier-tls", metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("the verifier's own certificate: %v", err)
	}
	if len(own.Data) != 2 || own.Data["tls.crt"] == nil || own.Data["tls.key"] == nil {
		e.t.Errorf("the verifier's Secret holds %d fields; want tls.crt and tls.key alone, no CA key", len(own.Data))
	}
	forbidden := func(what string, err error) {
		e.t.Helper()
		if !apierrors.IsForbidden(err) {
			e.t.Errorf("%s with the verifier's token: want forbidden, got %v", what, err)
		}
	}
	_, err = stolen.CoreV1().Secrets(harness.ManagerNamespace).Get(ctx, "keywarden-verifier-cert", metav1.GetOptions{})
	forbidden("reading the Secret that keeps the verifier's CA key", err)
	_, err = stolen.CoreV1().Secrets("default").Get(ctx, "grafana-readonly", metav1.GetOptions{})
	forbidden("reading a key's Secret", err)
	_, err = stolen.CoreV1().Secrets(harness.ManagerNamespace).Get(ctx, "keywarden-sealing-key", metav1.GetOptions{})
	forbidden("reading the sealing key", err)
	_, err = stolen.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	forbidden("listing Secrets", err)
	_, err = stolen.CoreV1().Secrets(harness.ManagerNamespace).Create(ctx, secretNamed(harness.ManagerNamespace, "planted"), metav1.CreateOptions{})
	forbidden("creating a Secret", err)
	forbidden("deleting a key's Secret", stolen.CoreV1().Secrets("default").Delete(ctx, "grafana-readonly", metav1.DeleteOptions{}))
	forbidden("editing an APIKey", c.Patch(ctx, &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "grafana-readonly"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"role":"admin"}}`))))
	// Events: RBAC lets it post them anywhere; the policy only about an
	// APIKey, as keywarden-verifier.
	mustAllow(e, stolen, authorizationv1.ResourceAttributes{Namespace: "kube-system", Verb: "create", Group: "events.k8s.io", Resource: "events"})
	_, err = stolen.EventsV1().Events("kube-system").Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "forged-"}, EventTime: metav1.NewMicroTime(time.Now()),
		Type: corev1.EventTypeWarning, Reason: "NodeCompromised", Action: "Drain", ReportingController: "kubelet", ReportingInstance: "node-1",
		Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: "node-1"}, Note: "drain this node now",
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "Keywarden's verifier reports only on APIKeys") {
		e.t.Errorf("an event about a Node in the kubelet's name with the verifier's token: want the admission policy's refusal, got %v", err)
	}

	// Status writes: a key of the attacker's choosing, made valid.
	chosen, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	e.remember(chosen)
	const ns = "stolen-verifier"
	e.kubectl("create", "namespace", ns)
	if _, err := e.kubectlIn(`apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: issued, namespace: `+ns+`}
spec: {displayName: Issued, owner: alice@example.com, role: readonly, scopes: [reports:read], lifetime: 24h, trackLastUsed: true}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: untracked, namespace: `+ns+`}
spec: {displayName: Untracked, owner: alice@example.com, role: readonly}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: revoked, namespace: `+ns+`}
spec: {displayName: Revoked, owner: alice@example.com, role: readonly}
`, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey/issued", "apikey/revoked", "apikey/untracked", "-n", ns, "--timeout=60s")
	e.kubectl("patch", "apikey", "revoked", "-n", ns, "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Revoked", "apikey/revoked", "-n", ns, "--timeout=60s")
	// A key the verifier itself revoked, as a leak report does.
	patchStatus := func(name string, patch string) error {
		return c.Status().Patch(ctx, &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
			client.RawPatch(types.MergePatchType, []byte(patch)))
	}
	if err := patchStatus("issued", `{"status":{"lastUsedAt":"2026-06-01T00:00:00Z"}}`); err != nil {
		e.t.Fatalf("the verifier's own write of lastUsedAt: %v", err)
	}
	issued := e.secretKey(ns, "issued")
	const policy = "Keywarden's verifier may"
	refused := 0
	for _, w := range []struct{ what, name, patch string }{
		{"recording a chosen key's hash", "issued", fmt.Sprintf(`{"status":{"keyHash":%q}}`, keys.Hash(chosen))},
		{"recording a chosen key as a rotation's next key", "issued", fmt.Sprintf(`{"status":{"rotation":{"next":{"keyHash":%q,"keyPrefix":"kw_xxxxx","keySerial":9}}}}`, keys.Hash(chosen))},
		{"changing the key serial", "issued", `{"status":{"keySerial":7}}`},
		{"widening the role", "issued", `{"status":{"role":"admin"}}`},
		{"widening the scopes", "issued", `{"status":{"scopes":["reports:read","billing:admin"]}}`},
		{"reassigning the owner", "issued", `{"status":{"owner":"mallory@example.com"}}`},
		{"extending the expiry", "issued", `{"status":{"expiresAt":"2099-01-01T00:00:00Z"}}`},
		{"changing the class", "issued", `{"status":{"className":"trusted"}}`},
		{"making a revoked key Active", "revoked", `{"status":{"phase":"Active","revokedAt":null}}`},
		{"setting conditions", "issued", `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KeyIssued","message":"x","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`},
		{"a revocation of a reason the verifier never writes", "issued", `{"status":{"revocation":{"reason":"Whatever","message":"x","at":"2026-01-01T00:00:00Z"}}}`},
		{"a reused rotated-out key's revocation of an APIKey that never rotated", "untracked", `{"status":{"revocation":{"reason":"RotatedKeyReused","message":"x","at":"2026-01-01T00:00:00Z"}}}`},
		{"usage recorded for a key that does not track it", "untracked", `{"status":{"lastUsedAt":"2026-06-01T00:00:00Z"}}`},
		{"usage moved back", "issued", `{"status":{"lastUsedAt":"2026-01-01T00:00:00Z"}}`},
	} {
		err := patchStatus(w.name, w.patch)
		switch {
		case err == nil:
			e.t.Errorf("%s: allowed with the verifier's token", w.what)
		case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), policy):
			e.t.Errorf("%s: want the admission policy's refusal, got %v", w.what, err)
		default:
			refused++
		}
	}
	// A revocation it records (a reported key) stands, and stays.
	if err := patchStatus("issued", `{"status":{"revocation":{"reason":"KeyReported","message":"key reported","at":"2026-01-01T00:00:00Z"}}}`); err != nil {
		e.t.Fatalf("the verifier's own revocation of a reported key: %v", err)
	}
	for what, patch := range map[string]string{
		"clearing a revocation": `{"status":{"revocation":null}}`,
		"altering a revocation": `{"status":{"revocation":{"reason":"RotatedKeyReused"}}}`,
	} {
		if err := patchStatus("issued", patch); err == nil || !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			e.t.Errorf("%s: want a refusal, got %v", what, err)
		} else {
			refused++
		}
	}
	for _, m := range e.verifiers {
		e.eventually("the chosen key is unknown and the reported one revoked on every verifier", 10*time.Second, func() bool {
			bad, err1 := verify(m, map[string]any{"key": chosen, "namespace": ns})
			good, err2 := verify(m, map[string]any{"key": issued, "namespace": ns})
			return err1 == nil && err2 == nil && bad["code"] == "NOT_FOUND" && good["code"] == "REVOKED"
		})
	}
	if e.t.Failed() {
		return
	}
	e.note("stolen verifier token: 7 Secret reads and writes (the CA's key among them) and 1 APIKey edit refused by RBAC (its own serving pair read, no CA key in it); an event about a Node refused by the admission policy; %d status writes refused by the admission policy or the CRD (chosen hash, next key, serial, role, scopes, owner, expiry, class, un-revoking, conditions, revocations altered, of another reason or of a reused key where none rotated out, usage of an untracked key or moved back); lastUsedAt and a reported key's revocation written", refused)
}

// stolenConsoleToken: the console's own token is bound to nothing: it may
// ask who it is, and nothing else.
func stolenConsoleToken(e *env) {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.accountKubeconfig("keywarden-console"))
	if err != nil {
		e.t.Fatal(err)
	}
	stolen, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	review, err := stolen.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username != "system:serviceaccount:"+harness.ManagerNamespace+":keywarden-console" {
		e.t.Fatalf("the console's own review: %v %v", review, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	tries := map[string]error{
		"listing APIKeys":       c.List(ctx, &keywardenv1alpha1.APIKeyList{}),
		"listing APIKeyClasses": c.List(ctx, &keywardenv1alpha1.APIKeyClassList{}),
		"reading an APIKey":     c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "grafana-readonly"}, &keywardenv1alpha1.APIKey{}),
		"creating an APIKey":    c.Create(ctx, &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "console-stolen"}, Spec: keywardenv1alpha1.APIKeySpec{DisplayName: "x", Owner: "x", Role: "x"}}),
		"revoking an APIKey":    c.Patch(ctx, &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "grafana-readonly"}}, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))),
		"reading a key's Secret": func() error {
			_, err := stolen.CoreV1().Secrets("default").Get(ctx, "grafana-readonly", metav1.GetOptions{})
			return err
		}(),
		"listing Secrets":    func() error { _, err := stolen.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err }(),
		"listing Namespaces": func() error { _, err := stolen.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err }(),
		"listing Events": func() error {
			_, err := stolen.EventsV1().Events("default").List(ctx, metav1.ListOptions{})
			return err
		}(),
		"reviewing another's token": func() error {
			_, err := stolen.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "x"}}, metav1.CreateOptions{})
			return err
		}(),
	}
	for what, err := range tries {
		if !apierrors.IsForbidden(err) {
			e.t.Errorf("%s with the console's token: want forbidden, got %v", what, err)
		}
	}
	e.note("stolen console token: its own review answered; %d reads and writes of APIKeys, classes, Secrets, Namespaces, Events and TokenReviews refused", len(tries))
}

// mustAllow fails unless RBAC allows the token the request: a scenario
// that says the admission policy refuses a write must not be testing RBAC.
func mustAllow(e *env, kube kubernetes.Interface, attrs authorizationv1.ResourceAttributes) {
	e.t.Helper()
	review, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if !review.Status.Allowed {
		e.t.Fatalf("RBAC does not allow %s %s/%s in %q: this scenario would test RBAC, not the admission policy", attrs.Verb, attrs.Resource, attrs.Subresource, attrs.Namespace)
	}
}

// secretNamed is an Opaque Secret of that name.
func secretNamed(ns, name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"k": []byte("v")}}
}
