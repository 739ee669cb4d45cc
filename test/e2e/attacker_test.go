//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/test/harness"
)

// attacker: a ServiceAccount that may create and delete Secrets and patch
// APIKeys in its namespace, but not read Secrets (a CI account, a GitOps
// committer), tries through kubectl to hold a key of its choosing for
// someone else's APIKey, to widen an issued key, and to hand a key to an
// owner past the limit. Every attempt fails, and the key it went after
// keeps verifying as it was admitted.
func attacker(e *env) {
	ctx := context.Background()
	const ns = "tenant"
	e.kubectl("create", "namespace", ns)
	apply := func(manifest string) {
		e.t.Helper()
		if out, err := e.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
			e.t.Fatalf("%v: %s", err, out)
		}
	}
	apply(`apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata:
  name: tenant-readonly
spec:
  maxLifetime: 24h
  maxActiveKeysPerOwner: 1
  roles:
    - name: readonly
      scopes: [logs:read, metrics:read]
`)

	// The attacker's account and rights.
	token, err := harness.ServiceAccountToken(ctx, e.kube, ns, "ci-bot")
	if err != nil {
		e.t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-bot"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "delete"}},
			{APIGroups: []string{"keywarden.dev"}, Resources: []string{"apikeys"}, Verbs: []string{"get", "list", "watch", "patch"}},
		},
	}
	if _, err := e.kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-bot"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "ci-bot"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "ci-bot"}},
	}
	if _, err := e.kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	kubeconfig := filepath.Join(e.dir, "ci-bot.kubeconfig")
	if err := e.cluster.KubeconfigWithToken(kubeconfig, token); err != nil {
		e.t.Fatal(err)
	}
	as := func(stdin string, args ...string) (string, error) {
		return e.cluster.KubectlAs(ctx, kubeconfig, strings.NewReader(stdin), append([]string{"-n", ns}, args...)...)
	}
	mustAs := func(stdin string, args ...string) string {
		e.t.Helper()
		out, err := as(stdin, args...)
		if err != nil {
			e.t.Fatal(err)
		}
		return out
	}
	if _, err := as("", "get", "secret", "anything"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		e.t.Fatalf("the attacker may read Secrets: %v", err)
	}

	apiKey := func(name, owner string) string {
		return fmt.Sprintf(`apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata:
  name: %s
  namespace: %s
spec:
  displayName: Billing export
  owner: %s
  role: readonly
  scopes: [logs:read]
  lifetime: 12h
  className: tenant-readonly
`, name, ns, owner)
	}

	By := func(what string) { e.t.Log(what) }

	By("1. plant a key of the attacker's choosing for someone else's APIKey")
	mustAs("", "create", "secret", "generic", "billing", "--from-literal=note=squatted")
	apply(apiKey("billing", "alice@example.com"))
	e.eventually("the squatted APIKey stalls on SecretConflict", 30*time.Second, func() bool {
		out, err := as("", "get", "apikey", "billing", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].reason}`)
		return err == nil && out == "SecretConflict"
	})
	uid := mustAs("", "get", "apikey", "billing", "-o", "jsonpath={.metadata.uid}")
	chosen, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	e.remember(chosen)
	mustAs("", "delete", "secret", "billing")
	planted := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: billing
  labels:
    app.kubernetes.io/managed-by: keywarden
    keywarden.dev/apikey: billing
    keywarden.dev/apikey-uid: %s
  annotations:
    keywarden.dev/seal: v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
  ownerReferences:
    - apiVersion: keywarden.dev/v1alpha1
      kind: APIKey
      name: billing
      uid: %s
      controller: true
type: keywarden.dev/api-key
immutable: true
data:
  key: %s
`, uid, uid, base64.StdEncoding.EncodeToString([]byte(chosen)))
	plantedUID := mustAs(planted, "create", "-f", "-", "-o", "jsonpath={.metadata.uid}")
	e.kubectl("wait", "--for=condition=Ready", "apikey/billing", "-n", ns, "--timeout=60s")
	real := e.secretKey(ns, "billing")
	if real == chosen {
		e.t.Fatal("the planted value was recorded")
	}
	if now := e.kubectl("get", "secret", "-n", ns, "billing", "-o", "jsonpath={.metadata.uid}"); now == plantedUID {
		e.t.Fatal("the planted Secret was kept")
	}
	for _, m := range e.verifiers {
		e.eventually("the planted key is unknown and the issued one valid on every verifier", 10*time.Second, func() bool {
			bad, err1 := verify(m, map[string]any{"key": chosen, "namespace": ns})
			good, err2 := verify(m, map[string]any{"key": real, "namespace": ns})
			return err1 == nil && err2 == nil && bad["code"] == "NOT_FOUND" && good["valid"] == true && good["owner"] == "alice@example.com"
		})
	}
	if !strings.Contains(e.kubectl("get", "events", "-n", ns, "--field-selector", "reason=SecretTampered", "-o", "name"), "event") {
		e.t.Error("no SecretTampered event")
	}
	admitted, err := verify(e.verifiers[0], map[string]any{"key": real, "namespace": ns})
	if err != nil {
		e.t.Fatal(err)
	}

	By("2. widen the issued key by patching its spec")
	mustAs("", "patch", "apikey", "billing", "--type=merge", "-p", `{"spec":{"role":"admin","scopes":["users:admin"],"lifetime":"87600h"}}`)
	e.eventually("the widening is refused in Stalled", 30*time.Second, func() bool {
		out, err := as("", "get", "apikey", "billing", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].reason}/{.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && out == "RoleNotAllowed/True"
	})
	for _, required := range []map[string]any{{"role": "admin"}, {"scopes": []string{"users:admin"}}} {
		req := map[string]any{"key": real, "namespace": ns}
		maps.Copy(req, required)
		got, err := verify(e.verifiers[1], req)
		if err != nil || got["valid"] != false {
			// The requirement, never the request: it holds the key.
			e.t.Fatalf("after the widening, the key with %v verifies as %v (%v)", required, got, err)
		}
	}
	if got, _ := verify(e.verifiers[1], map[string]any{"key": real, "namespace": ns}); got["valid"] != true || got["role"] != "readonly" || got["expiresAt"] != admitted["expiresAt"] {
		e.t.Fatalf("after the widening the key verifies as %v, want what was admitted: %v", got, admitted)
	}
	// A key of the tenant's namespace is no key to a service that trusts
	// another; a request that says nothing of whose keys it accepts is
	// refused by the default install.
	if got, err := verify(e.verifiers[1], map[string]any{"key": real, "namespace": "default"}); err != nil || got["code"] != "WRONG_NAMESPACE" || got["owner"] != nil {
		e.t.Fatalf("the tenant's key, to a service trusting default: %v %v", got, err)
	}
	if _, err := verify(e.verifiers[1], map[string]any{"key": real}); err == nil || !strings.Contains(err.Error(), "status 400") || !strings.Contains(err.Error(), "say whose keys you accept") {
		e.t.Fatalf("a request naming no namespace or class: %v, want 400", err)
	}

	By("3. hand the key to an owner who has no room left")
	apply(apiKey("bobs", "bob@example.com"))
	e.kubectl("wait", "--for=condition=Ready", "apikey/bobs", "-n", ns, "--timeout=60s")
	mustAs("", "patch", "apikey", "billing", "--type=merge", "-p", `{"spec":{"role":"readonly","scopes":["logs:read"],"lifetime":"12h","owner":"bob@example.com"}}`)
	e.eventually("the reassignment is refused", 30*time.Second, func() bool {
		out, err := as("", "get", "apikey", "billing", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].reason}/{.status.owner}`)
		return err == nil && out == "ActiveKeyLimit/alice@example.com"
	})
	if got, _ := verify(e.verifiers[0], map[string]any{"key": real, "namespace": ns}); got["valid"] != true || got["owner"] != "alice@example.com" {
		e.t.Fatalf("after the reassignment the key verifies as %v", got)
	}

	By("nothing lost")
	for _, name := range []string{"billing", "bobs"} {
		out := e.kubectl("get", "apikey", "-n", ns, name, "-o", "jsonpath={.status.phase}/{.status.keyHash}")
		phase, hash, _ := strings.Cut(out, "/")
		if phase != "Active" || hash != keys.Hash(e.secretKey(ns, name)) {
			e.t.Fatalf("%s: %s, want Active with the hash of its Secret's key", name, out)
		}
	}
	e.note("attacker with namespace rights (create Secrets, patch APIKeys, no Secret reads): a planted key was never recorded (SecretTampered, NOT_FOUND), a widening to admin for ten years and a reassignment past the limit were refused (Stalled, the key still readonly, alice's, as admitted); both keys Active")
}

// stolenManagerToken: whoever holds the controller's token (read from its
// pod, say; its ServiceAccount keeps the name keywarden-manager) has its
// RBAC rights, create, get and delete on every Secret. The
// admission policy of config/rbac keeps those rights to Keywarden's own
// Secrets: a token Secret for a kube-system account (cluster-admin, once
// read back), an Opaque Secret anywhere, a key-shaped Secret no APIKey
// controls, a sealing key outside the manager's namespace, and the
// deletion of a Secret that is not Keywarden's are all refused by the
// policy, not by RBAC (each refusal carries the policy's message), and so
// are updates of Secrets that are not Keywarden's key Secrets, or that
// would stop being one; and so are edits of its webhook configuration but
// its CA bundle. The other scenarios are the use: their controllers run
// with this same token, rotate keys in place and inject the webhook's CA.
func stolenManagerToken(e *env) {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.managerKubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	stolen, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	const policy = "Keywarden's manager may"
	refused := func(what string, err error) {
		e.t.Helper()
		if err == nil {
			e.t.Errorf("%s: allowed with the manager's token", what)
			return
		}
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), policy) {
			e.t.Errorf("%s: want the admission policy's refusal, got %v", what, err)
		}
	}
	secret := func(ns, name string, typ corev1.SecretType, mutate ...func(*corev1.Secret)) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: map[string][]byte{"k": []byte("v")}}
		for _, m := range mutate {
			m(s)
		}
		return s
	}
	create := func(s *corev1.Secret) error {
		_, err := stolen.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		return err
	}
	keywardens := func(s *corev1.Secret) {
		s.Labels = map[string]string{"app.kubernetes.io/managed-by": "keywarden"}
	}

	// RBAC allows it: without the policy the first attempt would pass.
	allowed, err := stolen.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: "kube-system", Verb: "create", Resource: "secrets"}},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if !allowed.Status.Allowed {
		e.t.Fatal("the manager's RBAC does not allow creating Secrets in kube-system: this scenario would test RBAC, not the policy")
	}

	tokenSecret := secret("kube-system", "stolen-admin-token", corev1.SecretTypeServiceAccountToken, func(s *corev1.Secret) {
		s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "default"}
		s.Data = nil
	})
	var last error
	e.eventually("the admission policy refuses a token Secret created with the manager's token", 30*time.Second, func() bool {
		last = create(tokenSecret)
		if last == nil {
			_ = e.kube.CoreV1().Secrets("kube-system").Delete(ctx, tokenSecret.Name, metav1.DeleteOptions{})
		}
		return last != nil
	})
	refused("a service-account-token Secret in kube-system", last)
	refused("an Opaque Secret in kube-system", create(secret("kube-system", "stolen-opaque", corev1.SecretTypeOpaque)))
	refused("an Opaque Secret in a tenant's namespace", create(secret("tenant", "stolen-opaque", corev1.SecretTypeOpaque, keywardens)))
	refused("a key Secret that no APIKey controls", create(secret("tenant", "stolen-key", keywardenv1alpha1.SecretType, keywardens)))
	// Labels and an owner reference are the token holder's to forge: an
	// Argo CD cluster Secret dressed as a key (any APIKey UID will do).
	refused("a key Secret that holds more than the key", create(secret("tenant", "stolen-cluster", keywardenv1alpha1.SecretType, keywardens, func(s *corev1.Secret) {
		s.Labels["argocd.argoproj.io/secret-type"] = "cluster"
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keywarden.dev/v1alpha1", Kind: "APIKey", Name: "billing", UID: "0a6f5d4e-0000-4000-8000-000000000000", Controller: ptr.To(true)}}
		s.Data = map[string][]byte{"key": []byte("x"), "server": []byte("https://attacker.example"), "config": []byte("{}")}
	})))
	refused("a sealing key outside the manager's namespace", create(secret("tenant", "keywarden-sealing-key", "keywarden.dev/sealing-key")))
	certPEM, keyPEM, _, err := harness.SelfSignedCert("keywarden-webhook-service")
	if err != nil {
		e.t.Fatal(err)
	}
	refused("a webhook certificate outside the manager's namespace", create(secret("kube-system", "keywarden-webhook-cert", corev1.SecretTypeTLS, func(s *corev1.Secret) {
		s.Data = map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}
	})))

	// Nor another ConfigMap in its own namespace (RBAC lets it create any
	// there): one that would decide who may set owners.
	params := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: harness.ManagerNamespace, Name: "keywarden-owner-binding"},
		Data: map[string]string{"groups": "system:authenticated"}}
	_, err = stolen.CoreV1().ConfigMaps(params.Namespace).Create(ctx, params, metav1.CreateOptions{})
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), policy) {
		e.t.Errorf("a ConfigMap keywarden-owner-binding created with the manager's token: want the admission policy's refusal, got %v", err)
	}

	// A Secret that is not Keywarden's survives the token.
	victim := secret("kube-system", "not-keywardens", corev1.SecretTypeOpaque)
	if _, err := e.kube.CoreV1().Secrets(victim.Namespace).Create(ctx, victim, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	refused("deleting a Secret that is not Keywarden's", stolen.CoreV1().Secrets(victim.Namespace).Delete(ctx, victim.Name, metav1.DeleteOptions{}))
	if _, err := e.kube.CoreV1().Secrets(victim.Namespace).Get(ctx, victim.Name, metav1.GetOptions{}); err != nil {
		e.t.Errorf("the Secret that is not Keywarden's: %v", err)
	}
	// Updates: RBAC lets the token update every Secret (a rotation writes
	// a key's next value in place); the policy keeps that to Keywarden's
	// key Secrets, which stay key Secrets.
	update := func(s *corev1.Secret) error {
		_, err := stolen.CoreV1().Secrets(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		return err
	}
	edited, err := e.kube.CoreV1().Secrets(victim.Namespace).Get(ctx, victim.Name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	edited.Data = map[string][]byte{"k": []byte("attacker's")}
	refused("updating a Secret that is not Keywarden's", update(edited))
	// A Secret of Keywarden's type that Keywarden does not manage (the
	// type cannot change, so this is the only one a token could dress):
	// one holding only a key may be taken as a key's (a restore drops
	// owner references, and the controller adopts the Secret), but never
	// dressed with anything more.
	unmanaged := secret("kube-system", "unmanaged-key", keywardenv1alpha1.SecretType, func(s *corev1.Secret) {
		s.Data = map[string][]byte{"key": []byte("x")}
	})
	if unmanaged, err = e.kube.CoreV1().Secrets(unmanaged.Namespace).Create(ctx, unmanaged, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	keywardens(unmanaged)
	unmanaged.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keywarden.dev/v1alpha1", Kind: "APIKey", Name: "billing", UID: "0a6f5d4e-0000-4000-8000-000000000000", Controller: ptr.To(true)}}
	unmanaged.Data["server"] = []byte("https://attacker.example")
	refused("dressing a Secret that is not Keywarden's as a key's, with more than a key", update(unmanaged))
	keySecret, err := e.kube.CoreV1().Secrets("default").Get(ctx, "grafana-readonly", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	keySecret.Labels["argocd.argoproj.io/secret-type"] = "cluster"
	keySecret.Data["server"], keySecret.Data["config"] = []byte("https://attacker.example"), []byte("{}")
	refused("turning a key's Secret into an Argo CD cluster", update(keySecret))
	if got, err := e.kube.CoreV1().Secrets(victim.Namespace).Get(ctx, victim.Name, metav1.GetOptions{}); err != nil || string(got.Data["k"]) != "v" {
		e.t.Errorf("the Secret that is not Keywarden's after the updates: %v %v", got.Data, err)
	}
	webhookEdits := stolenWebhookConfiguration(e, stolen)
	if e.t.Failed() {
		return
	}
	e.note("stolen controller token: 7 Secrets and 1 ConfigMap refused by the admission policies (token, Opaque, unowned key, key with more than a key, sealing key and certificate out of place; owner-binding parameters), 1 deletion and 3 updates (a Secret not Keywarden's, edited or dressed as a key's; a key's Secret turned into an Argo CD cluster), %d edits of its webhook configuration but its CA bundle; the controllers issued and rotated every key of the other scenarios with that token", webhookEdits)
}

// stolenWebhookConfiguration: with config/with-webhook's rights, the
// controller's token may patch its own webhook configuration (RBAC allows
// it by name), and the admission policy there lets it change the CA
// bundles only: widening the rules, failing closed, another URL, another
// webhook, a label are refused; a new CA bundle passes. It returns how
// many edits were refused.
func stolenWebhookConfiguration(e *env, stolen kubernetes.Interface) int {
	ctx := context.Background()
	const name = "keywarden-validating-webhook-configuration"
	files := []string{"-f", "config/with-webhook/webhook_configuration_role.yaml", "-f", "config/with-webhook/webhook_configuration_policy.yaml"}
	e.kubectl("apply", "-k", "config/webhook")
	e.kubectl(append([]string{"apply"}, files...)...)
	defer func() {
		e.kubectl("delete", "-k", "config/webhook")
		e.kubectl(append([]string{"delete"}, files...)...)
	}()
	mustAllow(e, stolen, authorizationv1.ResourceAttributes{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Name: name})
	patch := func(p string) error {
		_, err := stolen.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, []byte(p), metav1.PatchOptions{})
		return err
	}
	// The policy is in force once a change made with the token is refused
	// (each try a new change: a patch that changes nothing is allowed);
	// the probe's label, if one got through before, is then taken off.
	tries := 0
	e.eventually("the admission policy on the webhook configuration is in force", 30*time.Second, func() bool {
		tries++
		return patch(fmt.Sprintf(`[{"op":"add","path":"/metadata/labels","value":{"probe":"%d"}}]`, tries)) != nil
	})
	if cfg, err := e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{}); err != nil {
		e.t.Fatal(err)
	} else if _, probed := cfg.Labels["probe"]; probed {
		delete(cfg.Labels, "probe")
		if _, err := e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	refused := 0
	for what, err := range map[string]error{
		"widening the rules to every resource":  patch(`[{"op":"replace","path":"/webhooks/0/rules/0/resources","value":["*"]}]`),
		"failing closed":                        patch(`[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]`),
		"pointing it at a URL":                  patch(`[{"op":"remove","path":"/webhooks/0/clientConfig/service"},{"op":"add","path":"/webhooks/0/clientConfig/url","value":"https://attacker.example/validate"}]`),
		"another Service":                       patch(`[{"op":"replace","path":"/webhooks/0/clientConfig/service/name","value":"attacker"}]`),
		"a longer timeout":                      patch(`[{"op":"replace","path":"/webhooks/0/timeoutSeconds","value":30}]`),
		"leaving every namespace out":           patch(`[{"op":"replace","path":"/webhooks/0/namespaceSelector","value":{"matchLabels":{"attacker":"none"}}}]`),
		"a label":                               patch(`[{"op":"add","path":"/metadata/labels","value":{"attacker":"yes"}}]`),
		"an owner the collector deletes it for": patch(`[{"op":"add","path":"/metadata/ownerReferences","value":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"0a6f5d4e-0000-4000-8000-000000000000"}]}]`),
		"a finalizer":                           patch(`[{"op":"add","path":"/metadata/finalizers","value":["attacker.example.com/stuck"]}]`),
	} {
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "Keywarden's manager may change only the CA bundles") {
			e.t.Errorf("%s with the controller's token: want the admission policy's refusal, got %v", what, err)
		} else {
			refused++
		}
	}
	certPEM, _, _, err := harness.SelfSignedCert("keywarden-webhook-service")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := patch(fmt.Sprintf(`[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":%q}]`, base64.StdEncoding.EncodeToString(certPEM))); err != nil {
		e.t.Errorf("injecting a CA bundle with the controller's token: %v", err)
	}
	return refused
}
