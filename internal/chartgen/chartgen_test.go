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
	deploy := obj("Deployment", "keywarden-manager", map[string]any{"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"name": "manager", "image": "keywarden:dev", "resources": map[string]any{"limits": map[string]any{"memory": "256Mi"}}}}}}}})
	verifier := obj("Deployment", "keywarden-verifier", map[string]any{"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"name": "verifier", "image": "keywarden:dev", "resources": map[string]any{"limits": map[string]any{"memory": "256Mi"}}}}}}}})
	pdb := obj("PodDisruptionBudget", "keywarden-verifier", map[string]any{"spec": map[string]any{"minAvailable": int64(1)}})
	variants := []Variant{
		{Condition: `eq .Values.mode "a"`, Objects: []*unstructured.Unstructured{same, a, obj("Namespace", Namespace, nil), deploy, verifier, pdb}},
		{Condition: `eq .Values.mode "b"`, Objects: []*unstructured.Unstructured{same, b, onlyB, deploy, verifier, pdb}},
		{Condition: `eq .Values.mode "c"`, Objects: []*unstructured.Unstructured{same, b, deploy, verifier, pdb}},
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
		{"deployment-keywarden-manager.yaml", []string{"replicas: {{ .Values.controller.replicas }}", "image: {{ .Values.image.repository }}{{ with .Values.image.tag }}:{{ . }}{{ end }}{{ with .Values.image.digest }}@{{ . }}{{ end }}",
			"        resources:\n        {{- toYaml .Values.controller.resources | nindent 10 }}"}, []string{"256Mi", "keywarden:dev", "if eq", "autoscaling"}},
		// The verifier's replicas are the autoscaler's when it has one.
		{"deployment-keywarden-verifier.yaml", []string{"  {{- if not .Values.verifier.autoscaling.enabled }}\n  replicas: {{ .Values.verifier.replicas }}\n  {{- end }}\n",
			"        resources:\n        {{- toYaml .Values.verifier.resources | nindent 10 }}"}, []string{"256Mi", "keywarden:dev"}},
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
	if _, ok := files["namespace-"+Namespace+".yaml"]; ok || len(files) != 6 {
		t.Errorf("files %v, want the six objects and no Namespace nor PodDisruptionBudget (the chart writes its own)", Names(files))
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
