package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// health is what kstatus (as Flux computes it) and Argo CD say of an
// object.
type health struct{ kstatus, argo string }

// readmeHealth reads the README's health table: situation -> health.
func readmeHealth() map[string]health {
	b, err := os.ReadFile("../README.md")
	Expect(err).NotTo(HaveOccurred())
	_, section, found := strings.Cut(string(b), "## GitOps: health in kstatus, Flux and Argo CD")
	Expect(found).To(BeTrue(), "the README has no health section")
	rows := map[string]health{}
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) != 7 || strings.TrimSpace(cells[1]) == "situation" || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		argo, _, _ := strings.Cut(strings.TrimSpace(cells[5]), " (")
		rows[strings.TrimSpace(cells[1])] = health{strings.TrimSpace(cells[4]), argo}
	}
	return rows
}

// argoScripts reads the health scripts of docs/gitops/argocd-cm.yaml, by
// kind.
func argoScripts() map[string]string {
	b, err := os.ReadFile("../docs/gitops/argocd-cm.yaml")
	Expect(err).NotTo(HaveOccurred())
	var cm corev1.ConfigMap
	Expect(yaml.UnmarshalStrict(b, &cm)).To(Succeed())
	scripts := map[string]string{}
	for k, v := range cm.Data {
		kind, ok := strings.CutPrefix(k, "resource.customizations.health."+keywardenv1alpha1.GroupVersion.Group+"_")
		Expect(ok).To(BeTrue(), "unexpected key %s", k)
		scripts[kind] = v
	}
	Expect(scripts).To(HaveKey("APIKey"))
	Expect(scripts).To(HaveKey("APIKeyClass"))
	return scripts
}

// toLua converts a JSON-like value as Argo CD does for obj.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	}
	Fail(fmt.Sprintf("no Lua value for %T", v))
	return lua.LNil
}

// argoHealth runs an Argo CD health script on the object, with only the
// libraries Argo CD opens for such scripts.
func argoHealth(script string, obj map[string]any) (string, string) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for name, open := range map[string]lua.LGFunction{lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable} {
		L.Push(L.NewFunction(open))
		L.Push(lua.LString(name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	ExpectWithOffset(1, L.DoString(script)).To(Succeed())
	ret, ok := L.Get(-1).(*lua.LTable)
	ExpectWithOffset(1, ok).To(BeTrue(), "the script returned no table")
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

// unstructuredOf is the object as the API server serves it, with its kind.
func unstructuredOf(obj client.Object, kind string) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(keywardenv1alpha1.GroupVersion.String())
	u.SetKind(kind)
	return u.Object
}

// kstatusOf is what kstatus (as Flux computes it) says of the key.
func kstatusOf(k *keywardenv1alpha1.APIKey) (status.Status, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: unstructuredOf(k, "APIKey")})
	if err != nil {
		return "", err
	}
	return res.Status, nil
}

// watchKey records every version of the key the API server sends from
// now on, until stop.
func watchKey(ctx context.Context, k *keywardenv1alpha1.APIKey) (stop func() []keywardenv1alpha1.APIKey) {
	w, err := k8sClient.Watch(ctx, &keywardenv1alpha1.APIKeyList{}, client.InNamespace(k.Namespace),
		client.MatchingFields{"metadata.name": k.Name}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: getKey(ctx, k).ResourceVersion}})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var seen []keywardenv1alpha1.APIKey
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if got, ok := ev.Object.(*keywardenv1alpha1.APIKey); ok && (ev.Type == watch.Modified || ev.Type == watch.Deleted) {
				seen = append(seen, *got)
			}
		}
	}()
	return func() []keywardenv1alpha1.APIKey {
		w.Stop()
		<-done
		return seen
	}
}

var _ = Describe("Health in kstatus, Flux and Argo CD", func() {
	It("gives every phase and stall the README's answer, in kstatus and in the Argo CD script, on objects the controller wrote", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		scripts := argoScripts()
		want := readmeHealth()
		objects := map[string]map[string]any{}
		keyObj := func(situation string, k *keywardenv1alpha1.APIKey) {
			objects[situation] = unstructuredOf(k, "APIKey")
		}
		// keyWhen records the key once its condition has that status.
		keyWhen := func(situation string, k *keywardenv1alpha1.APIKey, typ string, want metav1.ConditionStatus) {
			Eventually(func(g Gomega) {
				got := getKey(ctx, k)
				g.Expect(condition(got, typ).Status).To(Equal(want))
				keyObj(situation, got)
			}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		}
		create := func(name string, mutate func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
			k := newAPIKey(ns, name)
			if mutate != nil {
				mutate(k)
			}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			return k
		}
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles:                 []keywardenv1alpha1.ClassRole{{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}}, {Name: "readonly"}},
			MaxActiveKeysPerOwner: ptr.To(int32(1)),
		})
		inClass := func(owner string) func(*keywardenv1alpha1.APIKey) {
			return func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName, k.Spec.Owner = c.Name, owner }
		}

		By("a key the controller has not seen: as the API server answers its creation")
		// Created as unstructured, so that the answer is read as the API
		// server sent it (a typed object drops status.observedGeneration: 0).
		fresh := newAPIKey(ns, "fresh")
		u := &unstructured.Unstructured{Object: unstructuredOf(fresh, "APIKey")}
		Expect(k8sClient.Create(ctx, u)).To(Succeed())
		Expect(u.Object).To(HaveKeyWithValue("status", map[string]any{"observedGeneration": int64(0)}))
		objects["created, not seen by the controller yet"] = u.Object

		By("an issued key, then reissued after its Secret is deleted")
		issued := waitReady(ctx, fresh)
		keyObj("issued", issued)
		stop := watchKey(ctx, fresh)
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fresh"}})).To(Succeed())
		waitReissued(ctx, issued)
		for _, v := range stop() {
			if condition(&v, "Reconciling").Reason == keywardenv1alpha1.ReasonReissuing {
				keyObj("being reissued (its Secret was lost)", &v)
			}
		}

		By("a key waiting for a place under its owner's limit")
		first := create("first", inClass("a@example.com"))
		waitReady(ctx, first)
		keyObj("waiting for a place under its owner's limit", waitRefused(ctx, create("second", inClass("a@example.com"))))

		By("keys that cannot be issued")
		keyObj("not allowed by its class", waitStalled(ctx, create("admin", func(k *keywardenv1alpha1.APIKey) {
			inClass("b@example.com")(k)
			k.Spec.Role, k.Spec.Scopes = "admin", nil
		}), keywardenv1alpha1.ReasonRoleNotAllowed))
		keyObj("its class does not exist", waitStalled(ctx, create("classless", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.ClassName = "no-such-class"
		}), keywardenv1alpha1.ReasonClassNotFound))

		By("an issued key whose change is refused, and one whose class changed under it")
		widened := create("widened", inClass("c@example.com"))
		waitReady(ctx, widened)
		patch := client.MergeFrom(widened.DeepCopy())
		widened.Spec.Role, widened.Spec.Scopes = "admin", nil
		Expect(k8sClient.Patch(ctx, widened, patch)).To(Succeed())
		keyObj("issued, a change of its spec refused", waitStalled(ctx, widened, keywardenv1alpha1.ReasonRoleNotAllowed))

		narrowed := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles: []keywardenv1alpha1.ClassRole{{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}}},
		})
		grandfathered := create("grandfathered", func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName = narrowed.Name })
		waitReady(ctx, grandfathered)
		cpatch := client.MergeFrom(narrowed.DeepCopy())
		narrowed.Spec.Roles = []keywardenv1alpha1.ClassRole{{Name: "readonly"}}
		Expect(k8sClient.Patch(ctx, narrowed, cpatch)).To(Succeed())
		keyWhen("issued, no longer fitting its changed class", grandfathered, keywardenv1alpha1.ConditionClassCompliant, metav1.ConditionFalse)

		By("a key within its class's expiry warning")
		warned := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{ExpiryWarning: &keywardenv1alpha1.Duration{Duration: time.Hour - time.Second}})
		expiring := create("expiring", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.ClassName, k.Spec.Lifetime = warned.Name, &keywardenv1alpha1.Duration{Duration: time.Hour}
		})
		keyWhen("issued, expiring within its class's warning", expiring, keywardenv1alpha1.ConditionExpiringSoon, metav1.ConditionTrue)

		By("an expired key")
		expired := create("expired", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(2 * time.Second)}
		})
		keyObj("expired", waitPhase(ctx, expired, keywardenv1alpha1.PhaseExpired, 20*time.Second))

		By("a key revoked in its spec")
		revoked := create("revoked", nil)
		waitReady(ctx, revoked)
		Expect(k8sClient.Patch(ctx, revoked, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())
		keyObj("revoked as its spec declares", waitPhase(ctx, revoked, keywardenv1alpha1.PhaseRevoked, 20*time.Second))

		By("a key the verifier revoked, then the revocation acknowledged in its spec")
		reported := create("reported", nil)
		waitReady(ctx, reported)
		Expect(k8sClient.Status().Patch(ctx, reported, client.RawPatch(types.MergePatchType,
			[]byte(`{"status":{"revocation":{"reason":"KeyReported","message":"reported as leaked","at":"`+time.Now().UTC().Format(time.RFC3339)+`"}}}`)))).To(Succeed())
		got := waitStalled(ctx, reported, keywardenv1alpha1.ReasonKeyReported)
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRevoked))
		keyObj("revoked by the verifier, its spec still active", got)
		Expect(k8sClient.Patch(ctx, reported, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			got := getKey(ctx, reported)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(condition(got, "Stalled").Status).To(BeEmpty())
			objects["revoked by the verifier, then acknowledged"] = unstructuredOf(got, "APIKey")
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())

		By("a key being deleted")
		stop = watchKey(ctx, revoked)
		Expect(k8sClient.Delete(ctx, revoked)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(revoked), &keywardenv1alpha1.APIKey{})
		}, 10*time.Second).ShouldNot(Succeed())
		for _, v := range stop() {
			if v.DeletionTimestamp != nil {
				keyObj("being deleted", &v)
				break
			}
		}

		By("classes that can and cannot be used")
		Eventually(func(g Gomega) {
			got := &keywardenv1alpha1.APIKeyClass{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
			g.Expect(apimeta.IsStatusConditionTrue(got.Status.Conditions, "Ready")).To(BeTrue())
			objects["a class that can be used"] = unstructuredOf(got, "APIKeyClass")
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		broken := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"not a label key!": "x"}},
		})
		waitClassNotReady(ctx, broken, keywardenv1alpha1.ReasonInvalidNamespaceSelector)
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(broken), broken)).To(Succeed())
		objects["a class that cannot be used"] = unstructuredOf(broken, "APIKeyClass")

		By("the Flux example waits for what it applies")
		var flux map[string]any
		b, err := os.ReadFile("../docs/gitops/flux-kustomization.yaml")
		Expect(err).NotTo(HaveOccurred())
		Expect(yaml.Unmarshal(b, &flux)).To(Succeed())
		Expect(flux).To(HaveKeyWithValue("kind", "Kustomization"))
		Expect(flux).To(HaveKeyWithValue("apiVersion", "kustomize.toolkit.fluxcd.io/v1"))
		Expect(flux["spec"]).To(HaveKeyWithValue("wait", true))

		By("kstatus and the Argo CD script answer each as the README says")
		want["revoked by the verifier, then acknowledged"] = want["revoked as its spec declares"]
		for situation := range want {
			Expect(objects).To(HaveKey(situation), "no object was produced for the README's row %q", situation)
		}
		for situation, obj := range objects {
			w, ok := want[situation]
			Expect(ok).To(BeTrue(), "the README has no row %q", situation)
			res, err := status.Compute(&unstructured.Unstructured{Object: obj})
			Expect(err).NotTo(HaveOccurred())
			kind := obj["kind"].(string)
			argo, msg := argoHealth(scripts[kind], obj)
			Expect(health{res.Status.String(), argo}).To(Equal(w), "%s: kstatus says %q, Argo CD %q", situation, res.Message, msg)
			Expect(msg).NotTo(BeEmpty(), situation)
			conditions, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
			for _, c := range conditions {
				// Argo CD shows the condition that decided the answer.
				m := c.(map[string]any)
				if m["status"] == "True" && (m["type"] == "Stalled" || m["type"] == "Reconciling") {
					Expect(msg).To(ContainSubstring(m["message"].(string)), situation)
				}
			}
			GinkgoWriter.Printf("%s: %s / %s: %s\n", situation, res.Status, argo, msg)
		}
		Expect(objects["issued, expiring within its class's warning"]).NotTo(BeNil())
		_, msg := argoHealth(scripts["APIKey"], objects["issued, expiring within its class's warning"])
		Expect(msg).To(ContainSubstring("within its class's expiry warning"))
		_, msg = argoHealth(scripts["APIKey"], objects["issued, no longer fitting its changed class"])
		Expect(msg).To(ContainSubstring("no longer fits its class"))
	})

	It("brings revoked, expired and refused keys the previous release left to the new conditions, keeping their keys", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		limited := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles:                 []keywardenv1alpha1.ClassRole{{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}}},
			MaxActiveKeysPerOwner: ptr.To(int32(1)),
		})
		// What the previous release wrote: a terminal key Ready=False
		// alone, a refused one Stalled. The manager does not see these
		// keys until the label goes, as if it had just been upgraded.
		old := func(name string, phase keywardenv1alpha1.APIKeyPhase, revoked bool, conds ...metav1.Condition) *keywardenv1alpha1.APIKey {
			k := newAPIKey(ns, name)
			k.Labels = map[string]string{labelUnmanaged: "true"}
			k.Spec.Revoked, k.Spec.ClassName = revoked, limited.Name
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			now := metav1.Now()
			for i := range conds {
				conds[i].LastTransitionTime, conds[i].ObservedGeneration = now, k.Generation
			}
			k.Status = keywardenv1alpha1.APIKeyStatus{Phase: phase, ObservedGeneration: k.Generation, Conditions: conds, Owner: k.Spec.Owner, Role: k.Spec.Role}
			if phase != keywardenv1alpha1.PhaseRefused {
				k.Status.KeyHash, k.Status.KeyPrefix = "sha256:"+strings.Repeat("ab", 32), "kw_abcd..."
				k.Status.IssuedAt, k.Status.ExpiresAt = &metav1.Time{Time: now.Add(-2 * time.Hour)}, &metav1.Time{Time: now.Add(-time.Hour)}
			}
			if revoked {
				k.Status.RevokedAt = &now
			}
			Expect(k8sClient.Status().Update(ctx, k)).To(Succeed())
			return k
		}
		notReady := func(reason string) metav1.Condition {
			return metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: reason, Message: "m"}
		}
		revoked := old("old-revoked", keywardenv1alpha1.PhaseRevoked, true, notReady("Revoked"))
		expired := old("old-expired", keywardenv1alpha1.PhaseExpired, false, notReady("Expired"))
		holder := newAPIKey(ns, "holder")
		holder.Spec.ClassName = limited.Name
		Expect(k8sClient.Create(ctx, holder)).To(Succeed())
		waitReady(ctx, holder)
		refused := old("old-refused", keywardenv1alpha1.PhaseRefused, false, notReady("ActiveKeyLimit"),
			metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "ActiveKeyLimit", Message: "m"})
		for _, k := range []*keywardenv1alpha1.APIKey{revoked, expired, refused} {
			Expect(kstatusOf(getKey(ctx, k))).NotTo(Equal(status.CurrentStatus), k.Name)
			Expect(k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"`+labelUnmanaged+`":null}}}`)))).To(Succeed())
		}
		want := map[string]status.Status{"old-revoked": status.CurrentStatus, "old-expired": status.FailedStatus}
		for _, k := range []*keywardenv1alpha1.APIKey{revoked, expired} {
			Eventually(func(g Gomega) {
				got := getKey(ctx, k)
				g.Expect(kstatusOf(got)).To(Equal(want[k.Name]), k.Name)
				g.Expect(got.Status.KeyHash).To(Equal("sha256:"+strings.Repeat("ab", 32)), "the key's hash, by which the verifier answers, is kept")
			}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		}
		got := waitRefused(ctx, refused)
		Expect(kstatusOf(got)).To(Equal(status.InProgressStatus))
	})
})
