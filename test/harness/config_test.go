package harness

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKustomizations builds every kustomization under config/ with the
// project's kubectl, and checks that each holds what it is for.
func TestKustomizations(t *testing.T) {
	assets, err := Assets()
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{
		"config/crd":  {"kind: CustomResourceDefinition", "name: apikeys.keywarden.dev", "name: apikeyclasses.keywarden.dev"},
		"config/rbac": {"name: keywarden-manager", "name: keywarden-leader-election", "rbac.authorization.k8s.io/aggregate-to-view", "kind: ValidatingAdmissionPolicy\n", "kind: ValidatingAdmissionPolicyBinding", "policyName: keywarden-manager-secrets", "policyName: keywarden-manager-configmaps", "policyName: keywarden-verifier-status", "name: keywarden-verifier-cert-reader", "name: keywarden-console"},
		"config/base": {"kind: Deployment", "name: keywarden-verifier", "serviceAccountName: keywarden-verifier", "serviceAccountName: keywarden-manager", "- controller\n", "- verifier\n", "kind: PodDisruptionBudget", "kind: CustomResourceDefinition", "name: keywarden-manager-secrets", "--verifier-certs=self", "--verifier-cert-dir=/var/run/keywarden/verifier-certs", "--metrics-cert-dir=/var/run/keywarden/verifier-certs", "scheme: HTTPS", "kind: NetworkPolicy", "keywarden.dev/verifier-client: \"true\"", "name: keywarden-verifier-ca-reader"},
		// The default install has the webhook, failing open: while no
		// controller answers it, APIKeys are let in and judged later.
		"config/default":                   {"kind: Deployment", "- controller\n", "- verifier\n", "kind: CustomResourceDefinition", "kind: ValidatingWebhookConfiguration", "failurePolicy: Ignore", "--enable-webhook", "name: keywarden-webhook-cert", "policyName: keywarden-manager-webhook-configuration"},
		"config/console":                   {"kind: Deployment", "serviceAccountName: keywarden-console", "- console\n", "keywarden.dev/console-client: \"true\"", "path: /healthz"},
		"config/verifier-autoscaling":      {"kind: HorizontalPodAutoscaler", "name: keywarden-verifier", "averageUtilization: 70"},
		"config/samples":                   {"kind: APIKeyClass", "name: platform-admin"},
		"config/prometheus":                {"kind: ServiceMonitor", "kind: PrometheusRule", "honorLabels: true", "name: keywarden-metrics-reader", "type: kubernetes.io/service-account-token", "name: keywarden-verifier-ca\n", "serverName: keywarden-verifier.keywarden-system.svc"},
		"config/owner-binding":             {"kind: ValidatingAdmissionPolicy\n", "paramKind:", "name: keywarden-owner-binding", "parameterNotFoundAction: Deny"},
		"config/with-webhook":              {"kind: ValidatingWebhookConfiguration", "--enable-webhook", "name: keywarden-webhook-service", "name: keywarden-webhook-cert", "fieldPath: metadata.namespace", "resourceNames:\n  - keywarden-validating-webhook-configuration\n  resources:\n  - validatingwebhookconfigurations", "mountPath: /var/run/keywarden/webhook-certs", "mountPath: /var/run/keywarden/verifier-certs", "port: webhook", "policyName: keywarden-manager-webhook-configuration"},
		"config/with-webhook-cert-manager": {"kind: ValidatingWebhookConfiguration", "cert-manager.io/inject-ca-from: keywarden-system/keywarden-webhook", "--webhook-certs=files", "name: keywarden-webhook-service", "mountPath: /etc/keywarden/webhook-certs", "mountPath: /var/run/keywarden/verifier-certs", "port: webhook"},
	}
	// Only config/with-webhook (and so config/default) may touch webhook
	// configurations, and only Keywarden's own.
	absent := map[string][]string{
		"config/rbac":                      {"validatingwebhookconfigurations"},
		"config/base":                      {"validatingwebhookconfigurations", "kind: ValidatingWebhookConfiguration"},
		"config/namespaced":                {"validatingwebhookconfigurations", "kind: ValidatingWebhookConfiguration"},
		"config/with-webhook-cert-manager": {"validatingwebhookconfigurations"},
	}
	for dir, want := range tests {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", filepath.Join(root, dir)).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
			}
			for _, w := range want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s lacks %q", dir, w)
				}
			}
			for _, w := range absent[dir] {
				if strings.Contains(string(out), w) {
					t.Errorf("%s grants %q", dir, w)
				}
			}
		})
	}
}
