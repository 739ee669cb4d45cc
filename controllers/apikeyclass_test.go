package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// newClass creates a cluster-scoped class that is deleted after the test.
func newClass(ctx context.Context, isDefault bool, spec keywardenv1alpha1.APIKeyClassSpec) *keywardenv1alpha1.APIKeyClass {
	c := &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "c-" + rand.String(6)}, Spec: spec}
	if isDefault {
		c.Annotations = map[string]string{keywardenv1alpha1.AnnotationDefaultClass: "true"}
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, c)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, c))).To(Succeed()) })
	return c
}

// waitClassNotReady waits until the class's Ready condition is False for
// the reason, and returns it.
func waitClassNotReady(ctx context.Context, c *keywardenv1alpha1.APIKeyClass, reason string) *metav1.Condition {
	var ready *metav1.Condition
	EventuallyWithOffset(1, func(g Gomega) {
		got := &keywardenv1alpha1.APIKeyClass{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
		ready = apimeta.FindStatusCondition(got.Status.Conditions, "Ready")
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(reason))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	return ready
}

var _ = Describe("APIKeyClass policy", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("issues keys with the class's prefix, the role's scopes and the default lifetime", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			KeyPrefix:       "pdm_",
			Roles:           []keywardenv1alpha1.ClassRole{{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read", "audit:read"}}},
			DefaultLifetime: &keywardenv1alpha1.Duration{Duration: 24 * time.Hour},
			MaxLifetime:     &keywardenv1alpha1.Duration{Duration: 48 * time.Hour},
		})
		k := newAPIKey(ns, "paradime")
		k.Spec.ClassName, k.Spec.Role, k.Spec.Scopes = c.Name, "readonly", nil
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitReady(ctx, k)
		s, err := readSecret(ctx, ns, "paradime")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(s.Data["key"])).To(HavePrefix("pdm_"))
		Expect(got.Status.KeyPrefix).To(HavePrefix("pdm_"))
		Expect(got.Status.ClassName).To(Equal(c.Name))
		Expect(got.Status.Scopes).To(ConsistOf(keywardenv1alpha1.Scope("logs:read"), keywardenv1alpha1.Scope("audit:read")))
		Expect(got.Status.ExpiresAt.Time).To(Equal(got.Status.IssuedAt.Add(24 * time.Hour)))
		Expect(condition(got, "ClassCompliant").Status).To(Equal(metav1.ConditionTrue))
	})

	It("warns once as a key enters its class's expiry warning, leaving it Ready, and not a key issued for less", func() {
		// The window starts three seconds after issuance for a key of an
		// hour: the pass that marks it is the one its wake-up asked for.
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{ExpiryWarning: &keywardenv1alpha1.Duration{Duration: time.Hour - 3*time.Second}})
		long, short := newAPIKey(ns, "long"), newAPIKey(ns, "short")
		long.Spec.ClassName, long.Spec.Lifetime = c.Name, &keywardenv1alpha1.Duration{Duration: time.Hour}
		short.Spec.ClassName, short.Spec.Lifetime = c.Name, &keywardenv1alpha1.Duration{Duration: 30 * time.Minute}
		Expect(k8sClient.Create(ctx, long)).To(Succeed())
		Expect(k8sClient.Create(ctx, short)).To(Succeed())
		issued := waitReady(ctx, long)
		Expect(condition(issued, keywardenv1alpha1.ConditionExpiringSoon).Type).To(BeEmpty(), "warned before the window")
		var got *keywardenv1alpha1.APIKey
		Eventually(func(g Gomega) {
			got = getKey(ctx, long)
			c := condition(got, keywardenv1alpha1.ConditionExpiringSoon)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Message).To(ContainSubstring(got.Status.ExpiresAt.UTC().Format(time.RFC3339)))
		}, 10*time.Second).Should(Succeed())
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Eventually(eventReasons(ctx, got)).Should(ContainElement(keywardenv1alpha1.EventKeyExpiringSoon))
		// Later passes (a label change wakes one) tell nothing again.
		Expect(k8sClient.Patch(ctx, got, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)))).To(Succeed())
		Consistently(func() ([]string, error) {
			reasons, err := eventReasons(ctx, got)()
			var n []string
			for _, r := range reasons {
				if r == keywardenv1alpha1.EventKeyExpiringSoon {
					n = append(n, r)
				}
			}
			return n, err
		}, time.Second).Should(HaveLen(1))
		Expect(condition(getKey(ctx, short), keywardenv1alpha1.ConditionExpiringSoon).Type).To(BeEmpty(), "a key issued for less than the window was warned")
		Expect(eventReasons(ctx, waitReady(ctx, short))()).NotTo(ContainElement(keywardenv1alpha1.EventKeyExpiringSoon))
	})

	DescribeTable("does not issue a key the class does not allow",
		func(mutate func(*keywardenv1alpha1.APIKey), reason, message string) {
			c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
				Roles:       []keywardenv1alpha1.ClassRole{{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read"}}},
				MaxLifetime: &keywardenv1alpha1.Duration{Duration: 720 * time.Hour},
				Rotation: &keywardenv1alpha1.ClassRotation{
					MaxEvery: &keywardenv1alpha1.Duration{Duration: 720 * time.Hour}, MaxGracePeriod: &keywardenv1alpha1.Duration{Duration: 48 * time.Hour},
				},
			})
			k := newAPIKey(ns, "refused")
			k.Spec.ClassName, k.Spec.Role, k.Spec.Scopes = c.Name, "readonly", []keywardenv1alpha1.Scope{"logs:read"}
			mutate(k)
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			got := waitStalled(ctx, k, reason)
			Expect(condition(got, "Stalled").Message).To(Equal(fmt.Sprintf(message, c.Name)))
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhasePending))
			Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionFalse))
			Consistently(secretGone(ctx, ns, "refused"), 300*time.Millisecond).Should(Succeed())
			Eventually(eventReasons(ctx, got)).Should(ContainElement("PolicyViolation"))
		},
		Entry("a role it does not list", func(k *keywardenv1alpha1.APIKey) { k.Spec.Role = "admin"; k.Spec.Scopes = nil },
			"RoleNotAllowed", `role "admin" is not allowed by APIKeyClass %q; allowed roles: readonly`),
		Entry("a scope the role may not grant", func(k *keywardenv1alpha1.APIKey) { k.Spec.Scopes = append(k.Spec.Scopes, "logs:delete") },
			"ScopeNotAllowed", `scope "logs:delete" is not allowed for role "readonly" by APIKeyClass %q; it allows logs:read`),
		Entry("a lifetime over the maximum", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 8760 * time.Hour}
		},
			"LifetimeExceedsMax", `lifetime 8760h0m0s exceeds the maximum of 720h0m0s set by APIKeyClass %q`),
		Entry("a rotation less often than the class requires", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: 2160 * time.Hour}}
		}, "RotationRequired", `rotation every 2160h0m0s is less often than the 720h0m0s required by APIKeyClass %q`),
		Entry("a grace period over the class's maximum", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Rotation = &keywardenv1alpha1.Rotation{GracePeriod: &keywardenv1alpha1.Duration{Duration: 72 * time.Hour}}
		}, "GracePeriodExceedsMax", `grace period 72h0m0s exceeds the maximum of 48h0m0s set by APIKeyClass %q`),
		Entry("a rotation more often than the class allows (by default hourly)", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: time.Minute}}
		}, "RotationTooFrequent", `rotation every 1m0s is more often than the 1h0m0s allowed by APIKeyClass %q (rotation.minEvery)`),
	)

	It("waits for a class that does not exist yet, then issues", func() {
		k := newAPIKey(ns, "early")
		k.Spec.ClassName = "c-later-" + rand.String(4)
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitStalled(ctx, k, "ClassNotFound")
		Expect(condition(got, "Stalled").Message).To(ContainSubstring(fmt.Sprintf("APIKeyClass %q does not exist", k.Spec.ClassName)))

		c := &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: k.Spec.ClassName}, Spec: keywardenv1alpha1.APIKeyClassSpec{KeyPrefix: "late_"}}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, c)).To(Succeed()) })
		got = waitReady(ctx, k)
		Expect(got.Status.KeyPrefix).To(HavePrefix("late_"))
	})

	It("shows four characters of the key's body in the display prefix, however long the class prefix", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{KeyPrefix: "abcdefghijk_"})
		var prefixes []string
		for _, name := range []string{"long-1", "long-2"} {
			k := newAPIKey(ns, name)
			k.Spec.ClassName = c.Name
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			got := waitReady(ctx, k)
			s, err := readSecret(ctx, ns, name)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Status.KeyPrefix).To(Equal(string(s.Data["key"])[:16]))
			prefixes = append(prefixes, got.Status.KeyPrefix)
		}
		Expect(prefixes[0]).NotTo(Equal(prefixes[1]))
	})

	It("applies the default class to keys without className, and reports two defaults", func() {
		first := newClass(ctx, true, keywardenv1alpha1.APIKeyClassSpec{KeyPrefix: "dflt_"})
		Eventually(func() bool {
			c := &keywardenv1alpha1.APIKeyClass{}
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(first), c)
			return apimeta.IsStatusConditionTrue(c.Status.Conditions, "Ready")
		}, 10*time.Second).Should(BeTrue())
		k := newAPIKey(ns, "defaulted")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitReady(ctx, k)
		Expect(got.Status.ClassName).To(Equal(first.Name))
		Expect(got.Status.KeyPrefix).To(HavePrefix("dflt_"))

		second := newClass(ctx, true, keywardenv1alpha1.APIKeyClassSpec{})
		for _, c := range []*keywardenv1alpha1.APIKeyClass{first, second} {
			ready := waitClassNotReady(ctx, c, "AmbiguousDefaultClass")
			Expect(ready.Message).To(And(ContainSubstring(first.Name), ContainSubstring(second.Name)))
		}
		k2 := newAPIKey(ns, "ambiguous")
		Expect(k8sClient.Create(ctx, k2)).To(Succeed())
		waitStalled(ctx, k2, "AmbiguousDefaultClass")
		// The key issued before stays issued under the class it was
		// issued under: a second default takes nothing over.
		Consistently(func(g Gomega) {
			got := getKey(ctx, k)
			g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			g.Expect(got.Status.ClassName).To(Equal(first.Name))
			g.Expect(condition(got, "ClassCompliant").Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(got, "Stalled").Status).To(BeEmpty())
		}, time.Second, 100*time.Millisecond).Should(Succeed())

		Expect(k8sClient.Delete(ctx, second)).To(Succeed())
		waitReady(ctx, k2)
	})

	It("never rewrites an issued key when its class changes, but says it no longer fits", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles: []keywardenv1alpha1.ClassRole{{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}}},
		})
		k := newAPIKey(ns, "grandfathered")
		k.Spec.ClassName = c.Name
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		before := waitReady(ctx, k)

		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Roles = []keywardenv1alpha1.ClassRole{{Name: "readonly"}}
		Expect(k8sClient.Patch(ctx, c, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getKey(ctx, k)
			compliant := condition(got, "ClassCompliant")
			g.Expect(compliant.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(compliant.Reason).To(Equal("RoleNotAllowed"))
			g.Expect(compliant.Message).To(ContainSubstring(`role "standard" is not allowed`))
		}, 10*time.Second).Should(Succeed())
		after := getKey(ctx, k)
		Expect(after.Status.KeyHash).To(Equal(before.Status.KeyHash))
		Expect(after.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Expect(condition(after, "Ready").Status).To(Equal(metav1.ConditionTrue))
	})

	It("refuses an owner's 11th active key and issues it once one of the ten is revoked", func() {
		var first10 []*keywardenv1alpha1.APIKey
		for i := range 10 {
			k := newAPIKey(ns, fmt.Sprintf("key-%02d", i))
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			first10 = append(first10, k)
		}
		for _, k := range first10 {
			waitReady(ctx, k)
		}
		eleventh := newAPIKey(ns, "key-10")
		Expect(k8sClient.Create(ctx, eleventh)).To(Succeed())
		got := waitRefused(ctx, eleventh)
		Expect(condition(got, "Reconciling").Message).To(Equal("owner web-team@example.com already holds 10 active keys (limit 10) in namespace " + ns + "; revoke or delete one of them first"))
		Expect(secretGone(ctx, ns, "key-10")()).To(Succeed())
		Eventually(eventReasons(ctx, got)).Should(ContainElement("KeyRefused"))

		By("another owner is not affected")
		other := newAPIKey(ns, "other-owner")
		other.Spec.Owner = "data-team@example.com"
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		waitReady(ctx, other)

		By("revoking one of the ten")
		revoke := first10[3]
		patch := client.MergeFrom(revoke.DeepCopy())
		revoke.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, revoke, patch)).To(Succeed())
		waitReady(ctx, eleventh)
	})

	It("never issues more keys than the limit when 30 are created at once", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{MaxActiveKeysPerOwner: ptr.To[int32](10)})
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				defer GinkgoRecover()
				k := newAPIKey(ns, fmt.Sprintf("burst-%02d", i))
				k.Spec.ClassName = c.Name
				Expect(k8sClient.Create(ctx, k)).To(Succeed())
			})
		}
		wg.Wait()
		var list keywardenv1alpha1.APIKeyList
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(30))
			for _, k := range list.Items {
				g.Expect(k.Status.Phase).To(BeElementOf(keywardenv1alpha1.PhaseActive, keywardenv1alpha1.PhaseRefused), k.Name)
			}
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
		// Let any pass still under way finish before counting.
		Consistently(func(g Gomega) {
			var secrets corev1.SecretList
			g.Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "keywarden"})).To(Succeed())
			g.Expect(secrets.Items).To(HaveLen(10))
		}, time.Second, 100*time.Millisecond).Should(Succeed())
		active := 0
		for _, k := range list.Items {
			if k.Status.KeyHash != "" {
				active++
			}
		}
		Expect(active).To(Equal(10))
		GinkgoWriter.Printf("30 keys created at once for one owner with 4 workers: %d issued, %d refused\n", active, 30-active)
	})

	It("counts an owner's keys of a class in every namespace when the class says so, and issues a refused one when a place frees anywhere", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			MaxActiveKeysPerOwner: ptr.To[int32](2), OwnerLimitScope: keywardenv1alpha1.OwnerLimitCluster,
		})
		owner := "account-" + rand.String(6) + "@example.com"
		key := func(ns, name, class string) *keywardenv1alpha1.APIKey {
			k := newAPIKey(ns, name)
			k.Spec.Owner, k.Spec.ClassName = owner, class
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			return k
		}
		nsB, nsC := newNamespace(ctx), newNamespace(ctx)
		a := key(ns, "in-a", c.Name)
		waitReady(ctx, a)
		b := key(nsB, "in-b", c.Name)
		waitReady(ctx, b)

		By("a third key of the class, in a third namespace, is refused")
		third := key(nsC, "in-c", c.Name)
		got := waitRefused(ctx, third)
		Expect(condition(got, "Reconciling").Message).To(Equal("owner " + owner + " already holds 2 active keys of APIKeyClass \"" + c.Name +
			"\" (limit 2, counted in every namespace); revoke or delete one of them first"))

		By("a key of another class is not counted")
		waitReady(ctx, key(nsC, "other-class", ""))

		By("revoking the key in the first namespace issues the one in the third")
		patch := client.MergeFrom(a.DeepCopy())
		a.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, a, patch)).To(Succeed())
		waitReady(ctx, third)
	})

	It("never issues more keys than a limit counted across namespaces when they are created at once", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			MaxActiveKeysPerOwner: ptr.To[int32](3), OwnerLimitScope: keywardenv1alpha1.OwnerLimitCluster,
		})
		owner := "burst-" + rand.String(6) + "@example.com"
		namespaces := []string{ns, newNamespace(ctx), newNamespace(ctx)}
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				defer GinkgoRecover()
				k := newAPIKey(namespaces[i%3], fmt.Sprintf("across-%02d", i))
				k.Spec.Owner, k.Spec.ClassName = owner, c.Name
				Expect(k8sClient.Create(ctx, k)).To(Succeed())
			})
		}
		wg.Wait()
		count := func(g Gomega) (active, settled int) {
			for _, n := range namespaces {
				var list keywardenv1alpha1.APIKeyList
				g.Expect(k8sClient.List(ctx, &list, client.InNamespace(n))).To(Succeed())
				for _, k := range list.Items {
					if k.Spec.Owner != owner {
						continue
					}
					if k.Status.KeyHash != "" {
						active++
					}
					if k.Status.Phase == keywardenv1alpha1.PhaseActive || k.Status.Phase == keywardenv1alpha1.PhaseRefused {
						settled++
					}
				}
			}
			return active, settled
		}
		Eventually(func(g Gomega) {
			_, settled := count(g)
			g.Expect(settled).To(Equal(12))
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
		Consistently(func(g Gomega) {
			active, _ := count(g)
			g.Expect(active).To(Equal(3))
		}, time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("issues keys of a class only in the namespaces its namespaceSelector admits", func() {
		label := func(name string, labels map[string]string) {
			n := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, n)).To(Succeed())
			n.Labels = labels
			Expect(k8sClient.Update(ctx, n)).To(Succeed())
		}
		team := "team-" + rand.String(6)
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"keywarden.dev/team": team}},
		})
		label(ns, map[string]string{"keywarden.dev/team": team})
		sandbox := newNamespace(ctx)

		ours := newAPIKey(ns, "ours")
		ours.Spec.ClassName = c.Name
		Expect(k8sClient.Create(ctx, ours)).To(Succeed())
		waitReady(ctx, ours)

		// The attack: an editor of an unlabelled namespace asks for a key
		// of the class. It is never issued.
		theirs := newAPIKey(sandbox, "theirs")
		theirs.Spec.ClassName = c.Name
		Expect(k8sClient.Create(ctx, theirs)).To(Succeed())
		got := waitStalled(ctx, theirs, keywardenv1alpha1.ReasonNamespaceNotAllowed)
		Expect(condition(got, "Stalled").Message).To(And(ContainSubstring(c.Name), ContainSubstring(sandbox), ContainSubstring("keywarden.dev/team="+team)))
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhasePending))
		Consistently(func(g Gomega) {
			g.Expect(getKey(ctx, theirs).Status.KeyHash).To(BeEmpty())
			_, err := readSecret(ctx, sandbox, "theirs")
			g.Expect(err).To(HaveOccurred())
		}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
		Eventually(eventReasons(ctx, theirs)).Should(ContainElement(keywardenv1alpha1.EventPolicyViolation))

		// A default class that selects namespaces applies to the keys that
		// name no class there too: no falling back to the built-in policy.
		def := newClass(ctx, true, keywardenv1alpha1.APIKeyClassSpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"keywarden.dev/team": team}},
		})
		unclassed := newAPIKey(sandbox, "unclassed")
		Expect(k8sClient.Create(ctx, unclassed)).To(Succeed())
		Expect(condition(waitStalled(ctx, unclassed, keywardenv1alpha1.ReasonNamespaceNotAllowed), "Stalled").Message).To(ContainSubstring(def.Name))

		// Labelling the namespace admits both.
		label(sandbox, map[string]string{"keywarden.dev/team": team})
		waitReady(ctx, theirs)
		waitReady(ctx, unclassed)

		// Taking the label away from a namespace leaves its issued key as
		// it was, valid, but out of its class.
		label(ns, nil)
		Eventually(func(g Gomega) {
			k := getKey(ctx, ours)
			g.Expect(condition(k, "ClassCompliant")).To(And(
				HaveField("Status", metav1.ConditionFalse), HaveField("Reason", keywardenv1alpha1.ReasonNamespaceNotAllowed)))
			g.Expect(k.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("reports a namespaceSelector it cannot evaluate on the class, and issues nothing under it", func() {
		c := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"not a label key!": "x"}},
		})
		waitClassNotReady(ctx, c, keywardenv1alpha1.ReasonInvalidNamespaceSelector)
		k := newAPIKey(ns, "under-invalid")
		k.Spec.ClassName = c.Name
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitStalled(ctx, k, keywardenv1alpha1.ReasonInvalidNamespaceSelector)
	})
})
