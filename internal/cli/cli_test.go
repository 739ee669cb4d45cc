package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/notify"
	"keywarden.dev/keywarden/test/harness"
)

// run runs the plugin as a person at a terminal (or not) would, with a
// short wait for the manager, and returns its exit code and outputs.
func run(t *testing.T, kubeconfig string, terminal bool, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{Streams: Streams{In: strings.NewReader(stdin), Out: &out, Err: &errOut}, now: time.Now, terminal: terminal, managerWait: time.Second}
	code := a.run(append([]string{"--kubeconfig", kubeconfig}, args...))
	return code, out.String(), errOut.String()
}

// The error paths that need a cluster without Keywarden, then one whose
// manager does not run: the plugin says what is missing, after a short
// wait, and a revocation at a terminal is asked for first.
func TestWithoutKeywarden(t *testing.T) {
	env, err := harness.NewEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	crds := env.CRDDirectoryPaths
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"list"}, {"show", "x"}, {"revoke", "--yes", "x"}, {"delete", "--yes", "x"},
		{"create", "x", "--display-name", "x", "--owner", "x", "--role", "x"},
	} {
		code, _, stderr := run(t, kubeconfig, false, "", args...)
		if code != 1 || !strings.Contains(stderr, "Keywarden's CRDs are not installed") {
			t.Errorf("%v without the CRDs: exit %d: %s", args, code, stderr)
		}
	}

	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: keyops.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// create: no manager issues the key; it says so within its short wait,
	// and leaves nothing.
	start := time.Now()
	code, stdout, stderr := run(t, kubeconfig, false, "", "create", "waiting", "--display-name", "x", "--owner", "x", "--role", "x")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "no Keywarden manager picked it up within 1s: is it running?") {
		t.Errorf("create without a manager: exit %d, %q, %s", code, stdout, stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("create without a manager took %s to say so", d)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "waiting"}, &keywardenv1alpha1.APIKey{}); !apierrors.IsNotFound(err) {
		t.Errorf("create left its APIKey behind: %v", err)
	}

	// Someone who may write Secrets in the namespace swaps the key in the
	// Secret before the admin's create reads it: create prints nothing.
	planted, err := keys.Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	go fakeIssue(t, c, "swapped", planted)
	code, stdout, stderr = run(t, kubeconfig, false, "", "create", "swapped", "--display-name", "x", "--owner", "x", "--role", "x")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "does not hold the key apikey swapped records") || strings.Contains(stderr, planted) {
		t.Errorf("create with a planted key in the Secret: exit %d, %d bytes out, %s", code, len(stdout), strings.ReplaceAll(stderr, planted, "<planted key>"))
	}

	// Someone with rights in the namespace changes the new APIKey before
	// it is issued (a wider role, say): create prints nothing.
	go func() {
		k := waitFor(t, c, "changed")
		k.Spec.Role = "admin"
		if err := c.Update(ctx, k); err != nil {
			t.Error(err)
		}
	}()
	code, stdout, stderr = run(t, kubeconfig, false, "", "create", "changed", "--display-name", "x", "--owner", "x", "--role", "x")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "was changed by someone else while it waited to be issued: nothing is shown") || !strings.Contains(stderr, "The APIKey was deleted") {
		t.Errorf("create of a key changed before issuance: exit %d, %d bytes out, %s", code, len(stdout), stderr)
	}

	// A manager that picked the key up but fails (its Secret refused, say)
	// is not a missing manager: create says what it last reported.
	go setStatus(t, c, "failing", func(k *keywardenv1alpha1.APIKey) {
		k.Status.Phase = keywardenv1alpha1.PhasePending
		k.Status.Conditions = []metav1.Condition{{Type: keywardenv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonReconcileError,
			Message: "Retrying after an error: secrets is forbidden: exceeded quota", ObservedGeneration: k.Generation, LastTransitionTime: metav1.Now()}}
	})
	code, _, stderr = run(t, kubeconfig, false, "", "create", "failing", "--display-name", "x", "--owner", "x", "--role", "x", "--timeout", "3s")
	if code != 1 || strings.Contains(stderr, "is it running") ||
		!strings.Contains(stderr, "was not issued within 3s: it is Pending (ReconcileError: Retrying after an error: secrets is forbidden: exceeded quota)") {
		t.Errorf("create while the manager fails: exit %d: %s", code, stderr)
	}

	// An expired key is not revoked again.
	expired := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: "expired", Namespace: "default"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Expired", Owner: "alice", Role: "readonly"},
	}
	if err := c.Create(ctx, expired); err != nil {
		t.Fatal(err)
	}
	setStatus(t, c, "expired", func(k *keywardenv1alpha1.APIKey) {
		k.Status.Phase, k.Status.ObservedGeneration = keywardenv1alpha1.PhaseExpired, k.Generation
		k.Status.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Hour)}
	})
	code, _, stderr = run(t, kubeconfig, false, "", "revoke", "--yes", "expired")
	if code != 1 || !strings.Contains(stderr, "apikey default/expired expired at") || !strings.Contains(stderr, "revoking it would change nothing") {
		t.Errorf("revoke of an expired key: exit %d: %s", code, stderr)
	}

	// A key stalled on a refused change of its spec (anyone who may edit
	// it can cause one) still rotates: rotate waits for the rotation it
	// asked for.
	stalledKey := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: "stalled", Namespace: "default"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Stalled", Owner: "alice", Role: "readonly"},
	}
	if err := c.Create(ctx, stalledKey); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := keys.Generate("kw_")
	setStatus(t, c, "stalled", func(k *keywardenv1alpha1.APIKey) {
		k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: k.Generation, KeyPrefix: keys.DisplayPrefix(oldKey),
			KeyHash: keys.Hash(oldKey), Owner: "alice", Role: "readonly", SecretRef: &keywardenv1alpha1.SecretReference{Name: "stalled"},
			Conditions: []metav1.Condition{{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonRoleNotAllowed,
				Message: "role \"admin\" is not allowed", ObservedGeneration: k.Generation, LastTransitionTime: metav1.Now()}}}
	})
	go fakeRotate(t, c, "stalled", oldKey)
	code, stdout, stderr = run(t, kubeconfig, false, "", "rotate", "stalled", "--timeout", "20s")
	if code != 0 || !strings.Contains(stdout, "apikey default/stalled rotated at") || !strings.Contains(stdout, "the previous key "+keys.DisplayPrefix(oldKey)+" verifies until") {
		t.Errorf("rotate of an active key stalled on another change: exit %d: %s%s", code, stdout, stderr)
	}

	// An admission policy's refusal is not a missing right: its own words
	// are shown (here, config/owner-binding's).
	if err := harness.CreateManagerNamespace(cfg); err != nil {
		t.Fatal(err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := exec.Command(filepath.Join(env.BinaryAssetsDirectory, "kubectl"), "--kubeconfig", kubeconfig, "apply", "-k", filepath.Join(root, "config", "owner-binding"))
	if out, err := kubectl.CombinedOutput(); err != nil {
		t.Fatalf("applying config/owner-binding: %v\n%s", err, out)
	}
	// alice may do anything RBAC allows, but is not trusted to set others
	// as owners (system:masters is).
	alice, err := env.AddUser(envtest.User{Name: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice", APIGroup: "rbac.authorization.k8s.io"}}}); err != nil {
		t.Fatal(err)
	}
	b, err = alice.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	aliceConfig := filepath.Join(t.TempDir(), "alice")
	if err := os.WriteFile(aliceConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := false
	for deadline := time.Now().Add(30 * time.Second); !refused && time.Now().Before(deadline); {
		_, _, stderr = run(t, aliceConfig, false, "", "create", "not-mine", "--display-name", "x", "--owner", "someone-else", "--role", "x")
		refused = strings.Contains(stderr, "the API server refused to create apikeys.keywarden.dev in namespace default: ") &&
			strings.Contains(stderr, "spec.owner must be your own username, alice")
	}
	if !refused || strings.Contains(stderr, "you may not") {
		t.Errorf("create refused by the owner-binding policy: %s", stderr)
	}

	// Someone deletes the Secret while the rotation runs: Keywarden drops
	// the rotation and reissues the key. rotate does not call that done.
	dropped := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: "dropped", Namespace: "default"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Dropped", Owner: "alice", Role: "readonly"},
	}
	if err := c.Create(ctx, dropped); err != nil {
		t.Fatal(err)
	}
	setStatus(t, c, "dropped", func(k *keywardenv1alpha1.APIKey) {
		k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: k.Generation, KeyPrefix: keys.DisplayPrefix(oldKey),
			KeyHash: keys.Hash(oldKey), Owner: "alice", Role: "readonly", SecretRef: &keywardenv1alpha1.SecretReference{Name: "dropped"}}
	})
	go func() {
		var request string
		for deadline := time.Now().Add(30 * time.Second); request == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if k := waitFor(t, c, "dropped"); k.Spec.Rotation != nil {
				request = k.Spec.Rotation.Request
			}
		}
		reissued, _ := keys.Generate("kw_")
		setStatus(t, c, "dropped", func(k *keywardenv1alpha1.APIKey) {
			k.Status.ObservedGeneration = k.Generation
			k.Status.KeyHash, k.Status.KeyPrefix = keys.Hash(reissued), keys.DisplayPrefix(reissued)
			k.Status.Rotation = &keywardenv1alpha1.RotationStatus{Request: request}
		})
	}()
	code, stdout, stderr = run(t, kubeconfig, false, "", "rotate", "dropped", "--timeout", "20s")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "was not rotated: Keywarden dropped the rotation") {
		t.Errorf("rotate when the rotation is dropped: exit %d: %s%s", code, stdout, stderr)
	}

	// An active key, as a manager left it before it stopped.
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: "active", Namespace: "default"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Active", Owner: "alice", Role: "readonly"},
	}
	if err := c.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: k.Generation, KeyPrefix: "kw_Abcde",
		KeyHash: "sha256:" + strings.Repeat("0", 64), Owner: "alice", Role: "readonly", SecretRef: &keywardenv1alpha1.SecretReference{Name: "active"}}
	if err := c.Status().Update(ctx, k); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, kubeconfig, false, "", "rotate", "active")
	if code != 1 || !strings.Contains(stderr, "rotation requested, but no Keywarden manager picked it up within 1s") {
		t.Errorf("rotate without a manager: exit %d: %s", code, stderr)
	}

	// revoke at a terminal asks first; "n" revokes nothing.
	code, stdout, stderr = run(t, kubeconfig, true, "n\n", "revoke", "active")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "Revoke them? [y/N]") || !strings.Contains(stderr, "Nothing revoked.") ||
		!strings.Contains(stderr, `default/active  kw_Abcde  "Active"  owner alice`) {
		t.Errorf("revoke answered n: exit %d, %q, %s", code, stdout, stderr)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(k), k); err != nil || k.Spec.Revoked {
		t.Fatalf("revoke answered n revoked the key: %v", err)
	}
	// "y" revokes; without a manager to confirm, it says so.
	code, _, stderr = run(t, kubeconfig, true, "y\n", "revoke", "active")
	if code != 1 || !strings.Contains(stderr, "is marked revoked (spec.revoked), and the verifier refuses it once Keywarden confirms, but no Keywarden manager picked it up") {
		t.Errorf("revoke answered y without a manager: exit %d: %s", code, stderr)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(k), k); err != nil || !k.Spec.Revoked {
		t.Fatalf("revoke answered y did not revoke the key: %v", err)
	}
	testDelete(t, c, kubeconfig)
	testSharedSecret(t, c, env, kubeconfig)
	testNotFound(t, c, kubeconfig)
}

// testNotFound: a name that does not exist is answered with the closest
// one, or with the hint that the namespace holds none.
func testNotFound(t *testing.T, c client.Client, kubeconfig string) {
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: "billing-export", Namespace: "default"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Billing", Owner: "finance", Role: "readonly"},
	}
	if err := c.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "billing-exprot"}, "error: apikey default/billing-exprot does not exist: did you mean billing-export?\n"},
		{[]string{"show", "nightly", "-n", "kube-public"}, "error: apikey kube-public/nightly does not exist: namespace kube-public holds no APIKey; is the key in another namespace?\n"},
		{[]string{"show", "something-else"}, "error: apikey default/something-else does not exist\n"},
		{[]string{"create", "late", "--display-name", "x", "--owner", "x", "--role", "x", "--expires-at", "2020-01-31"},
			"error: --expires-at 2020-01-31T00:00:00Z is in the past: give a later time, or --lifetime (such as 30d) instead\n"},
	} {
		if code, _, stderr := run(t, kubeconfig, false, "", tc.args...); code != 1 || stderr != tc.want {
			t.Errorf("%v: exit %d: %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "late"}, &keywardenv1alpha1.APIKey{}); !apierrors.IsNotFound(err) {
		t.Errorf("a key that would expire in the past was created: %v", err)
	}
}

// testSharedSecret: an admin creates, reads again and rotates a class's
// shared secret; someone without the rights to read Secrets in the
// controller's namespace gets none of it.
func testSharedSecret(t *testing.T, c client.Client, env *envtest.Environment, kubeconfig string) {
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultControllerNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	class := &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "payments"}, Spec: keywardenv1alpha1.APIKeyClassSpec{
		Notifications: &keywardenv1alpha1.ClassNotifications{URL: "https://hooks.example.com/keywarden"},
	}}
	if err := c.Create(ctx, class); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, kubeconfig, false, "", "shared-secret", "show", "payments")
	if code != 1 || !strings.Contains(stderr, "kubectl keywarden shared-secret rotate payments") {
		t.Errorf("show before any: exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, kubeconfig, false, "", "shared-secret", "rotate", "nosuchclass")
	if code != 1 || !strings.Contains(stderr, "there is no APIKeyClass nosuchclass") {
		t.Errorf("rotate of a class that does not exist: exit %d: %s", code, stderr)
	}
	code, first, stderr := run(t, kubeconfig, false, "", "shared-secret", "rotate", "payments")
	first = strings.TrimSpace(first)
	if code != 0 || !strings.HasPrefix(first, "kwss_") || !strings.Contains(stderr, "https://hooks.example.com/keywarden") {
		t.Fatalf("rotate to create: exit %d, %d bytes out: %s", code, len(first), stderr)
	}
	code, shown, _ := run(t, kubeconfig, false, "", "shared-secret", "show", "payments")
	if code != 0 || strings.TrimSpace(shown) != first {
		t.Errorf("show after create: exit %d, not the secret created", code)
	}
	code, second, stderr := run(t, kubeconfig, false, "", "shared-secret", "rotate", "payments", "--overlap", "1h")
	second = strings.TrimSpace(second)
	if code != 0 || second == first || !strings.Contains(stderr, "keeps signing beside it until") {
		t.Errorf("rotate: exit %d: %s", code, stderr)
	}
	code, shown, _ = run(t, kubeconfig, false, "", "shared-secret", "show", "payments")
	if lines := strings.Fields(shown); code != 0 || len(lines) != 2 || lines[0] != second || lines[1] != first {
		t.Errorf("show during the overlap: exit %d, %d lines", code, len(lines))
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: defaultControllerNamespace, Name: "keywarden-notify-payments"}, s); err != nil {
		t.Fatal(err)
	}
	if got, err := notify.SigningSecrets(s, time.Now()); err != nil || len(got) != 2 || string(got[0]) != second {
		t.Errorf("the Secret as the controller reads it: %d secrets, %v", len(got), err)
	}

	// Attacks: a developer without rights in the controller's namespace
	// reads nothing and rotates nothing; a Secret of another kind under
	// the name is left alone.
	dev, err := env.AddUser(envtest.User{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dev.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	devConfig := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(devConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"shared-secret", "show", "payments"}, {"shared-secret", "rotate", "payments"}} {
		code, out, stderr := run(t, devConfig, false, "", args...)
		if code != 1 || out != "" || !strings.Contains(stderr, "you may not get") || strings.Contains(stderr, second) {
			t.Errorf("%v without rights: exit %d, %d bytes out: %s", args, code, len(out), stderr)
		}
	}
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: defaultControllerNamespace, Name: "keywarden-notify-other"}, StringData: map[string]string{"secret": "x"}}
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}}); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, kubeconfig, false, "", "shared-secret", "rotate", "other"); code != 1 || !strings.Contains(stderr, "is left as it is") {
		t.Errorf("rotate over a Secret of another type: exit %d: %s", code, stderr)
	}
}

// testDelete: delete asks first at a terminal, deletes each key named
// that exists, and never one created under the name of the key the
// person looked at.
func testDelete(t *testing.T, c client.Client, kubeconfig string) {
	ctx := context.Background()
	newKey := func(name string, finalizers ...string) *keywardenv1alpha1.APIKey {
		k := &keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Finalizers: finalizers},
			Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "To delete", Owner: "alice", Role: "readonly"},
		}
		if err := c.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	exists := func(k *keywardenv1alpha1.APIKey) bool {
		var got keywardenv1alpha1.APIKey
		err := c.Get(ctx, client.ObjectKeyFromObject(k), &got)
		return err == nil && got.UID == k.UID
	}
	a, b := newKey("delete-a"), newKey("delete-b")
	code, stdout, stderr := run(t, kubeconfig, true, "n\n", "delete", "delete-a", "delete-b")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "Delete them? [y/N]") || !strings.Contains(stderr, "Nothing deleted.") ||
		!strings.Contains(stderr, `default/delete-b`) || !exists(a) || !exists(b) {
		t.Errorf("delete answered n: exit %d, %q, %s", code, stdout, stderr)
	}
	// One missing among them: the others are deleted still, and it exits 1.
	code, stdout, stderr = run(t, kubeconfig, true, "y\n", "delete", "delete-a", "no-such-key", "delete-b")
	if code != 1 || !strings.Contains(stdout, "apikey default/delete-a deleted") || !strings.Contains(stdout, "apikey default/delete-b deleted") ||
		!strings.Contains(stderr, "no-such-key") || exists(a) || exists(b) {
		t.Errorf("delete answered y: exit %d, %q, %s", code, stdout, stderr)
	}
	// Held by a finalizer: marked, and said to be still going.
	held := newKey("delete-held", "example.com/hold")
	code, stdout, stderr = run(t, kubeconfig, false, "", "delete", "--yes", "--timeout", "1s", "delete-held")
	if code != 0 || !strings.Contains(stdout, "apikey default/delete-held is being deleted: the verifier refuses it already") {
		t.Errorf("delete of a held key: exit %d, %q, %s", code, stdout, stderr)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(held), held); err != nil || held.DeletionTimestamp.IsZero() {
		t.Errorf("the held key is not marked for deletion: %v", err)
	}
	held.Finalizers = nil
	if err := c.Update(ctx, held); err != nil {
		t.Fatal(err)
	}

	// Deleted and created again under its name after the person looked:
	// the new key is not deleted.
	looked := newKey("delete-again")
	if err := c.Delete(ctx, looked); err != nil {
		t.Fatal(err)
	}
	again := newKey("delete-again")
	_, err := keyops.Ops{Client: c}.Delete(ctx, looked, time.Second)
	var refused *keyops.Refused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "is not the key you meant") || !exists(again) {
		t.Errorf("delete of a key created again under its name: %v; the new key exists: %v", err, exists(again))
	}
	// Nor revoked.
	err = keyops.Ops{Client: c}.MarkRevoked(ctx, looked)
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "is not the key you meant") {
		t.Errorf("revocation of a key created again under its name: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(again), again); err != nil || again.Spec.Revoked {
		t.Errorf("the key created again under the name was revoked: %v", err)
	}
}

// fakeIssue plays a manager that issued a key for the APIKey name, and an
// attacker who then put the planted key in its Secret.
// (planted empty: the Secret holds the key issued.)
func fakeIssue(t *testing.T, c client.Client, name, planted string) {
	issued, err := keys.Generate("kw_")
	if err != nil {
		t.Error(err)
		return
	}
	if planted == "" {
		planted = issued
	}
	k := waitFor(t, c, name)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string][]byte{"key": []byte(planted)}}
	if err := c.Create(context.Background(), secret); err != nil {
		t.Error(err)
		return
	}
	setStatus(t, c, name, func(k *keywardenv1alpha1.APIKey) {
		k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: k.Generation, KeyPrefix: keys.DisplayPrefix(issued),
			KeyHash: keys.Hash(issued), Owner: k.Spec.Owner, Role: k.Spec.Role, SecretRef: &keywardenv1alpha1.SecretReference{Name: name, UID: string(secret.UID)}}
	})
	_ = k
}

// waitFor waits for the APIKey to exist and returns it.
func waitFor(t *testing.T, c client.Client, name string) *keywardenv1alpha1.APIKey {
	k := &keywardenv1alpha1.APIKey{}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, k); err == nil {
			return k
		}
	}
	t.Errorf("apikey %s did not appear", name)
	return k
}

// setStatus plays the controller: it writes the status f makes of the
// APIKey once it exists, retrying on conflicts.
func setStatus(t *testing.T, c client.Client, name string, f func(*keywardenv1alpha1.APIKey)) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		k := waitFor(t, c, name)
		f(k)
		if err := c.Status().Update(context.Background(), k); err == nil {
			return
		}
	}
	t.Errorf("apikey %s: status not written", name)
}

// fakeRotate plays a controller that rotates the key when asked: first it
// records the next key (the Stalled condition stays), then completes.
func fakeRotate(t *testing.T, c client.Client, name, oldKey string) {
	var request string
	for deadline := time.Now().Add(30 * time.Second); request == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if k := waitFor(t, c, name); k.Spec.Rotation != nil {
			request = k.Spec.Rotation.Request
		}
	}
	next, _ := keys.Generate("kw_")
	setStatus(t, c, name, func(k *keywardenv1alpha1.APIKey) {
		k.Status.ObservedGeneration = k.Generation
		k.Status.Rotation = &keywardenv1alpha1.RotationStatus{Next: &keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(next), KeyPrefix: keys.DisplayPrefix(next)}}
	})
	time.Sleep(time.Second)
	setStatus(t, c, name, func(k *keywardenv1alpha1.APIKey) {
		now := metav1.Now()
		k.Status.KeyHash, k.Status.KeyPrefix = keys.Hash(next), keys.DisplayPrefix(next)
		k.Status.Rotation = &keywardenv1alpha1.RotationStatus{LastRotatedAt: &now, Request: request, Previous: []keywardenv1alpha1.PreviousKey{{
			RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(oldKey), KeyPrefix: keys.DisplayPrefix(oldKey)},
			RotatedAt:   now, ValidUntil: metav1.NewTime(now.Add(24 * time.Hour)),
		}}}
	})
}

// Text with control characters, which a namespace member may put in a
// display name, prints as JSON and YAML with them escaped.
func TestManifestEscapesControlCharacters(t *testing.T) {
	k := &keywardenv1alpha1.APIKey{Spec: keywardenv1alpha1.APIKeySpec{DisplayName: "csi\u009b2J esc\x1b[2J nl\n bidi\u202e 😀 back\\slash"}}
	for _, output := range []string{"json", "yaml"} {
		var out bytes.Buffer
		a := &app{Streams: Streams{Out: &out}}
		if err := a.printManifest(k, output); err != nil {
			t.Fatalf("-o %s: %v", output, err)
		}
		if strings.ContainsAny(out.String(), "\u009b\x1b\u202e") {
			t.Errorf("-o %s let control characters through:\n%q", output, out.String())
		}
		var back keywardenv1alpha1.APIKey
		if err := yaml.Unmarshal(out.Bytes(), &back); err != nil || back.Spec.DisplayName != k.Spec.DisplayName {
			t.Errorf("-o %s does not read back as the same object: %v, %q", output, err, back.Spec.DisplayName)
		}
	}
}

// TestDryRunManifest checks the manifest --dry-run=client prints for Git:
// without -n it names no namespace (the key goes where it is applied, as
// kubectl's own manifests do), with -n it names that one; no cluster is
// asked.
func TestDryRunManifest(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: gone, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"create", "ci", "--display-name", "CI", "--owner", "ci@example.com", "--role", "readonly", "--lifetime", "14d", "--dry-run=client", "-o", "yaml"}
	code, stdout, stderr := run(t, kubeconfig, false, "", args...)
	if code != 0 || strings.Contains(stdout, "namespace") || !strings.Contains(stdout, "name: ci\n") || !strings.Contains(stdout, "lifetime: 336h0m0s\n") {
		t.Fatalf("exit %d, stderr %q, manifest:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = run(t, kubeconfig, false, "", append(args, "-n", "team-a")...)
	if code != 0 || !strings.Contains(stdout, "namespace: team-a\n") {
		t.Fatalf("with -n: exit %d, stderr %q, manifest:\n%s", code, stderr, stdout)
	}
}
