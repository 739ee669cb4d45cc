package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// manifest is a valid APIKey as a user would write it; each entry breaks one
// rule.
func manifest(ns string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keywarden.dev/v1alpha1",
		"kind":       "APIKey",
		"metadata":   map[string]any{"namespace": ns, "name": "k-" + rand.String(6), "labels": map[string]any{labelUnmanaged: "true"}},
		"spec": map[string]any{
			"displayName": "Grafana dashboards",
			"description": "Read-only dashboards for the on-call rota; ask #observability before widening",
			"owner":       "observability@example.com",
			"role":        "readonly",
			"scopes":      []any{"dashboards:read", "audit-logs:read"},
		},
	}}
}

func spec(u *unstructured.Unstructured) map[string]any { return u.Object["spec"].(map[string]any) }

func scopes(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = "scope-" + rand.String(10)
	}
	return out
}

// durationForm is what the API server says of a duration it cannot read.
const durationForm = `write a duration as whole days (30d, at most 99999d), whole weeks (2w, at most 9999w), or hours, minutes and seconds in that order (720h, 1h30m, 90s; at most 999999h)`

// expectRefusal checks that err is the API server's refusal saying want,
// and saying it once: a field refused in words is not refused again by a
// regular expression or a CEL conversion error beside them.
func expectRefusal(err error, want string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred())
	Expect(err.Error()).To(ContainSubstring(want))
	Expect(err.Error()).NotTo(ContainSubstring("should match"))
	Expect(err.Error()).NotTo(ContainSubstring("type conversion"))
	if field, _, ok := strings.Cut(want, ": "); ok && strings.HasPrefix(field, "spec.") {
		Expect(strings.Count(err.Error(), field+": ")).To(Equal(1), "%s is refused more than once: %s", field, err)
	}
}

var _ = Describe("APIKey validation by the API server", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("accepts the valid manifest the table starts from", func() {
		Expect(k8sClient.Create(ctx, manifest(ns))).To(Succeed())
	})

	It("keeps durations in days and weeks as written, and counts a day as 24 hours", func() {
		u := manifest(ns)
		u.SetLabels(nil) // issued by the suite's controller
		spec(u)["lifetime"] = "30d"
		spec(u)["rotation"] = map[string]any{"every": "2w", "gracePeriod": "1d"}
		Expect(k8sClient.Create(ctx, u, client.FieldValidation("Strict"))).To(Succeed())
		k := waitReady(ctx, &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: u.GetName()}})
		Expect(k.Status.ExpiresAt.Sub(k.Status.IssuedAt.Time)).To(Equal(30 * 24 * time.Hour))
		Expect(k.Spec.Rotation.Every.Duration).To(Equal(14 * 24 * time.Hour))
		// Written back by the controller (its finalizer) and read as the
		// API server stores it: what was applied, so a GitOps tool sees no
		// drift.
		Expect(k.Finalizers).To(ContainElement(keywardenv1alpha1.Finalizer))
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
		for path, want := range map[string]string{"lifetime": "30d", "rotation.every": "2w", "rotation.gracePeriod": "1d"} {
			v, _, _ := unstructured.NestedString(got.Object, append([]string{"spec"}, strings.Split(path, ".")...)...)
			Expect(v).To(Equal(want), "spec.%s", path)
		}
	})

	DescribeTable("refuses a bad manifest at create with the exact error",
		func(mutate func(spec map[string]any), want string) {
			u := manifest(ns)
			mutate(spec(u))
			// Strict, as kubectl apply validates by default.
			err := k8sClient.Create(ctx, u, client.FieldValidation("Strict"))
			expectRefusal(err, want)
		},
		Entry("missing displayName", func(s map[string]any) { delete(s, "displayName") },
			`spec.displayName: Required value`),
		Entry("empty displayName", func(s map[string]any) { s["displayName"] = "" },
			`spec.displayName: Invalid value: "": spec.displayName in body should be at least 1 chars long`),
		Entry("displayName over 50 characters", func(s map[string]any) { s["displayName"] = strings.Repeat("x", 51) },
			`spec.displayName: Too long: may not be more than 50 bytes`),
		Entry("description over 500 characters", func(s map[string]any) { s["description"] = strings.Repeat("d", 501) },
			`spec.description: Too long: may not be more than 500 bytes`),
		Entry("missing owner", func(s map[string]any) { delete(s, "owner") },
			`spec.owner: Required value`),
		Entry("owner over 253 characters", func(s map[string]any) { s["owner"] = strings.Repeat("o", 254) },
			`spec.owner: Too long: may not be more than 253 bytes`),
		Entry("missing role", func(s map[string]any) { delete(s, "role") },
			`spec.role: Required value`),
		Entry("role with upper case and spaces", func(s map[string]any) { s["role"] = "Read Only" },
			`spec.role: Invalid value: "Read Only": a role is lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit, such as readonly or project-admin`),
		Entry("scope outside the pattern", func(s map[string]any) { s["scopes"] = []any{"Audit Logs"} },
			`spec.scopes[0]: Invalid value: "Audit Logs": a scope is lower-case letters, digits, '.', '_', ':', '/' and '-', starting with a letter or digit, such as audit-logs:read`),
		Entry("duplicate scopes", func(s map[string]any) { s["scopes"] = []any{"a:read", "a:read"} },
			`spec.scopes[1]: Duplicate value: "a:read"`),
		Entry("more than 64 scopes", func(s map[string]any) { s["scopes"] = scopes(65) },
			`spec.scopes: Too many: 65: must have at most 64 items`),
		Entry("both expiresAt and lifetime", func(s map[string]any) { s["expiresAt"] = "2030-01-01T00:00:00Z"; s["lifetime"] = "720h" },
			`spec.lifetime: Invalid value: expiresAt and lifetime are mutually exclusive: set at most one`),
		Entry("zero lifetime", func(s map[string]any) { s["lifetime"] = "0s" },
			`spec.lifetime: Invalid value: "0s": lifetime must be positive`),
		Entry("negative lifetime", func(s map[string]any) { s["lifetime"] = "-24h" },
			`spec.lifetime: Invalid value: "-24h": `+durationForm),
		Entry("lifetime that is not a duration", func(s map[string]any) { s["lifetime"] = "30 days" },
			`spec.lifetime: Invalid value: "30 days": `+durationForm),
		Entry("rotation more often than every minute", func(s map[string]any) { s["rotation"] = map[string]any{"every": "30s"} },
			`spec.rotation.every: Invalid value: "30s": rotation.every must be at least 1m`),
		Entry("a lifetime in part days", func(s map[string]any) { s["lifetime"] = "1.5d" },
			`spec.lifetime: Invalid value: "1.5d": `+durationForm),
		Entry("a lifetime of zero days", func(s map[string]any) { s["lifetime"] = "0d" },
			`spec.lifetime: Invalid value: "0d": `+durationForm),
		Entry("a lifetime of days and hours together", func(s map[string]any) { s["lifetime"] = "1d12h" },
			`spec.lifetime: Invalid value: "1d12h": `+durationForm),
		Entry("a lifetime in months", func(s map[string]any) { s["lifetime"] = "3mo" },
			`spec.lifetime: Invalid value: "3mo": `+durationForm),
		Entry("more days than a Go duration holds", func(s map[string]any) { s["lifetime"] = "200000d" },
			`spec.lifetime: Invalid value: "200000d": `+durationForm),
		Entry("a grace period over ten years, in days", func(s map[string]any) { s["rotation"] = map[string]any{"gracePeriod": "3651d"} },
			`spec.rotation.gracePeriod: Invalid value: "3651d": gracePeriod must be at most 87600h (ten years)`),
		Entry("a grace period over ten years, in weeks", func(s map[string]any) { s["rotation"] = map[string]any{"gracePeriod": "522w"} },
			`spec.rotation.gracePeriod: Invalid value: "522w": gracePeriod must be at most 87600h (ten years)`),
		Entry("a grace period over ten years", func(s map[string]any) { s["rotation"] = map[string]any{"gracePeriod": "87601h"} },
			`spec.rotation.gracePeriod: Invalid value: "87601h": gracePeriod must be at most 87600h (ten years)`),
		// Past what Go's durations hold, no client could decode the object:
		// one such APIKey would stop every watch of APIKeys in the cluster.
		Entry("a grace period no Go duration holds", func(s map[string]any) { s["rotation"] = map[string]any{"gracePeriod": "3000000h"} },
			`spec.rotation.gracePeriod: Invalid value: "3000000h": `+durationForm),
		Entry("a lifetime no Go duration holds", func(s map[string]any) { s["lifetime"] = "3000000h" },
			`spec.lifetime: Invalid value: "3000000h": `+durationForm),
		Entry("a lifetime of seven digits of hours", func(s map[string]any) { s["lifetime"] = "1000000h" },
			`spec.lifetime: Invalid value: "1000000h": `+durationForm),
		Entry("a lifetime with minutes before hours", func(s map[string]any) { s["lifetime"] = "30m1h" },
			`spec.lifetime: Invalid value: "30m1h": `+durationForm),
		Entry("an empty lifetime", func(s map[string]any) { s["lifetime"] = "" },
			`spec.lifetime: Invalid value: "": `+durationForm),
		Entry("a lifetime in an unknown unit", func(s map[string]any) { s["lifetime"] = "30x" },
			`spec.lifetime: Invalid value: "30x": `+durationForm),
		Entry("a schedule that is not a duration", func(s map[string]any) { s["rotation"] = map[string]any{"every": "weekly"} },
			`spec.rotation.every: Invalid value: "weekly": `+durationForm),
		Entry("a rotation request over 64 characters", func(s map[string]any) { s["rotation"] = map[string]any{"request": strings.Repeat("r", 65)} },
			`spec.rotation.request: Too long: may not be more than 64 bytes`),
		Entry("expiresAt that is not a time", func(s map[string]any) { s["expiresAt"] = "tomorrow" },
			`spec.expiresAt: Invalid value: "tomorrow": spec.expiresAt in body must be of type date-time`),
		Entry("secretName that is not a DNS name", func(s map[string]any) { s["secretName"] = "My_Secret" },
			`spec.secretName: Invalid value: "My_Secret": a Secret's name is lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, such as grafana-api-key`),
		Entry("secretTemplate label that Argo CD would claim", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"app.kubernetes.io/instance": "my-app"}}
		}, `spec.secretTemplate.labels: Invalid value: secretTemplate.labels may not set keywarden.dev/*, argocd.argoproj.io/*, app.kubernetes.io/instance or app.kubernetes.io/managed-by`),
		Entry("secretTemplate label under argocd.argoproj.io/", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"argocd.argoproj.io/secret-type": "repository"}}
		}, `spec.secretTemplate.labels: Invalid value: secretTemplate.labels may not set keywarden.dev/*, argocd.argoproj.io/*, app.kubernetes.io/instance or app.kubernetes.io/managed-by`),
		Entry("secretTemplate label Keywarden manages", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"keywarden.dev/apikey": "other"}}
		}, `spec.secretTemplate.labels: Invalid value: secretTemplate.labels may not set keywarden.dev/*, argocd.argoproj.io/*, app.kubernetes.io/instance or app.kubernetes.io/managed-by`),
		Entry("secretTemplate annotation under argocd.argoproj.io/", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"annotations": map[string]any{"argocd.argoproj.io/sync-options": "Prune=false"}}
		}, `spec.secretTemplate.annotations: Invalid value: secretTemplate.annotations may not set keywarden.dev/* or argocd.argoproj.io/*`),
		Entry("secretTemplate annotations over 4096 characters together", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"annotations": map[string]any{
				"a.example.com/one": strings.Repeat("a", 2000), "a.example.com/two": strings.Repeat("b", 2000), "a.example.com/three": strings.Repeat("c", 100)}}
		}, `spec.secretTemplate.annotations: Invalid value: secretTemplate.annotations may hold at most 4096 characters of keys and values together`),
		Entry("secretTemplate annotations over 16", func(s map[string]any) {
			many := map[string]any{}
			for i := range 17 {
				many[fmt.Sprintf("a.example.com/n%d", i)] = "v"
			}
			s["secretTemplate"] = map[string]any{"annotations": many}
		}, `spec.secretTemplate.annotations: Too many: 17: must have at most 16 items`),
		Entry("secretTemplate labels over 4096 characters together", func(s map[string]any) {
			many := map[string]any{}
			for i := range 16 {
				many[fmt.Sprintf("%s.example.com/label-%02d", strings.Repeat("l", 240), i)] = strings.Repeat("v", 63)
			}
			s["secretTemplate"] = map[string]any{"labels": many}
		}, `spec.secretTemplate.labels: Invalid value: secretTemplate.labels may hold at most 4096 characters of keys and values together`),
		Entry("secretTemplate labels over 16", func(s map[string]any) {
			many := map[string]any{}
			for i := range 17 {
				many[fmt.Sprintf("team-%d", i)] = "v"
			}
			s["secretTemplate"] = map[string]any{"labels": many}
		}, `spec.secretTemplate.labels: Too many: 17: must have at most 16 items`),
		Entry("secretTemplate label key that is not a label key", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"team name": "web"}}
		}, `spec.secretTemplate.labels: Invalid value: secretTemplate.labels keys must be valid label keys`),
		Entry("secretTemplate label value over 63 characters", func(s map[string]any) {
			s["secretTemplate"] = map[string]any{"labels": map[string]any{"team": strings.Repeat("w", 64)}}
		}, `spec.secretTemplate.labels.team: Too long: may not be more than 63 bytes`),
		Entry("unknown field", func(s map[string]any) { s["rotate"] = true },
			`unknown field "spec.rotate"`),
	)

	It("refuses a name over 63 characters, which the Secret could not carry as a label", func() {
		u := manifest(ns)
		u.SetName(strings.Repeat("n", 64))
		err := k8sClient.Create(ctx, u)
		Expect(err).To(MatchError(ContainSubstring(`metadata.name may be at most 63 characters: the Secret carries it as a label value`)))
	})

	// config/rbac/apikey_metadata_policy.yaml: the controller caches an
	// APIKey's finalizers, so no one may write thousands of them.
	It("bounds an APIKey's finalizers at 16, and lets one holding more lose them", func() {
		foreign := func(n int) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = fmt.Sprintf("%s.example.com/hold-%02d-%s", strings.Repeat("d", 200), i, strings.Repeat("x", 50))
			}
			return out
		}
		u := manifest(ns)
		u.SetFinalizers(foreign(17))
		Expect(k8sClient.Create(ctx, u)).To(MatchError(ContainSubstring("an APIKey holds at most 16 finalizers, not 17")))

		// A managed key with 15 finalizers of others: the controller's own
		// makes 16, and the key is issued.
		k := &keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held", Finalizers: foreign(15)},
			Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Held", Owner: "o@example.com", Role: "readonly"},
		}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		k = waitReady(ctx, k)
		Expect(k.Finalizers).To(HaveLen(16))
		Expect(k.Finalizers).To(ContainElement(keywardenv1alpha1.Finalizer))
		k.Finalizers = append(k.Finalizers, "example.com/one-more")
		Expect(k8sClient.Update(ctx, k)).To(MatchError(ContainSubstring("an APIKey holds at most 16 finalizers, not 17")))

		// Others' finalizers go; deleted, the key is let go once they have.
		k = getKey(ctx, k)
		k.Finalizers = []string{keywardenv1alpha1.Finalizer}
		Expect(k8sClient.Update(ctx, k)).To(Succeed())
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &keywardenv1alpha1.APIKey{}))
		}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	})

	DescribeTable("refuses a forbidden change with the exact error",
		func(before, after func(spec map[string]any), want string) {
			u := manifest(ns)
			before(spec(u))
			Expect(k8sClient.Create(ctx, u)).To(Succeed())
			after(spec(u))
			err := k8sClient.Update(ctx, u)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("un-revoking", func(s map[string]any) { s["revoked"] = true }, func(s map[string]any) { s["revoked"] = false },
			`spec.revoked: Invalid value: revocation is irreversible: revoked cannot be set back to false; create a new APIKey instead`),
		Entry("un-revoking by removing the field", func(s map[string]any) { s["revoked"] = true }, func(s map[string]any) { delete(s, "revoked") },
			`spec.revoked: Invalid value: revocation is irreversible: revoked cannot be set back to false; create a new APIKey instead`),
		Entry("changing secretName", func(s map[string]any) { s["secretName"] = "one" }, func(s map[string]any) { s["secretName"] = "two" },
			`spec.secretName: Invalid value: secretName is immutable`),
		Entry("setting secretName later", func(map[string]any) {}, func(s map[string]any) { s["secretName"] = "late" },
			`spec.secretName: Invalid value: secretName is immutable`),
		Entry("removing secretName", func(s map[string]any) { s["secretName"] = "one" }, func(s map[string]any) { delete(s, "secretName") },
			`spec.secretName: Invalid value: secretName is immutable`),
	)
})

var _ = Describe("APIKeyClass validation by the API server", func() {
	It("accepts a class whose roles describe their scopes", func() {
		ctx := context.Background()
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "keywarden.dev/v1alpha1", "kind": "APIKeyClass",
			"metadata": map[string]any{"name": "described-" + rand.String(6)},
			"spec": map[string]any{"roles": []any{map[string]any{
				"name": "reader", "scopes": []any{"logs:read", "audit:read"},
				"scopeDescriptions": []any{map[string]any{"scope": "logs:read", "description": "Read the application logs"}}}}},
		}}
		Expect(k8sClient.Create(ctx, u, client.FieldValidation("Strict"))).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, u))).To(Succeed()) })
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
		d, _, _ := unstructured.NestedSlice(got.Object, "spec", "roles")
		Expect(d).To(HaveLen(1))
		Expect(d[0].(map[string]any)["scopeDescriptions"]).To(Equal([]any{map[string]any{"scope": "logs:read", "description": "Read the application logs"}}))
	})

	It("refuses a class with notifications whose name leaves no room for its shared secret's Secret", func(ctx context.Context) {
		c := &keywardenv1alpha1.APIKeyClass{
			ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("n", 237)},
			Spec:       keywardenv1alpha1.APIKeyClassSpec{Notifications: &keywardenv1alpha1.ClassNotifications{URL: "https://hooks.example.com"}},
		}
		err := k8sClient.Create(ctx, c)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("a class with notifications may have a name of at most 236 characters"))
		c.Name = strings.Repeat("n", 236)
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Expect(k8sClient.Delete(ctx, c)).To(Succeed())
	})

	DescribeTable("refuses a bad class with the exact error",
		func(spec map[string]any, want string) {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "keywarden.dev/v1alpha1", "kind": "APIKeyClass",
				"metadata": map[string]any{"name": "bad-" + rand.String(6)},
				"spec":     spec,
			}}
			err := k8sClient.Create(context.Background(), u, client.FieldValidation("Strict"))
			expectRefusal(err, want)
		},
		Entry("a prefix without the final underscore", map[string]any{"keyPrefix": "pdm"},
			`spec.keyPrefix: Invalid value: "pdm": keyPrefix is 1 to 11 lower-case letters or digits followed by '_', such as pdm_`),
		Entry("an upper-case prefix", map[string]any{"keyPrefix": "PDM_"},
			`spec.keyPrefix: Invalid value: "PDM_": keyPrefix is 1 to 11 lower-case letters or digits followed by '_', such as pdm_`),
		Entry("a default lifetime over the maximum", map[string]any{"defaultLifetime": "48h", "maxLifetime": "24h"},
			`spec.defaultLifetime: Invalid value: defaultLifetime may not exceed maxLifetime`),
		Entry("a zero maximum lifetime", map[string]any{"maxLifetime": "0s"},
			`spec.maxLifetime: Invalid value: "0s": maxLifetime must be positive`),
		Entry("a rotation schedule over its maximum", map[string]any{"rotation": map[string]any{"every": "48h", "maxEvery": "24h"}},
			`spec.rotation.every: Invalid value: rotation.every may not exceed rotation.maxEvery`),
		Entry("a grace period over its maximum", map[string]any{"rotation": map[string]any{"gracePeriod": "2h", "maxGracePeriod": "1h"}},
			`spec.rotation.gracePeriod: Invalid value: rotation.gracePeriod may not exceed rotation.maxGracePeriod`),
		Entry("a rotation more often than every minute", map[string]any{"rotation": map[string]any{"maxEvery": "30s"}},
			`spec.rotation.maxEvery: Invalid value: "30s": rotation.maxEvery must be at least 1m`),
		Entry("a minimum rotation schedule under a minute", map[string]any{"rotation": map[string]any{"minEvery": "30s"}},
			`spec.rotation.minEvery: Invalid value: "30s": rotation.minEvery must be between 1m and 87600h`),
		Entry("a default schedule under the class's minimum", map[string]any{"rotation": map[string]any{"every": "10m", "minEvery": "1h"}},
			`spec.rotation.every: Invalid value: rotation.every may not be shorter than rotation.minEvery`),
		Entry("a required schedule under the class's minimum", map[string]any{"rotation": map[string]any{"maxEvery": "10m", "minEvery": "1h"}},
			`spec.rotation.maxEvery: Invalid value: rotation.maxEvery may not be shorter than rotation.minEvery`),
		Entry("a maximum grace period no Go duration holds", map[string]any{"rotation": map[string]any{"maxGracePeriod": "3000000h"}},
			`spec.rotation.maxGracePeriod: Invalid value: "3000000h": `+durationForm),
		Entry("a default lifetime beside a maximum that is not a duration", map[string]any{"defaultLifetime": "30d", "maxLifetime": "a year"},
			`spec.maxLifetime: Invalid value: "a year": `+durationForm),
		Entry("a role name with upper case", map[string]any{"roles": []any{map[string]any{"name": "Reader"}}},
			`spec.roles[0].name: Invalid value: "Reader": a role is lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit, such as readonly or project-admin`),
		Entry("an expiry warning over ten years", map[string]any{"expiryWarning": "87601h"},
			`spec.expiryWarning: Invalid value: "87601h": expiryWarning must be at most 87600h (ten years)`),
		Entry("an expiry warning in part days", map[string]any{"expiryWarning": "0.5d"},
			`spec.expiryWarning: Invalid value: "0.5d": `+durationForm),
		Entry("a default lifetime in days over a maximum in weeks", map[string]any{"defaultLifetime": "60d", "maxLifetime": "8w"},
			`spec.defaultLifetime: Invalid value: defaultLifetime may not exceed maxLifetime`),
		Entry("a default lifetime in hours over a maximum in days", map[string]any{"defaultLifetime": "721h", "maxLifetime": "30d"},
			`spec.defaultLifetime: Invalid value: defaultLifetime may not exceed maxLifetime`),
		Entry("a rotation schedule in weeks over its maximum in days", map[string]any{"rotation": map[string]any{"every": "2w", "maxEvery": "13d"}},
			`spec.rotation.every: Invalid value: rotation.every may not exceed rotation.maxEvery`),
		Entry("a minimum rotation schedule over ten years, in weeks", map[string]any{"rotation": map[string]any{"minEvery": "522w"}},
			`spec.rotation.minEvery: Invalid value: "522w": rotation.minEvery must be between 1m and 87600h`),
		Entry("an expiry warning over ten years, in days", map[string]any{"expiryWarning": "3651d"},
			`spec.expiryWarning: Invalid value: "3651d": expiryWarning must be at most 87600h (ten years)`),
		Entry("a receiver that is not a URL", map[string]any{"notifications": map[string]any{"url": "hooks.example.com/keywarden"}},
			`notifications.url must be an http:// or https:// URL`),
		Entry("a receiver over another protocol", map[string]any{"notifications": map[string]any{"url": "ftp://hooks.example.com/keywarden"}},
			`notifications.url must be an http:// or https:// URL`),
		Entry("a CA bundle for a receiver without TLS", map[string]any{"notifications": map[string]any{"url": "http://hooks.example.com", "caBundle": "Zm9v"}},
			`spec.notifications: Invalid value: notifications.caBundle is for an https:// receiver`),
		Entry("a limit of zero keys", map[string]any{"maxActiveKeysPerOwner": 0},
			`spec.maxActiveKeysPerOwner: Invalid value: 0: spec.maxActiveKeysPerOwner in body should be greater than or equal to 1`),
		Entry("a role twice", map[string]any{"roles": []any{map[string]any{"name": "admin"}, map[string]any{"name": "admin"}}},
			`spec.roles[1]: Duplicate value: {"name":"admin"}`),
		Entry("a description of a scope the role does not grant", map[string]any{"roles": []any{map[string]any{
			"name": "reader", "scopes": []any{"logs:read"},
			"scopeDescriptions": []any{map[string]any{"scope": "logs:write", "description": "Write the logs"}}}}},
			`spec.roles[0].scopeDescriptions: Invalid value: scopeDescriptions may describe only the role's scopes`),
		Entry("a description of a scope in a role that lists none", map[string]any{"roles": []any{map[string]any{
			"name": "reader", "scopeDescriptions": []any{map[string]any{"scope": "logs:read", "description": "Read the logs"}}}}},
			`spec.roles[0].scopeDescriptions: Invalid value: scopeDescriptions may describe only the role's scopes`),
		Entry("a scope described twice", map[string]any{"roles": []any{map[string]any{
			"name": "reader", "scopes": []any{"logs:read"},
			"scopeDescriptions": []any{map[string]any{"scope": "logs:read", "description": "a"}, map[string]any{"scope": "logs:read", "description": "b"}}}}},
			`spec.roles[0].scopeDescriptions[1]: Duplicate value: {"scope":"logs:read"}`),
		Entry("an empty scope description", map[string]any{"roles": []any{map[string]any{
			"name": "reader", "scopes": []any{"logs:read"},
			"scopeDescriptions": []any{map[string]any{"scope": "logs:read", "description": ""}}}}},
			`spec.roles[0].scopeDescriptions[0].description: Invalid value: "": spec.roles[0].scopeDescriptions[0].description in body should be at least 1 chars long`),
		Entry("a scope description over 256 characters", map[string]any{"roles": []any{map[string]any{
			"name": "reader", "scopes": []any{"logs:read"},
			"scopeDescriptions": []any{map[string]any{"scope": "logs:read", "description": strings.Repeat("r", 257)}}}}},
			`spec.roles[0].scopeDescriptions[0].description: Too long: may not be more than 256 bytes`),
		Entry("a namespaceSelector with an unknown operator", map[string]any{"namespaceSelector": map[string]any{
			"matchExpressions": []any{map[string]any{"key": "team", "operator": "Equals", "values": []any{"a"}}}}},
			`spec.namespaceSelector: Invalid value: the operators of matchExpressions are In, NotIn, Exists and DoesNotExist`),
		Entry("a namespaceSelector's In without values", map[string]any{"namespaceSelector": map[string]any{
			"matchExpressions": []any{map[string]any{"key": "team", "operator": "In"}}}},
			`spec.namespaceSelector: Invalid value: In and NotIn take one or more values; Exists and DoesNotExist take none`),
		Entry("a namespaceSelector with too many expressions", map[string]any{"namespaceSelector": map[string]any{
			"matchExpressions": func() []any {
				var out []any
				for i := range 33 {
					out = append(out, map[string]any{"key": fmt.Sprintf("k%d", i), "operator": "Exists"})
				}
				return out
			}()}},
			`spec.namespaceSelector: Invalid value: a namespaceSelector holds at most 32 labels, 32 expressions and 64 values an expression`),
		Entry("a namespaceSelector's Exists with values", map[string]any{"namespaceSelector": map[string]any{
			"matchExpressions": []any{map[string]any{"key": "team", "operator": "Exists", "values": []any{"a"}}}}},
			`spec.namespaceSelector: Invalid value: In and NotIn take one or more values; Exists and DoesNotExist take none`),
	)
})
