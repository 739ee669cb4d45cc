package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"keywarden.dev/keywarden/internal/chartgen"
)

const ns = chartgen.Namespace

// get walks an object by a path of map keys and list indices, as
// "spec.template.spec.containers.0.args".
func get(u *unstructured.Unstructured, path string) any {
	var v any = u.Object
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// landing is where one value must show in a rendering: the object, the
// path in it, and what must be there (a string contained in a list of
// strings, or a value equal to it once rendered as YAML).
type landing struct {
	id, path string
	want     any
}

func expect(ls ...landing) func(*testing.T, map[string]*unstructured.Unstructured) {
	return func(t *testing.T, objs map[string]*unstructured.Unstructured) {
		t.Helper()
		for _, l := range ls {
			o, ok := objs[l.id]
			if !ok {
				if l.want == nil {
					continue
				}
				t.Errorf("no %s rendered", l.id)
				continue
			}
			if l.path == "" {
				if l.want == nil {
					t.Errorf("%s rendered, want none", l.id)
				}
				continue
			}
			got := get(o, l.path)
			if list, ok := got.([]any); ok {
				if w, ok := l.want.(string); ok {
					found := false
					for _, e := range list {
						found = found || e == w
					}
					if !found {
						t.Errorf("%s %s: %v holds no %q", l.id, l.path, got, w)
					}
					continue
				}
			}
			if !sameYAML(got, l.want) {
				t.Errorf("%s %s: %v, want %v", l.id, l.path, got, l.want)
			}
		}
	}
}

// sameYAML compares values as a rendering decodes them (numbers alike).
func sameYAML(a, b any) bool {
	ja, err1 := yaml.Marshal(a)
	jb, err2 := yaml.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var x, y any
	return yaml.Unmarshal(ja, &x) == nil && yaml.Unmarshal(jb, &y) == nil && reflect.DeepEqual(x, y)
}

// absent says the object is not rendered.
func absent(id string) landing { return landing{id: id} }

var (
	deployments = map[string]string{"controller": "keywarden-manager", "verifier": "keywarden-verifier", "console": "keywarden-console"}
	// podComponents are the values of the pods' app.kubernetes.io/component.
	podComponents = map[string]string{"controller": "manager", "verifier": "verifier", "console": "console"}
)

// componentKnobs sets every knob a component shares with the others and
// says where each lands.
func componentKnobs(c string) option {
	d := "Deployment/" + ns + "/" + deployments[c]
	pod := "spec.template.spec."
	ctr := pod + "containers.0."
	set := []string{
		c + ".logLevel=debug",
		c + ".extraArgs={--kube-api-qps=50}",
		`json:` + c + `.extraEnv=[{"name":"GOGC","value":"50"}]`,
		c + ".nodeSelector.disktype=ssd",
		`json:` + c + `.tolerations=[{"key":"dedicated","operator":"Equal","value":"keywarden","effect":"NoSchedule"}]`,
		`json:` + c + `.affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}}`,
		`json:` + c + `.topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"keywarden"}}}]`,
		c + ".priorityClassName=system-cluster-critical",
		c + ".podAnnotations.example\\.com/owner=platform",
		c + ".podLabels.team=platform",
		// A pod label cannot take a selector label's place.
		c + ".podLabels.app\\.kubernetes\\.io/name=other",
		c + ".podSecurityContext.runAsUser=65532",
		c + ".securityContext.readOnlyRootFilesystem=true",
		c + ".securityContext.runAsGroup=65532",
		c + ".resources.requests.cpu=250m",
		c + ".replicas=3",
		c + ".serviceAccount.annotations.iam\\.example\\.com/role=keywarden",
		"image.pullPolicy=Always",
		"json:imagePullSecrets=[{\"name\":\"regcred\"}]",
	}
	if c == "console" {
		set = append(set, "console.enabled=true")
	}
	return option{name: c + " knobs", set: set, check: expect(
		landing{d, ctr + "args", "--zap-log-level=debug"},
		landing{d, ctr + "args", "--kube-api-qps=50"},
		landing{d, ctr + "env", envFor(c)},
		landing{d, pod + "nodeSelector", map[string]any{"disktype": "ssd"}},
		landing{d, pod + "tolerations.0.key", "dedicated"},
		landing{d, pod + "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions.0.values", "arm64"},
		landing{d, pod + "topologySpreadConstraints.0.topologyKey", "topology.kubernetes.io/zone"},
		landing{d, pod + "priorityClassName", "system-cluster-critical"},
		landing{d, "spec.template.metadata.annotations", map[string]any{"example.com/owner": "platform"}},
		landing{d, "spec.template.metadata.labels", map[string]any{"team": "platform", "app.kubernetes.io/name": "keywarden", "app.kubernetes.io/component": podComponents[c]}},
		landing{d, pod + "securityContext", map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}}},
		landing{d, ctr + "securityContext", map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}, "readOnlyRootFilesystem": true, "runAsGroup": 65532}},
		landing{d, ctr + "resources.requests.cpu", "250m"},
		landing{d, "spec.replicas", 3},
		landing{d, ctr + "imagePullPolicy", "Always"},
		landing{d, pod + "imagePullSecrets", []any{map[string]any{"name": "regcred"}}},
		landing{"ServiceAccount/" + ns + "/" + deployments[c], "metadata.annotations", map[string]any{"iam.example.com/role": "keywarden"}},
	)}
}

// envFor is a component's environment with extraEnv added.
func envFor(c string) []any {
	env := []any{map[string]any{"name": "GOGC", "value": "50"}}
	if c == "console" {
		return env
	}
	return append([]any{map[string]any{"name": "POD_NAMESPACE", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.namespace"}}}}, env...)
}

// valueOptions test each value: where it lands.
var valueOptions = []option{
	componentKnobs("controller"),
	componentKnobs("verifier"),
	componentKnobs("console"),
	{name: "verifier's trust and staleness", set: []string{"verifier.trustedNamespaces={team-a,team-b}", "verifier.trustedClasses={payments}", "verifier.maxStaleness=2m"}, check: expect(
		landing{"Deployment/" + ns + "/keywarden-verifier", "spec.template.spec.containers.0.args", "--verifier-trusted-namespaces=team-a,team-b"},
		landing{"Deployment/" + ns + "/keywarden-verifier", "spec.template.spec.containers.0.args", "--verifier-trusted-classes=payments"},
		landing{"Deployment/" + ns + "/keywarden-verifier", "spec.template.spec.containers.0.args", "--verifier-max-staleness=2m"},
	)},
	{name: "autoscaling bounds", set: []string{"verifier.autoscaling.enabled=true", "verifier.autoscaling.minReplicas=3", "verifier.autoscaling.maxReplicas=12", "verifier.autoscaling.targetCPUUtilizationPercentage=60"}, check: expect(
		landing{"HorizontalPodAutoscaler/" + ns + "/keywarden-verifier", "spec.minReplicas", 3},
		landing{"HorizontalPodAutoscaler/" + ns + "/keywarden-verifier", "spec.maxReplicas", 12},
		landing{"HorizontalPodAutoscaler/" + ns + "/keywarden-verifier", "spec.metrics.0.resource.target.averageUtilization", 60},
		landing{"Deployment/" + ns + "/keywarden-verifier", "spec.replicas", nil},
	)},
	{name: "console's Service and who may reach it", set: []string{"console.enabled=true", "console.service.type=LoadBalancer", "console.service.port=8080", "console.service.annotations.example\\.com/lb=internal",
		`json:console.networkPolicy.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ingress-nginx"}}}]`}, check: expect(
		landing{"Service/" + ns + "/keywarden-console", "spec.type", "LoadBalancer"},
		landing{"Service/" + ns + "/keywarden-console", "spec.ports.0.port", 8080},
		landing{"Service/" + ns + "/keywarden-console", "metadata.annotations", map[string]any{"example.com/lb": "internal"}},
		landing{"NetworkPolicy/" + ns + "/keywarden-console", "spec.ingress.0.from", []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress-nginx"}}}}},
	)},
	{name: "ServiceAccounts made elsewhere", set: []string{"console.enabled=true",
		"controller.serviceAccount.create=false", "controller.serviceAccount.name=kw-controller",
		"verifier.serviceAccount.create=false", "verifier.serviceAccount.name=kw-verifier",
		"console.serviceAccount.create=false", "console.serviceAccount.name=kw-console"}, check: expect(
		absent("ServiceAccount/"+ns+"/keywarden-manager"), absent("ServiceAccount/"+ns+"/kw-controller"),
		absent("ServiceAccount/"+ns+"/keywarden-verifier"), absent("ServiceAccount/"+ns+"/kw-verifier"),
		absent("ServiceAccount/"+ns+"/kw-console"),
		landing{"Deployment/" + ns + "/keywarden-manager", "spec.template.spec.serviceAccountName", "kw-controller"},
		landing{"Deployment/" + ns + "/keywarden-verifier", "spec.template.spec.serviceAccountName", "kw-verifier"},
		landing{"Deployment/" + ns + "/keywarden-console", "spec.template.spec.serviceAccountName", "kw-console"},
		landing{"ClusterRoleBinding//keywarden-manager", "subjects.0.name", "kw-controller"},
		landing{"ClusterRoleBinding//keywarden-verifier", "subjects.0.name", "kw-verifier"},
		landing{"RoleBinding/" + ns + "/keywarden-leader-election", "subjects.0.name", "kw-controller"},
	)},
	{name: "ServiceAccounts under other names", set: []string{"controller.serviceAccount.name=kw-controller", "verifier.serviceAccount.name=kw-verifier"}, check: expect(
		landing{"ServiceAccount/" + ns + "/kw-controller", "metadata.name", "kw-controller"},
		landing{"ServiceAccount/" + ns + "/kw-verifier", "metadata.name", "kw-verifier"},
		absent("ServiceAccount/"+ns+"/keywarden-manager"),
		// The admission policies hold the renamed accounts' writes, and
		// no account of that name in another namespace.
		landing{"ValidatingAdmissionPolicy//keywarden-manager-secrets", "spec.matchConditions.0.expression", "request.userInfo.username.startsWith('system:serviceaccount:') && request.userInfo.username.endsWith(':" + ns + ":kw-controller')"},
		landing{"ValidatingAdmissionPolicy//keywarden-verifier-status", "spec.matchConditions.0.expression", "request.userInfo.username.startsWith('system:serviceaccount:') && request.userInfo.username.endsWith(':" + ns + ":kw-verifier')"},
	)},
	{name: "CRDs left out", set: []string{"crds.enabled=false"}, check: expect(
		absent("CustomResourceDefinition//apikeys.keywarden.dev"), absent("CustomResourceDefinition//apikeyclasses.keywarden.dev"),
		landing{"Deployment/" + ns + "/keywarden-manager", "metadata.name", "keywarden-manager"},
	)},
	{name: "CRDs not kept", set: []string{"crds.keep=false"}, check: expect(
		landing{"CustomResourceDefinition//apikeys.keywarden.dev", "metadata.annotations", map[string]any{"controller-gen.kubebuilder.io/version": "v0.23.0"}},
	)},
	{name: "CRDs kept", set: []string{"crds.enabled=true", "crds.keep=true"}, check: expect(
		landing{"CustomResourceDefinition//apikeys.keywarden.dev", "metadata.annotations", map[string]any{"controller-gen.kubebuilder.io/version": "v0.23.0", "helm.sh/resource-policy": "keep"}},
		landing{"CustomResourceDefinition//apikeyclasses.keywarden.dev", "metadata.annotations", map[string]any{"controller-gen.kubebuilder.io/version": "v0.23.0", "helm.sh/resource-policy": "keep"}},
	)},
	{name: "monitoring for kube-prometheus-stack", set: []string{"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kube-prometheus-stack", "metrics.serviceMonitor.interval=1m", "metrics.serviceMonitor.scrapeTimeout=20s",
		"metrics.prometheusRule.enabled=true", "metrics.prometheusRule.labels.release=kube-prometheus-stack"}, check: expect(
		landing{"PrometheusRule/" + ns + "/keywarden", "metadata.labels", map[string]any{"release": "kube-prometheus-stack", "app.kubernetes.io/name": "keywarden"}},
		landing{"ServiceMonitor/" + ns + "/keywarden", "metadata.labels", map[string]any{"release": "kube-prometheus-stack", "app.kubernetes.io/name": "keywarden"}},
		landing{"ServiceMonitor/" + ns + "/keywarden", "spec.endpoints.0.interval", "1m"},
		landing{"ServiceMonitor/" + ns + "/keywarden", "spec.endpoints.0.scrapeTimeout", "20s"},
	)},
	{name: "disruption budget", set: []string{"verifier.replicas=3", "podDisruptionBudget.minAvailable=2"}, check: expect(
		landing{"PodDisruptionBudget/" + ns + "/keywarden-verifier", "spec.minAvailable", 2},
	)},
}

// badValues are refused by values.schema.json or the chart: each would
// otherwise render something other than what was meant.
var badValues = [][]string{
	{"controler.replicas=2"}, // misspelt: refused, not ignored
	{"verifier.nodeselector.disktype=ssd"},
	{"image.pullPolicy=Sometimes"},
	// A ServiceAccount name is written into the admission policies'
	// CEL: one that could break out of its string is refused.
	{"controller.serviceAccount.name=x') || true || ('"},
	{"verifier.serviceAccount.name=Keywarden"},
	// An empty list of peers would let every pod reach the console.
	{"json:console.networkPolicy.from=[]"},
	{"json:console.networkPolicy.from=[{}]"},
	{"namespaces={Team-A}"},
	{"namespaces={team-a,team-a}"},
	{"verifier.maxStaleness=five minutes"},
	{"verifier.trustedNamespaces={team a}"},
	{"controller.logLevel=verbose"},
	{"controller.extraArgs={leader-elect}"},
	{"json:controller.extraEnv=[{\"value\":\"x\"}]"},
	{"console.service.type=ExternalName"},
	{"metrics.serviceMonitor.interval=often"},
	{"crds.keep=yes"},
	// Each component under its own account, and none as the namespace's
	// default, whose pods would get its rights: the console (which faces
	// people) as the controller would hold every Secret.
	{"console.serviceAccount.create=false", "console.serviceAccount.name=keywarden-manager"},
	{"verifier.serviceAccount.name=kw", "controller.serviceAccount.name=kw"},
	{"controller.serviceAccount.create=false", "controller.serviceAccount.name=default"},
	// An image that could add lines to the container.
	{"image.tag=v1\nenvFrom: [{secretRef: {name: x}}]"},
	{"image.tag=a: b"},
	{"image.repository=registry.example.com/keywarden\ncommand: [sh]"},
	{"image.repository=Registry.example.com/keywarden"},
}

// TestEveryValueIsTested: each value of values.yaml is set by some option
// whose rendering is checked, or is refused by a bad value.
func TestEveryValueIsTested(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "charts", "keywarden", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 || strings.HasSuffix(prefix, "resources") || strings.HasSuffix(prefix, "SecurityContext") || strings.HasSuffix(prefix, "securityContext") {
			leaves = append(leaves, prefix)
			return
		}
		for k, e := range m {
			walk(strings.TrimPrefix(prefix+"."+k, "."), e)
		}
	}
	walk("", values)
	sort.Strings(leaves)
	var set []string
	for _, o := range options {
		for _, s := range o.set {
			k, _, _ := strings.Cut(strings.TrimPrefix(s, "json:"), "=")
			set = append(set, strings.ReplaceAll(k, `\.`, "."))
		}
	}
	covered := func(leaf string) bool {
		for _, k := range set {
			if k == leaf || strings.HasPrefix(k, leaf+".") || strings.HasPrefix(k, leaf+"[") {
				return true
			}
		}
		return false
	}
	var missing []string
	for _, l := range leaves {
		if !covered(l) {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 {
		t.Errorf("values no option sets and checks:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(leaves) < 60 {
		t.Errorf("only %d values found: %s", len(leaves), fmt.Sprint(leaves))
	}
}
