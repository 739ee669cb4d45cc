package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keywarden.dev/keywarden/test/harness"
)

// previousChart is the chart of the previous release (hack/previous.sh's
// commit), from the repository's history: one that kept the CRDs in crds/.
func previousChart(t *testing.T) string {
	t.Helper()
	r := root(t)
	commit, err := exec.Command(filepath.Join(r, "hack", "previous.sh"), "--commit").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := exec.Command("git", "-C", r, "archive", strings.TrimSpace(string(commit)), "charts/keywarden")
	extract := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	extract.Stdin = pipe
	if err := extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v (a shallow clone? hack/previous.sh fetches the history)", commit, err)
	}
	if err := extract.Wait(); err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(dir, "charts", "keywarden")
	if _, err := os.Stat(filepath.Join(chart, "crds")); err != nil {
		t.Fatalf("the previous chart has no crds/: %v", err)
	}
	return chart
}

// readmeCommands are the README's inline commands that start with prefix.
func readmeCommands(t *testing.T, prefix string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, part := range strings.Split(string(b), "`") {
		if strings.HasPrefix(part, prefix) {
			out = append(out, strings.Fields(part))
		}
	}
	return out
}

// helmUpgradeFromCRDsDir installs the previous release's chart with helm
// on the API server, upgrades it to this chart after adopting the CRDs as
// the README says (and fails before), and uninstalls it, leaving the CRDs.
func helmUpgradeFromCRDsDir(t *testing.T, c *harness.Cluster, ctx context.Context) {
	const release, namespace = "keywarden", "kw-helm"
	chart := filepath.Join(root(t), "charts", "keywarden")
	home := t.TempDir()
	h := func(args ...string) (string, error) {
		return helmRun(t, append(append([]string{}, args...), "--kubeconfig", c.Kubeconfig, "--namespace", namespace,
			"--repository-cache", filepath.Join(home, "cache"), "--registry-config", filepath.Join(home, "registry.json"))...)
	}
	if out, err := h("install", release, previousChart(t), "--create-namespace"); err != nil {
		t.Fatalf("installing the previous chart: %v\n%s", err, out)
	}
	// Without adoption, Helm refuses to take over CRDs it did not make.
	if out, err := h("upgrade", release, chart); err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition") {
		t.Fatalf("an upgrade over CRDs the release does not own: %v\n%s", err, out)
	}
	label, annotate := readmeCommands(t, "kubectl label crd"), readmeCommands(t, "kubectl annotate crd")
	if len(label) != 1 || len(annotate) != 1 {
		t.Fatalf("the README's adoption commands: %v %v", label, annotate)
	}
	for _, cmd := range [][]string{label[0], annotate[0]} {
		args := make([]string, 0, len(cmd))
		for _, a := range cmd[1:] {
			args = append(args, strings.NewReplacer("release-namespace=keywarden-system", "release-namespace="+namespace).Replace(a))
		}
		if out, err := c.Kubectl(ctx, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	if out, err := h("upgrade", release, chart); err != nil {
		t.Fatalf("upgrading after the README's adoption: %v\n%s", err, out)
	}
	for _, crd := range []string{"apikeys.keywarden.dev", "apikeyclasses.keywarden.dev"} {
		out, err := c.Kubectl(ctx, "get", "crd", crd, "-o", `jsonpath={.metadata.annotations.helm\.sh/resource-policy} {.metadata.annotations.meta\.helm\.sh/release-name}`)
		if err != nil || out != "keep "+release {
			t.Errorf("%s after the upgrade: %q %v", crd, out, err)
		}
	}
	if out, err := c.Kubectl(ctx, "get", "deployment", "-n", namespace, "keywarden-verifier", "-o", "jsonpath={.spec.template.spec.containers[0].args[0]}"); err != nil || out != "verifier" {
		t.Errorf("the upgraded release's verifier: %q %v", out, err)
	}
	if out, err := h("uninstall", release); err != nil {
		t.Fatalf("uninstalling: %v\n%s", err, out)
	}
	// The keys' CRDs stay (crds.keep): deleting them deletes every key.
	if out, err := c.Kubectl(ctx, "get", "crd", "apikeys.keywarden.dev", "apikeyclasses.keywarden.dev", "-o", "name"); err != nil || strings.Count(out, "\n") != 2 {
		t.Errorf("the CRDs after uninstalling: %q %v", out, err)
	}
	if out, err := c.Kubectl(ctx, "get", "deployments", "-n", namespace, "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("Deployments left after uninstalling: %q %v", out, err)
	}
}
