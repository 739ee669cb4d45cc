package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
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
		{"list"}, {"show", "x"}, {"revoke", "--yes", "x"},
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
	c, err := client.New(cfg, client.Options{Scheme: scheme()})
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
}

// fakeIssue plays a manager that issued a key for the APIKey name, and an
// attacker who then put the planted key in its Secret.
func fakeIssue(t *testing.T, c client.Client, name, planted string) {
	ctx := context.Background()
	issued, err := keys.Generate("kw_")
	if err != nil {
		t.Error(err)
		return
	}
	k := &keywardenv1alpha1.APIKey{}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, k); err == nil {
			break
		}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string][]byte{"key": []byte(planted)}}
	if err := c.Create(ctx, secret); err != nil {
		t.Error(err)
		return
	}
	k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, ObservedGeneration: k.Generation, KeyPrefix: keys.DisplayPrefix(issued),
		KeyHash: keys.Hash(issued), Owner: "x", Role: "x", SecretRef: &keywardenv1alpha1.SecretReference{Name: name}}
	if err := c.Status().Update(ctx, k); err != nil {
		t.Error(err)
	}
}
