package chartgen

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(kind, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": name, "namespace": Namespace}}}
	for k, v := range fields {
		u.Object[k] = v
	}
	return u
}

func TestTemplates(t *testing.T) {
	same := obj("ConfigMap", "same", map[string]any{"data": map[string]any{"a": "1"}})
	a := obj("ConfigMap", "varies", map[string]any{"data": map[string]any{"mode": "a"}})
	b := obj("ConfigMap", "varies", map[string]any{"data": map[string]any{"mode": "b"}})
	onlyB := obj("Secret", "only-b", nil)
	rule := obj("ConfigMap", "rule", map[string]any{"data": map[string]any{"summary": "key {{ $labels.name }}"}})
	deploy := obj("Deployment", "keywarden-manager", nil)
	pdb := obj("PodDisruptionBudget", "keywarden-verifier", nil)
	sa := obj("ServiceAccount", "keywarden-manager", nil)
	scraper := obj("ServiceAccount", "keywarden-metrics-scraper", nil)
	binding := obj("ClusterRoleBinding", "keywarden-manager", map[string]any{"subjects": []any{
		map[string]any{"kind": "ServiceAccount", "name": "keywarden-manager", "namespace": Namespace},
		map[string]any{"kind": "User", "name": "keywarden-verifier"},
	}})
	policy := obj("ValidatingAdmissionPolicy", "keywarden-verifier-status", map[string]any{"spec": map[string]any{"matchConditions": []any{
		map[string]any{"name": "verifier", "expression": "request.userInfo.username.endsWith(':keywarden-verifier')"},
	}}})
	workloads := []*unstructured.Unstructured{deploy, pdb, sa, scraper, binding, policy, obj("Service", "keywarden-verifier", nil), obj("NetworkPolicy", "keywarden-verifier", nil)}
	variants := []Variant{
		{Condition: `eq .Values.mode "a"`, Objects: append([]*unstructured.Unstructured{same, a, obj("Namespace", Namespace, nil)}, workloads...)},
		{Condition: `eq .Values.mode "b"`, Objects: append([]*unstructured.Unstructured{same, b, onlyB}, workloads...)},
		{Condition: `eq .Values.mode "c"`, Objects: append([]*unstructured.Unstructured{same, b}, workloads...)},
	}
	files, err := Templates(variants, []Optional{{Objects: []*unstructured.Unstructured{rule}, Condition: func(*unstructured.Unstructured) string { return ".Values.rules" }}},
		func(u *unstructured.Unstructured) string {
			if u.GetName() == "same" {
				return ".Values.enabled"
			}
			return ""
		})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file      string
		want, not []string
	}{
		{"configmap-same.yaml", []string{Header + "{{- if .Values.enabled }}\n---\n", "namespace: {{ .Release.Namespace | quote }}", "{{- end }}\n"}, []string{"eq .Values.mode", Namespace}},
		{"configmap-varies.yaml", []string{`{{- if eq .Values.mode "a" }}`, "mode: a", `{{- else if or (eq .Values.mode "b") (eq .Values.mode "c") }}`, "mode: b", "{{- end }}"}, nil},
		{"secret-only-b.yaml", []string{`{{- if eq .Values.mode "b" }}`}, []string{`"c"`, `"a"`}},
		{"configmap-rule.yaml", []string{"{{- if .Values.rules }}", `key {{"{{"}} $labels.name {{"}}"}}`}, nil},
		// A component's ServiceAccount is the chart's value wherever it
		// is named: in a binding's subjects and in the admission policies
		// that hold its writes; others' names stay.
		{"clusterrolebinding-keywarden-manager.yaml", []string{`name: {{ include "keywarden.serviceAccountName" (list . "controller") | quote }}`, "name: keywarden-verifier\n"}, nil},
		// The whole username: the chart knows its namespace.
		{"validatingadmissionpolicy-keywarden-verifier-status.yaml", []string{`endsWith(':{{ .Release.Namespace }}:{{ include "keywarden.serviceAccountName" (list . "verifier") }}')`}, []string{"':keywarden-verifier'"}},
		// Not a component's: templated as config/ holds it.
		{"serviceaccount-keywarden-metrics-scraper.yaml", []string{"name: keywarden-metrics-scraper"}, nil},
	}
	for _, tt := range tests {
		got := string(files[tt.file])
		if got == "" {
			t.Errorf("no %s among %v", tt.file, Names(files))
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", tt.file, w, got)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s holds %q:\n%s", tt.file, n, got)
			}
		}
	}
	// The workloads (Deployments, the components' ServiceAccounts,
	// Services, NetworkPolicies, the PodDisruptionBudget) are the chart's
	// own, and the Namespace is the release's.
	if len(files) != 7 {
		t.Errorf("files %v, want the seven objects that are not workloads, nor the Namespace", Names(files))
	}
	if _, err := Templates(variants, []Optional{{Objects: []*unstructured.Unstructured{same}, Condition: func(*unstructured.Unstructured) string { return "x" }}}, nil); err == nil {
		t.Error("an object both in an install and optional was accepted")
	}
}

func TestTemplatesRefuseAnObjectTwiceInAnInstall(t *testing.T) {
	twice := []Variant{{Condition: "true", Objects: []*unstructured.Unstructured{obj("ConfigMap", "x", nil), obj("ConfigMap", "x", nil)}}}
	if _, err := Templates(twice, nil, nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("an object twice in one install: %v", err)
	}
}

func TestCRDTemplate(t *testing.T) {
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  annotations:\n    controller-gen.kubebuilder.io/version: v0.23.0\n  name: apikeys.keywarden.dev\nspec:\n  description: a {{ brace }}\n"
	got, err := crdTemplate([]byte(crd))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		Header + "{{- if .Values.crds.enabled }}\n",
		"  annotations:\n    {{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n    {{- end }}\n    controller-gen",
		`a {{"{{"}} brace {{"}}"}}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the template lacks %q:\n%s", want, got)
		}
	}
	if _, err := crdTemplate([]byte("kind: CustomResourceDefinition\nmetadata:\n  name: x\n")); err == nil {
		t.Error("a CRD without annotations to add the keep policy to was templated")
	}
}
