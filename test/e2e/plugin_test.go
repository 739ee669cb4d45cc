//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/test/harness"
)

var updatePlugin = flag.Bool("update-plugin-golden", false, "write the plugin's golden outputs")

// pluginRun is one run of kubectl-keywarden.
type pluginRun struct {
	stdout, stderr string
	code           int
}

// plugin runs kubectl-keywarden with the kubeconfig given (the admin's
// when empty) and stdin. Every output is kept for the leak check except
// create's standard output, which is the key.
func (e *env) plugin(kubeconfig, stdin string, args ...string) pluginRun {
	e.t.Helper()
	if kubeconfig == "" {
		kubeconfig = e.cluster.Kubeconfig
	}
	cmd := exec.Command(e.pluginBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := pluginRun{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		e.t.Fatal(err)
	}
	e.mu.Lock()
	if len(args) == 0 || args[0] != "create" || strings.Contains(strings.Join(args, " "), "--dry-run=client") {
		e.pluginOutput.WriteString(r.stdout)
	}
	e.pluginOutput.WriteString(r.stderr)
	e.mu.Unlock()
	return r
}

// ok runs the plugin and fails the test unless it exits 0.
func (e *env) pluginOK(args ...string) pluginRun {
	e.t.Helper()
	r := e.plugin("", "", args...)
	if r.code != 0 {
		e.t.Fatalf("kubectl keywarden %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// pluginFails runs the plugin and checks that it exits 1 with each of the
// texts on standard error and nothing on standard output.
func (e *env) pluginFails(kubeconfig, stdin string, want []string, args ...string) pluginRun {
	e.t.Helper()
	r := e.plugin(kubeconfig, stdin, args...)
	if r.code != 1 {
		e.t.Fatalf("kubectl keywarden %s: exit %d, want 1\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			e.t.Fatalf("kubectl keywarden %s: standard error lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

var (
	times    = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?`)
	prefixes = regexp.MustCompile(`\bpt_[A-Za-z0-9]{5}\b`)
)

// goldenPlugin compares an output, its times and key prefixes masked, with
// a golden file.
func (e *env) goldenPlugin(name, got string) {
	e.t.Helper()
	got = times.ReplaceAllStringFunc(got, func(t string) string { return "YYYY-MM-DD hh:mm:ss"[:len(t)] })
	got = prefixes.ReplaceAllString(got, "pt_xxxxx")
	path := filepath.Join("testdata", "plugin", name)
	if *updatePlugin {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	if got != string(want) {
		e.t.Fatalf("%s differs (-update-plugin-golden to accept):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

const pluginClass = `apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata:
  name: plugin-team
spec:
  keyPrefix: pt_
  maxActiveKeysPerOwner: 1
  maxLifetime: 2160h
  roles:
    - name: standard
      scopes: [cache:purge, pages:read]
      scopeDescriptions:
        - scope: cache:purge
          description: Purge cached pages
    - name: readonly
      scopes: [pages:read]
`

// kubectlPlugin: an admin's session with kubectl keywarden against the
// running managers: create prints the key once and only it; a refused or
// disallowed key is explained and leaves nothing; list, show and whose
// answer as the golden files say; rotate and revoke take effect at the
// verifier; a person without rights is told which; kubectl finds the
// plugin on the PATH and completes names.
func kubectlPlugin(e *env) {
	ctx := context.Background()
	const ns = "plugin-team"
	e.kubectl("create", "namespace", ns)
	if _, err := e.kubectlIn(pluginClass, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}

	// create: the key on standard output, alone; the rest on standard error.
	r := e.pluginOK("create", "wordpress-purge", "-n", ns, "--display-name", "WordPress purge plugin", "--owner", "alice@example.com",
		"--role", "standard", "--scope", "cache:purge", "--lifetime", "30d", "--class", "plugin-team", "--track-last-used",
		"--description", "Purges the CDN from WordPress")
	raw := strings.TrimSuffix(r.stdout, "\n")
	if strings.Contains(raw, "\n") || raw != e.secretKey(ns, "wordpress-purge") {
		e.t.Fatalf("create printed %d bytes that are not the key in the Secret, alone", len(r.stdout))
	}
	if !strings.Contains(r.stderr, "issued: prefix pt_") || strings.Contains(r.stderr, raw) {
		e.t.Fatalf("create's standard error: %s", strings.ReplaceAll(r.stderr, raw, "<the key>"))
	}
	got, err := verify(e.verifiers[0], map[string]any{"key": raw, "namespace": ns})
	if err != nil || got["valid"] != true || got["owner"] != "alice@example.com" {
		e.t.Fatalf("the created key verifies as %v, %v", got, err)
	}
	e.pluginOK("create", "nightly-report", "-n", ns, "--display-name", "Nightly report", "--owner", "bob@example.com",
		"--role", "readonly", "--expires-at", time.Now().Add(5*24*time.Hour).UTC().Format(time.RFC3339), "--class", "plugin-team")
	e.secretKey(ns, "nightly-report")

	// A second key for alice: refused by her limit; nothing is left.
	e.pluginFails("", "", []string{"was refused (ActiveKeyLimit)", "nothing was issued"}, "create", "second", "-n", ns,
		"--display-name", "Second", "--owner", "alice@example.com", "--role", "standard", "--class", "plugin-team")
	// A role the class does not have: the reason named; nothing is left.
	e.pluginFails("", "", []string{"cannot be issued (RoleNotAllowed)", "nothing was issued"}, "create", "admin-key", "-n", ns,
		"--display-name", "Admin", "--owner", "carol@example.com", "--role", "admin", "--class", "plugin-team")
	for _, name := range []string{"second", "admin-key"} {
		if _, err := e.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			e.t.Fatalf("a Secret %s was left: %v", name, err)
		}
		if out, err := e.cluster.Kubectl(ctx, "get", "apikey", "-n", ns, name); err == nil {
			e.t.Fatalf("apikey %s was left:\n%s", name, out)
		}
	}
	// Input the API server refuses, and input refused before it is sent.
	e.pluginFails("", "", []string{"the API server refused the key", "spec.role"}, "create", "bad-role", "-n", ns,
		"--display-name", "x", "--owner", "x", "--role", "Not A Role")
	e.pluginFails("", "", []string{`--lifetime: "30 days" is not a duration`}, "create", "x", "-n", ns,
		"--display-name", "x", "--owner", "x", "--role", "x", "--lifetime", "30 days")
	e.pluginFails("", "", []string{"already exists"}, "create", "wordpress-purge", "-n", ns,
		"--display-name", "x", "--owner", "x", "--role", "standard")

	// --dry-run=client prints a manifest the API server accepts.
	r = e.pluginOK("create", "ci-deploy", "-n", ns, "--display-name", "CI deploy", "--owner", "ci@example.com", "--role", "readonly",
		"--scope", "pages:read", "--lifetime", "7d", "--class", "plugin-team", "--dry-run=client", "-o", "yaml")
	e.goldenPlugin("create-dry-run.yaml", r.stdout)
	if _, err := e.kubectlIn(r.stdout, "apply", "--dry-run=server", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}

	// Use the key, so that LAST USED shows a time.
	e.eventually("the use of the key is recorded", 30*time.Second, func() bool {
		_, _ = verify(e.verifiers[0], map[string]any{"key": raw, "namespace": ns})
		return !strings.Contains(e.pluginOK("list", "-n", ns, "--search", "wordpress").stdout, "Never")
	})

	e.goldenPlugin("list.txt", e.pluginOK("list", "-n", ns).stdout)
	e.goldenPlugin("list-wide-bob.txt", e.pluginOK("list", "-n", ns, "--owner", "bob@example.com", "-o", "wide").stdout)
	e.goldenPlugin("list-expiring.txt", e.pluginOK("list", "-n", ns, "--expiring-within", "7d").stdout)
	if r := e.pluginOK("list", "-n", ns, "--unused-for", "30d"); r.stdout != "" || !strings.Contains(r.stderr, "No keys found in namespace "+ns) {
		e.t.Fatalf("list --unused-for 30d: %q %q", r.stdout, r.stderr)
	}
	all := e.pluginOK("list", "-A", "--phase", "active").stdout
	if !strings.HasPrefix(all, "NAMESPACE ") || !strings.Contains(all, "\nplugin-team ") || !strings.Contains(all, "\ndefault ") {
		e.t.Fatalf("list -A:\n%s", all)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Metadata map[string]any `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(e.pluginOK("list", "-n", ns, "-o", "json", "--search", "PT_").stdout), &list); err != nil ||
		list.Kind != "APIKeyList" || len(list.Items) != 2 || list.Items[0].Metadata["name"] != "nightly-report" {
		e.t.Fatalf("list -o json: %v %+v", err, list)
	}
	e.goldenPlugin("show.txt", e.pluginOK("show", "wordpress-purge", "-n", ns).stdout)
	e.pluginFails("", "", []string{"apikey plugin-team/nope does not exist"}, "show", "nope", "-n", ns)

	// whose: the holder of a key from standard input; the key never echoed.
	r = e.plugin("", raw+"\n", "whose")
	if r.code != 0 {
		e.t.Fatalf("whose: exit %d: %s", r.code, r.stderr)
	}
	e.goldenPlugin("whose.txt", r.stdout)
	e.pluginFails("", "not-a-key-at-all", []string{"not a Keywarden key"}, "whose")
	unknown, err := keys.Generate("pt_")
	if err != nil {
		e.t.Fatal(err)
	}
	e.pluginFails("", unknown, []string{"No APIKey in every namespace holds this key"}, "whose")

	// A person with fewer rights is told which right is missing.
	viewer := e.pluginAccount(ns, "viewer", `[{"apiGroups":["keywarden.dev"],"resources":["apikeys"],"verbs":["get","list"]}]`)
	e.pluginFails(viewer, "", []string{"you may not create apikeys.keywarden.dev in namespace plugin-team", "kubectl auth can-i create apikeys.keywarden.dev -n plugin-team"},
		"create", "x", "-n", ns, "--display-name", "x", "--owner", "x", "--role", "readonly")
	e.pluginFails(viewer, "", []string{"you may not list apikeys.keywarden.dev across all namespaces", "kubectl auth can-i list apikeys.keywarden.dev -A"}, "list", "-A")
	e.pluginFails(viewer, "", []string{"you may not patch apikeys.keywarden.dev in namespace plugin-team"}, "revoke", "nightly-report", "-n", ns)
	if r := e.plugin(viewer, "", "show", "nightly-report", "-n", ns); r.code != 0 || !strings.Contains(r.stdout, "(you may not list events in namespace plugin-team)") {
		e.t.Fatalf("show as a viewer: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.plugin(viewer, unknown, "whose"); r.code != 1 || !strings.Contains(r.stderr, "searching namespace default only") {
		e.t.Fatalf("whose as a viewer: %d %s%s", r.code, r.stdout, r.stderr)
	}
	creator := e.pluginAccount(ns, "creator", `[{"apiGroups":["keywarden.dev"],"resources":["apikeys"],"verbs":["get","list","create","delete"]}]`)
	e.pluginFails(creator, "", []string{"apikey plugin-team/own is issued, but reading its Secret own failed", "you may not get secrets in namespace plugin-team"},
		"create", "own", "-n", ns, "--display-name", "Own", "--owner", "dave@example.com", "--role", "readonly", "--class", "plugin-team")
	e.secretKey(ns, "own")

	// rotate: a new key in the Secret; the old one is the previous key.
	r = e.pluginOK("rotate", "wordpress-purge", "-n", ns)
	if !strings.Contains(r.stdout, "rotated at") || !strings.Contains(r.stdout, "the previous key pt_") {
		e.t.Fatalf("rotate: %s", r.stdout)
	}
	rotated := e.secretKey(ns, "wordpress-purge")
	if rotated == raw {
		e.t.Fatal("rotate left the key in the Secret as it was")
	}
	if r := e.plugin("", raw, "whose", "-n", ns); r.code != 0 || !strings.Contains(r.stdout, "previous, rotated out") {
		e.t.Fatalf("whose of the rotated-out key: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// revoke: the verifier refuses the key; a second revoke, or an unknown
	// name, is an error, and the other names are revoked still.
	r = e.pluginOK("revoke", "wordpress-purge", "-n", ns)
	if !strings.HasPrefix(r.stdout, "apikey plugin-team/wordpress-purge revoked at ") {
		e.t.Fatalf("revoke: %q", r.stdout)
	}
	if got, err := verify(e.verifiers[1], map[string]any{"key": rotated, "namespace": ns}); err != nil || got["code"] != "REVOKED" {
		e.t.Fatalf("the revoked key verifies as %v, %v", got, err)
	}
	e.pluginFails("", "", []string{"apikey plugin-team/wordpress-purge was already revoked at"}, "revoke", "wordpress-purge", "-n", ns)
	r = e.pluginFails("", "", []string{"apikey plugin-team/ghost does not exist"}, "revoke", "ghost", "nightly-report", "-n", ns)
	if !strings.Contains(r.stdout, "nightly-report revoked at") {
		e.t.Fatalf("revoke ghost nightly-report did not revoke nightly-report: %q", r.stdout)
	}
	e.pluginFails("", "", []string{"only an active key can be rotated", "Revoked"}, "rotate", "nightly-report", "-n", ns)

	// The kubeconfig's namespace and --context, as kubectl reads them.
	b, err := os.ReadFile(e.cluster.Kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	contexts := filepath.Join(e.dir, "plugin-contexts.kubeconfig")
	if err := os.WriteFile(contexts, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	cluster := e.kubectl("--kubeconfig", contexts, "config", "view", "-o", "jsonpath={.contexts[0].context.cluster}")
	user := e.kubectl("--kubeconfig", contexts, "config", "view", "-o", "jsonpath={.contexts[0].context.user}")
	e.kubectl("--kubeconfig", contexts, "config", "set-context", "team", "--cluster", cluster, "--user", user, "--namespace", ns)
	if r := e.plugin(contexts, "", "list", "--context", "team", "--phase", "Revoked"); r.code != 0 || !strings.Contains(r.stdout, "nightly-report") {
		e.t.Fatalf("list --context team: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.plugin(contexts, "", "list", "--phase", "Revoked"); r.code != 0 || strings.Contains(r.stdout, "nightly-report") {
		e.t.Fatalf("list in the current context's namespace: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// kubectl finds the plugin on the PATH; completion offers names.
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(kubectl, "keywarden", "list", "-n", ns, "--phase", "Revoked")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cluster.Kubeconfig, "PATH="+filepath.Dir(e.pluginBin)+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "wordpress-purge") {
		e.t.Fatalf("kubectl keywarden list: %v\n%s", err, out)
	}
	if r := e.pluginOK("__complete", "revoke", "-n", ns, "wor"); !strings.HasPrefix(r.stdout, "wordpress-purge\n") {
		e.t.Fatalf("completion of revoke wor: %q", r.stdout)
	}
	// kubectl completes `kubectl keywarden revoke wor<TAB>` through
	// hack/kubectl_complete-keywarden on the PATH.
	root, err := harness.RepoRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd = exec.Command(kubectl, "__complete", "keywarden", "revoke", "-n", ns, "wor")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cluster.Kubeconfig,
		"PATH="+filepath.Dir(e.pluginBin)+":"+filepath.Join(root, "hack")+":"+os.Getenv("PATH"))
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "wordpress-purge\n") {
		e.t.Fatalf("kubectl __complete keywarden revoke wor: %v\n%s", err, out)
	}
	if r := e.pluginOK("completion", "bash"); !strings.Contains(r.stdout, "__start_kubectl-keywarden") {
		e.t.Fatal("completion bash printed no bash completion")
	}
	e.note("kubectl plugin: create printed the key once, alone on standard output; refused and disallowed keys explained by reason and left nothing; list, show and whose as golden; rotate and revoke seen at the verifier; missing rights named by verb and resource; found by kubectl on the PATH")
}

// pluginAccount makes a ServiceAccount with a Role of the rules in the
// namespace and returns a kubeconfig that presents its token.
func (e *env) pluginAccount(ns, name, rules string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "plugin-"+name+".kubeconfig")
	if err := e.cluster.KubeconfigWithToken(path, e.account(ns, name, rules, false)); err != nil {
		e.t.Fatal(err)
	}
	return path
}
