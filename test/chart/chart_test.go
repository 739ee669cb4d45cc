// Package chart tests the Helm chart charts/keywarden: that it is what
// hack/chart generates from config/ (so the two cannot drift apart), that
// helm lint passes, that each option renders the matching install of
// config/ object for object, and that the API server accepts every
// rendering (a server-side dry run on the local control plane). make test
// provides helm (HELM) and the Prometheus Operator's CRDs.
package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"keywarden.dev/keywarden/internal/chartgen"
	"keywarden.dev/keywarden/test/harness"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmRun(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		t.Fatal("HELM is not set: run make test, which builds helm into bin/")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, stderr.Bytes())
	}
	return string(out), nil
}

// TestChartIsGeneratedFromConfig: the chart's templates and CRDs are what
// hack/chart makes of config/ now.
func TestChartIsGeneratedFromConfig(t *testing.T) {
	r := root(t)
	files, err := chartgen.Generate(r, harness.Kustomize)
	if err != nil {
		t.Fatal(err)
	}
	if diff := chartgen.Compare(filepath.Join(r, "charts", "keywarden"), files); len(diff) > 0 {
		t.Errorf("charts/keywarden differs from config/; run make chart:\n  %s", strings.Join(diff, "\n  "))
	}
}

func decode(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := harness.Decode([]byte(text))
	if err != nil {
		t.Fatalf("decoding a rendering: %v", err)
	}
	return objs
}

func byID(objs []*unstructured.Unstructured, skip func(*unstructured.Unstructured) bool) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if !skip(o) {
			m[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	return m
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// options are the values the tests render with, each with the install of
// config/ it must equal (none for options config/ has no install of), and
// what must land where (values.go). A set of "json:k=v" is --set-json.
type option struct {
	name    string
	set     []string
	install string
	check   func(t *testing.T, objs map[string]*unstructured.Unstructured)
}

var options = append([]option{
	{"defaults", nil, "config/default", nil},
	{"no webhook", []string{"webhook.certificates=none"}, "config/base", nil},
	{"webhook with a self-issued certificate", []string{"webhook.certificates=self"}, "config/with-webhook", nil},
	{"webhook with cert-manager", []string{"webhook.certificates=cert-manager"}, "config/with-webhook-cert-manager", nil},
	{"namespaced", []string{"webhook.certificates=none", "namespaces={team-a,team-b}"}, "config/namespaced", nil},
	{"monitoring", []string{"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"}, "", nil},
	{"lean", []string{"networkPolicy.enabled=false", "podDisruptionBudget.enabled=false", "metrics.service.enabled=false"}, "", nil},
	{"sized", []string{"controller.replicas=3", "verifier.replicas=4", "image.repository=registry.example.com/keywarden", "image.tag=v1.2.3", "verifier.resources.limits.memory=512Mi"}, "", nil},
	{"pinned", []string{"image.repository=registry.example.com/keywarden", "image.tag=v1.2.3", "image.digest=sha256:" + strings.Repeat("ab", 32)}, "", nil},
	{"by digest alone", []string{"image.tag=", "image.digest=sha256:" + strings.Repeat("cd", 32)}, "", nil},
	{"single replica", []string{"verifier.replicas=1"}, "", nil},
	{"autoscaled verifier", []string{"verifier.autoscaling.enabled=true"}, "", nil},
	{"console", []string{"console.enabled=true"}, "", nil},
}, valueOptions...)

// kubeVersion is the local control plane's, which the chart is rendered
// for (helm otherwise assumes an old default).
var kubeVersion = func() string {
	v, err := harness.KubeVersion()
	if err != nil {
		panic(err)
	}
	return v
}()

func template(t *testing.T, chart string, set []string) string {
	return helm(t, append([]string{"template", "keywarden", chart, "--namespace", chartgen.Namespace, "--kube-version", kubeVersion}, setArgs(set)...)...)
}

// setArgs are the helm flags of an option's values.
func setArgs(set []string) []string {
	var args []string
	for _, s := range set {
		if j, ok := strings.CutPrefix(s, "json:"); ok {
			args = append(args, "--set-json", j)
		} else {
			args = append(args, "--set", s)
		}
	}
	return args
}

// normalize drops what only a chart adds to config/'s objects: the keep
// policy on the CRDs (crds.keep), and the namespace in the usernames the
// admission policies match (config/ matches its ServiceAccounts in any
// namespace, so that an install moved elsewhere stays held; the chart
// knows its namespace, rendered here as namespace).
func normalize(objs []*unstructured.Unstructured, namespace string) []*unstructured.Unstructured {
	for _, o := range objs {
		if a := o.GetAnnotations(); a != nil && o.GetKind() == "CustomResourceDefinition" {
			delete(a, "helm.sh/resource-policy")
			o.SetAnnotations(a)
		}
		if o.GetKind() != "ValidatingAdmissionPolicy" {
			continue
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchConditions")
		for _, c := range conds {
			m := c.(map[string]any)
			m["expression"] = strings.ReplaceAll(m["expression"].(string), "endsWith(':"+namespace+":", "endsWith(':")
		}
		if conds != nil {
			_ = unstructured.SetNestedSlice(o.Object, conds, "spec", "matchConditions")
		}
	}
	return objs
}

// TestChartRendersTheInstalls: helm lint passes with every option, and
// each option that config/ has an install of renders it object for object
// (apart from what only a chart adds: the metrics Service and the CRDs'
// keep policy; and what only config/ holds: its Namespace). The workloads
// are written by hand in the chart: this is what keeps them and config/
// alike. Each option's check says where its values land.
func TestChartRendersTheInstalls(t *testing.T) {
	r := root(t)
	chart := filepath.Join(r, "charts", "keywarden")
	helm(t, "lint", "--strict", "--kube-version", kubeVersion, chart)
	for _, o := range options {
		t.Run(o.name, func(t *testing.T) {
			lintArgs := []string{"lint", "--strict", "--kube-version", kubeVersion, chart}
			helm(t, append(lintArgs, setArgs(o.set)...)...)
			rendered := decode(t, template(t, chart, o.set))
			if o.check != nil {
				o.check(t, byID(rendered, func(*unstructured.Unstructured) bool { return false }))
			}
			rendered = normalize(rendered, chartgen.Namespace)
			if len(rendered) < 15 {
				t.Fatalf("%d objects rendered", len(rendered))
			}
			switch o.name {
			case "monitoring":
				want, err := harness.Kustomize("config/prometheus")
				if err != nil {
					t.Fatal(err)
				}
				got := byID(rendered, func(*unstructured.Unstructured) bool { return false })
				for id, w := range byID(want, func(*unstructured.Unstructured) bool { return false }) {
					if g, ok := got[id]; !ok || !equality.Semantic.DeepEqual(g.Object, w.Object) {
						t.Errorf("%s: not rendered as config/prometheus holds it", id)
					}
				}
			case "lean":
				for _, kind := range []string{"NetworkPolicy", "PodDisruptionBudget"} {
					for _, g := range rendered {
						if g.GetKind() == kind {
							t.Errorf("%s rendered though disabled", kind)
						}
					}
				}
			case "single replica":
				for _, g := range rendered {
					if g.GetKind() == "PodDisruptionBudget" {
						t.Error("a PodDisruptionBudget of minAvailable 1 for one replica would block every drain")
					}
				}
			case "sized":
				text := template(t, chart, o.set)
				for _, want := range []string{"replicas: 3", "replicas: 4", `image: "registry.example.com/keywarden:v1.2.3"`, "memory: 512Mi"} {
					if !strings.Contains(text, want) {
						t.Errorf("no %q in the rendering", want)
					}
				}
			case "pinned", "by digest alone":
				want := map[string]string{"pinned": "registry.example.com/keywarden:v1.2.3@sha256:" + strings.Repeat("ab", 32), "by digest alone": "keywarden@sha256:" + strings.Repeat("cd", 32)}[o.name]
				for _, g := range rendered {
					if g.GetKind() != "Deployment" {
						continue
					}
					containers, _, _ := unstructured.NestedSlice(g.Object, "spec", "template", "spec", "containers")
					for _, c := range containers {
						if image := c.(map[string]any)["image"]; image != want {
							t.Errorf("%s: image %v, want %s", g.GetName(), image, want)
						}
					}
				}
			case "autoscaled verifier":
				// As config/verifier-autoscaling: the autoscaler, and a
				// Deployment that leaves it the replica count.
				want, err := harness.Kustomize("config/verifier-autoscaling")
				if err != nil {
					t.Fatal(err)
				}
				got := byID(rendered, func(*unstructured.Unstructured) bool { return false })
				for _, id := range []string{"HorizontalPodAutoscaler/" + chartgen.Namespace + "/keywarden-verifier", "Deployment/" + chartgen.Namespace + "/keywarden-verifier"} {
					w := byID(want, func(*unstructured.Unstructured) bool { return false })[id]
					if g, ok := got[id]; !ok || w == nil || !equality.Semantic.DeepEqual(g.Object, w.Object) {
						t.Errorf("%s: not rendered as config/verifier-autoscaling holds it", id)
					}
				}
			case "console":
				want, err := harness.Kustomize("config/console")
				if err != nil {
					t.Fatal(err)
				}
				got := byID(rendered, func(*unstructured.Unstructured) bool { return false })
				for id, w := range byID(want, func(*unstructured.Unstructured) bool { return false }) {
					if g, ok := got[id]; !ok || !equality.Semantic.DeepEqual(g.Object, w.Object) {
						t.Errorf("%s: not rendered as config/console holds it", id)
					}
				}
			}
			if o.install == "" {
				return
			}
			want, err := harness.Kustomize(o.install)
			if err != nil {
				t.Fatal(err)
			}
			chartOnly := func(u *unstructured.Unstructured) bool {
				return u.GetKind() == "Service" && u.GetName() == "keywarden-metrics"
			}
			configOnly := func(u *unstructured.Unstructured) bool {
				return u.GetKind() == "Namespace"
			}
			got, exp := byID(rendered, chartOnly), byID(want, configOnly)
			if g, w := keys(got), keys(exp); strings.Join(g, ",") != strings.Join(w, ",") {
				t.Fatalf("the chart renders\n  %s\nwhere %s holds\n  %s", strings.Join(g, "\n  "), o.install, strings.Join(w, "\n  "))
			}
			for id, w := range exp {
				if !equality.Semantic.DeepEqual(got[id].Object, w.Object) {
					t.Errorf("%s differs from %s's", id, o.install)
				}
			}
		})
	}
}

// TestChartRefusesBadValues: values the chart cannot honour fail the
// rendering, rather than rendering less (a misspelt webhook mode would
// otherwise render no Deployment, and an upgrade would delete it).
func TestChartRefusesBadValues(t *testing.T) {
	chart := filepath.Join(root(t), "charts", "keywarden")
	for _, set := range append([][]string{
		{"webhook.certificates=Self"},
		{"webhook.certificates=certmanager"},
		{"verifier.replicas=0"},
		{"controller.replicas=0"},
		{"replicas=2"}, // the single Deployment of earlier releases: now controller.replicas and verifier.replicas
		{"verifier.autoscaling.enabled=true,verifier.autoscaling.minReplicas=5,verifier.autoscaling.maxReplicas=2"},
		{"networkpolicy.enabled=false"},
		{"image.digest=v1.2.3"},
		{"image.digest=sha256:ABC"},
		{"metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"},
	}, badValues...) {
		args := append([]string{"template", "keywarden", chart, "--kube-version", kubeVersion}, setArgs(set)...)
		if out, err := helmRun(t, args...); err == nil {
			t.Errorf("--set %v rendered %d bytes, want an error", set, len(out))
		}
	}
}

// TestChartInAnotherNamespace: installed into another namespace, nothing
// of the chart is left in keywarden-system, and it is config/default with
// that namespace.
func TestChartInAnotherNamespace(t *testing.T) {
	r := root(t)
	chart := filepath.Join(r, "charts", "keywarden")
	const ns = "123"
	text := helm(t, "template", "keywarden", chart, "--namespace", ns, "--kube-version", kubeVersion)
	if strings.Contains(text, chartgen.Namespace) {
		t.Errorf("the rendering for namespace %s still names %s", ns, chartgen.Namespace)
	}
	want, err := harness.Kustomize("config/default")
	if err != nil {
		t.Fatal(err)
	}
	moved := make([]*unstructured.Unstructured, 0, len(want))
	for _, w := range want {
		b, err := w.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		// Decoded as the rendering is, so that numbers compare alike.
		moved = append(moved, decode(t, strings.ReplaceAll(string(b), chartgen.Namespace, ns))...)
	}
	got := byID(normalize(decode(t, text), ns), func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "Service" && u.GetName() == "keywarden-metrics"
	})
	exp := byID(moved, func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "Namespace"
	})
	if g, w := keys(got), keys(exp); strings.Join(g, ",") != strings.Join(w, ",") {
		t.Fatalf("rendered\n  %s\nwant\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
	}
	for id, w := range exp {
		if !equality.Semantic.DeepEqual(got[id].Object, w.Object) {
			t.Errorf("%s differs from config/default's in namespace %s", id, ns)
		}
	}
}

// TestChartOnTheAPIServer applies every rendering with a server-side dry
// run, with strict field validation, to the local control plane holding
// the chart's CRDs and the Prometheus Operator's. cert-manager's kinds are
// left out: its CRDs are not at hand.
func TestChartOnTheAPIServer(t *testing.T) {
	crds := os.Getenv("PROMETHEUS_OPERATOR_CRDS")
	if crds == "" {
		t.Fatal("PROMETHEUS_OPERATOR_CRDS is not set: run make test, which fetches them with hack/monitoring-crds.sh")
	}
	r := root(t)
	chart := filepath.Join(r, "charts", "keywarden")
	c, err := harness.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, dir := range []string{crds, filepath.Join(r, "config", "crd", "bases")} {
		if out, err := c.Kubectl(ctx, "apply", "--server-side", "-f", dir); err != nil {
			t.Fatalf("installing %s: %v\n%s", dir, err, out)
		}
	}
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--all", "crd"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The namespaces a namespaced install binds its Roles in.
	for _, n := range []string{"team-a", "team-b"} {
		if out, err := c.Kubectl(ctx, "create", "namespace", n); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	for _, o := range options {
		t.Run(o.name, func(t *testing.T) {
			var docs []string
			for _, u := range decode(t, template(t, chart, o.set)) {
				if strings.HasPrefix(u.GetAPIVersion(), "cert-manager.io/") {
					continue
				}
				b, err := u.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, string(b))
			}
			out, err := c.KubectlIn(ctx, strings.NewReader(strings.Join(docs, "\n")), "apply", "--dry-run=server", "--validate=strict", "-f", "-")
			if err != nil {
				t.Fatalf("the API server refuses the rendering: %v\n%s", err, out)
			}
			if n := strings.Count(out, "(server dry run)"); n != len(docs) {
				t.Errorf("%d of %d objects accepted:\n%s", n, len(docs), out)
			}
		})
	}
	t.Run("helm upgrade from a chart with crds/", func(t *testing.T) { helmUpgradeFromCRDsDir(t, c, ctx) })
	// The dry run refuses what is wrong: a field the Deployment does not
	// have.
	bad := strings.Replace(template(t, chart, nil), "terminationGracePeriodSeconds:", "terminationGraceSeconds:", 1)
	if out, err := c.KubectlIn(ctx, strings.NewReader(bad), "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil {
		t.Errorf("a Deployment with an unknown field passed the dry run:\n%s", out)
	}
}
