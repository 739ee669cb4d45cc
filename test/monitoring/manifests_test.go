package monitoring

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keywarden.dev/keywarden/test/harness"
)

// TestManifestsOnTheAPIServer applies the README's argocd-cm patch, and
// config/prometheus with a server-side dry run to the local control plane with the Prometheus Operator's CRDs
// installed (PROMETHEUS_OPERATOR_CRDS, from hack/monitoring-crds.sh): the
// API server validates the ServiceMonitor and the PrometheusRule against
// the operator's schemas, and the Service, ServiceAccount, token Secret
// and binding as it would create them.
func TestManifestsOnTheAPIServer(t *testing.T) {
	crds := os.Getenv("PROMETHEUS_OPERATOR_CRDS")
	if crds == "" {
		t.Fatal("PROMETHEUS_OPERATOR_CRDS is not set: run make test, which fetches them with hack/monitoring-crds.sh")
	}
	c, err := harness.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := c.Kubectl(ctx, "apply", "-f", crds); err != nil {
		t.Fatalf("installing the Prometheus Operator's CRDs: %v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rendered, err := c.Kubectl(ctx, "kustomize", filepath.Join(c.Root, "config/prometheus"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/prometheus: %v\n%s", err, rendered)
	}
	out, err := c.KubectlIn(ctx, strings.NewReader(rendered), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Fatalf("the API server refuses config/prometheus: %v\n%s", err, out)
	}
	for _, want := range []string{"servicemonitor.monitoring.coreos.com/keywarden created (server dry run)",
		"prometheusrule.monitoring.coreos.com/keywarden created (server dry run)",
		"service/keywarden-metrics created (server dry run)",
		"clusterrolebinding.rbac.authorization.k8s.io/keywarden-metrics-scraper created (server dry run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	// The README's command merges the Argo CD health checks into an
	// existing argocd-cm, keeping what it held.
	if out, err := c.Kubectl(ctx, "create", "namespace", "argocd"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "create", "configmap", "argocd-cm", "-n", "argocd", "--from-literal=url=https://argocd.example.com"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := c.Kubectl(ctx, "-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge", "--patch-file", filepath.Join(c.Root, "docs/gitops/argocd-cm.yaml")); err != nil {
		t.Fatalf("the README's patch of argocd-cm: %v\n%s", err, out)
	}
	keys, err := c.Kubectl(ctx, "get", "configmap", "argocd-cm", "-n", "argocd", "-o", `go-template={{range $k, $v := .data}}{{$k}} {{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	if keys != "resource.customizations.health.keywarden.dev_APIKey resource.customizations.health.keywarden.dev_APIKeyClass url " {
		t.Errorf("argocd-cm holds %q after the patch", keys)
	}

	// A field the operator does not know is refused: the dry run checks
	// the schema, it does not accept anything.
	bad := strings.Replace(rendered, "honorLabels: true", "honorLabels: true\n    honourLabels: true", 1)
	if out, err := c.KubectlIn(ctx, strings.NewReader(bad), "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil || !strings.Contains(out+err.Error(), "honourLabels") {
		t.Errorf("a ServiceMonitor with an unknown field passed the dry run: %v\n%s", err, out)
	}
}
