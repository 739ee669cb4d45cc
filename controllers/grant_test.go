package controllers

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/pkg/verify"
)

// A namespace editor may patch an issued APIKey's spec. What the key may
// do is its grant in status, and a change reaches it only as the class and
// the owner's limit allow.
var _ = Describe("The grant of an issued key", func() {
	var (
		ctx context.Context
		ns  string
		ro  *keywardenv1alpha1.APIKeyClass
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		ro = newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles: []keywardenv1alpha1.ClassRole{
				{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read", "metrics:read"}},
				{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"logs:read", "logs:write"}},
			},
			MaxLifetime:           &keywardenv1alpha1.Duration{Duration: 24 * time.Hour},
			MaxActiveKeysPerOwner: ptr.To[int32](1),
		})
	})
	issue := func(name, owner string) *keywardenv1alpha1.APIKey {
		GinkgoHelper()
		k := newAPIKey(ns, name)
		k.Spec.ClassName, k.Spec.Owner, k.Spec.Role = ro.Name, owner, "readonly"
		k.Spec.Scopes = []keywardenv1alpha1.Scope{"logs:read"}
		k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		return waitReady(ctx, k)
	}
	patchSpec := func(k *keywardenv1alpha1.APIKey, mutate func(*keywardenv1alpha1.APIKeySpec)) {
		GinkgoHelper()
		base := k.DeepCopy()
		mutate(&k.Spec)
		Expect(k8sClient.Patch(ctx, k, client.MergeFrom(base))).To(Succeed())
	}
	// settled waits until the controller has seen the key's generation.
	settled := func(k *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
		GinkgoHelper()
		var got *keywardenv1alpha1.APIKey
		Eventually(func(g Gomega) {
			got = getKey(ctx, k)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
		return got
	}

	It("refuses a widening by spec, keeps the key Ready with its grant, and says why", func() {
		k := issue("widened", "a@example.com")
		before := k.Status

		// kubectl patch apikey widened -p '{"spec":{"role":"admin","scopes":["users:admin"],"lifetime":"87600h"}}'
		patchSpec(k, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Role, s.Scopes, s.Lifetime = "admin", []keywardenv1alpha1.Scope{"users:admin"}, &keywardenv1alpha1.Duration{Duration: 87600 * time.Hour}
		})
		got := settled(k)
		Expect(got.Status.Role).To(Equal("readonly"))
		Expect(got.Status.Scopes).To(Equal(before.Scopes))
		Expect(got.Status.ExpiresAt).To(Equal(before.ExpiresAt))
		Expect(got.Status.Owner).To(Equal("a@example.com"))
		Expect(got.Status.KeyHash).To(Equal(before.KeyHash), "the key itself is kept")
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		stalled := condition(got, "Stalled")
		Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		Expect(stalled.Reason).To(Equal("RoleNotAllowed"))
		Expect(stalled.Message).To(Equal(`role "admin" is not allowed by APIKeyClass "` + ro.Name +
			`"; allowed roles: readonly, standard; lifetime 87600h0m0s exceeds the maximum of 24h0m0s set by APIKeyClass "` + ro.Name + `"`))
		Eventually(eventReasons(ctx, got)).Should(ContainElement("GrantChangeRefused"))

		By("withdrawing the change clears the refusal")
		patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Role, s.Scopes, s.Lifetime = "readonly", []keywardenv1alpha1.Scope{"logs:read"}, &keywardenv1alpha1.Duration{Duration: time.Hour}
		})
		Eventually(func() metav1.ConditionStatus { return condition(getKey(ctx, k), "Stalled").Status }, 10*time.Second).Should(BeEmpty())
	})

	It("grants a change the class allows, and names what changed", func() {
		k := issue("promoted", "a@example.com")
		patchSpec(k, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Role, s.Scopes = "standard", []keywardenv1alpha1.Scope{"logs:read", "logs:write"}
		})
		got := settled(k)
		Expect(got.Status.Role).To(Equal("standard"))
		Expect(got.Status.Scopes).To(ConsistOf(keywardenv1alpha1.Scope("logs:read"), keywardenv1alpha1.Scope("logs:write")))
		Expect(condition(got, "Stalled").Status).To(BeEmpty())
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		Eventually(eventReasons(ctx, got)).Should(ContainElement("GrantChanged"))
	})

	It("brings the expiry forward at once, even while another change is refused, and never pushes it past the class's maximum", func() {
		k := issue("shortened", "a@example.com")
		issuedAt := k.Status.IssuedAt.Time
		patchSpec(k, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Role, s.Lifetime = "admin", &keywardenv1alpha1.Duration{Duration: 10 * time.Minute}
		})
		got := settled(k)
		Expect(got.Status.ExpiresAt.Time).To(BeTemporally("==", issuedAt.Add(10*time.Minute)))
		Expect(got.Status.Role).To(Equal("readonly"))
		Expect(condition(got, "Stalled").Reason).To(Equal("RoleNotAllowed"))

		By("pushing it back within the maximum from issuance")
		patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Role, s.Lifetime = "readonly", &keywardenv1alpha1.Duration{Duration: 20 * time.Hour}
		})
		Eventually(func() time.Time { return getKey(ctx, k).Status.ExpiresAt.Time }, 10*time.Second).Should(BeTemporally("==", issuedAt.Add(20*time.Hour)))

		By("pushing it past the maximum")
		got = getKey(ctx, k)
		patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) {
			s.Lifetime = nil
			s.ExpiresAt = &metav1.Time{Time: issuedAt.Add(48 * time.Hour)}
		})
		Eventually(func() string { return condition(getKey(ctx, k), "Stalled").Reason }, 10*time.Second).Should(Equal("LifetimeExceedsMax"))
		Expect(getKey(ctx, k).Status.ExpiresAt.Time).To(BeTemporally("==", issuedAt.Add(20*time.Hour)))
	})

	It("reassigns a key only to an owner with room under the limit", func() {
		k := issue("handed-over", "a@example.com")
		issue("bs-own", "b@example.com")

		patchSpec(k, func(s *keywardenv1alpha1.APIKeySpec) { s.Owner = "b@example.com" })
		got := settled(k)
		Expect(got.Status.Owner).To(Equal("a@example.com"))
		stalled := condition(got, "Stalled")
		Expect(stalled.Reason).To(Equal("ActiveKeyLimit"))
		Expect(stalled.Message).To(Equal("owner b@example.com already holds 1 active keys (limit 1) in namespace " + ns + "; revoke or delete one of them first"))

		By("an owner with room")
		got = getKey(ctx, k)
		patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) { s.Owner = "c@example.com" })
		Eventually(func() string { return getKey(ctx, k).Status.Owner }, 10*time.Second).Should(Equal("c@example.com"))
		Expect(condition(getKey(ctx, k), "Stalled").Status).To(BeEmpty())

		By("a's place is free again")
		issue("as-next", "a@example.com")
	})

	It("keeps the grant through a reissue: a lost Secret never re-admits the spec", func() {
		k := issue("reissued", "a@example.com")
		patchSpec(k, func(s *keywardenv1alpha1.APIKeySpec) { s.Role, s.Scopes = "admin", nil })
		Eventually(func() string { return condition(getKey(ctx, k), "Stalled").Reason }, 10*time.Second).Should(Equal("RoleNotAllowed"))

		old, err := readSecret(ctx, ns, "reissued")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		got := waitReissued(ctx, k)
		Expect(got.Status.Role).To(Equal("readonly"))
		Expect(got.Status.Scopes).To(Equal(k.Status.Scopes))
		Expect(got.Status.ExpiresAt).To(Equal(k.Status.ExpiresAt))
		Expect(got.Status.KeySerial).To(Equal(k.Status.KeySerial + 1))
		Expect(condition(got, "Stalled").Status).To(Equal(metav1.ConditionTrue))

		By("with its class gone, a lost Secret waits for the class")
		Expect(k8sClient.Delete(ctx, ro)).To(Succeed())
		Eventually(func() string { return condition(getKey(ctx, k), "Stalled").Reason }, 10*time.Second).Should(Equal("ClassNotFound"))
		Expect(getKey(ctx, k).Status.Role).To(Equal("readonly"))
		lost, err := readSecret(ctx, ns, "reissued")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, lost)).To(Succeed())
		Eventually(func(g Gomega) {
			got = getKey(ctx, k)
			g.Expect(got.Status.KeyHash).To(BeEmpty())
			g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhasePending))
			g.Expect(condition(got, "Stalled").Reason).To(Equal("ClassNotFound"))
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		Consistently(secretGone(ctx, ns, "reissued"), time.Second).Should(Succeed())
		Expect(got.Status.Role).To(Equal("readonly"))
	})

	Context("upgrading from a release that did not record grants", func() {
		It("keeps a key it issued, records its grant from the spec, and issues no new key", func() {
			k := newAPIKey(ns, "veteran")
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
			k, s, raw, expires := beforeGrants(ctx, k)

			r := &APIKeyReconciler{Client: withOwnerIndex(k8sClient), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: seals}
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
			Expect(err).NotTo(HaveOccurred())

			got := getKey(ctx, k)
			Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)), "the same key")
			Expect(got.Status.SecretRef.UID).To(Equal(string(s.UID)), "the same Secret")
			Expect(got.Status.SecretRef.ResourceVersion).To(Equal(s.ResourceVersion),
				"read once and recorded with its version, not trusted as immutable")
			Expect(got.Status.Owner).To(Equal(k.Spec.Owner))
			Expect(got.Status.Role).To(Equal(k.Spec.Role))
			Expect(got.Status.Scopes).To(Equal(k.Spec.Scopes))
			Expect(got.Status.ExpiresAt.Time).To(BeTemporally("==", expires.Time))
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
			Expect(condition(got, "Stalled").Status).To(BeEmpty())
			after, err := readSecret(ctx, ns, s.Name)
			Expect(err).NotTo(HaveOccurred())
			Expect(after.ResourceVersion).To(Equal(s.ResourceVersion), "the Secret is left as it was")

			By("a later change of the spec is judged like a new key's")
			patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) { s.Role = "admin" })
			_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
			Expect(err).NotTo(HaveOccurred())
			// The built-in policy allows any role: the change is granted,
			// as a new key's would be, and says so.
			Expect(getKey(ctx, k).Status.Role).To(Equal("admin"))
		})

		It("judges a spec widened just before the upgrade against the class: a role the class refuses is not granted, and the key verifies nothing until its spec fits", func() {
			ro := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{Roles: []keywardenv1alpha1.ClassRole{
				{Name: "standard", Scopes: []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"}},
			}})
			k := newAPIKey(ns, "widened")
			k.Spec.ClassName = ro.Name
			// Edited just before the upgrade: that release's verifier
			// answered admin from the spec.
			k.Spec.Role, k.Spec.Scopes = "admin", []keywardenv1alpha1.Scope{"users:admin"}
			k, _, raw, _ := beforeGrants(ctx, k)

			r := &APIKeyReconciler{Client: withOwnerIndex(k8sClient), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: seals}
			Eventually(func(g Gomega) {
				_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
				g.Expect(err).NotTo(HaveOccurred())
				got := getKey(ctx, k)
				g.Expect(got.Status.Owner).To(Equal(k.Spec.Owner))
				g.Expect(got.Status.Role).To(BeEmpty(), "the role the class refuses is not granted")
			}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
			got := getKey(ctx, k)
			Expect(got.Status.Scopes).To(BeEmpty())
			Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)), "the same key")
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionFalse))
			Expect(condition(got, "Stalled").Reason).To(Equal("RoleNotAllowed"))
			ix := verify.NewIndex()
			ix.Upsert(got)
			Expect(ix.Verify(verify.Request{Key: raw, AnyNamespace: true}, time.Now()).Code).To(Equal(verify.CodeNotActive))

			By("once the spec asks for what the class allows, the same key is granted it")
			patchSpec(got, func(s *keywardenv1alpha1.APIKeySpec) { s.Role, s.Scopes = "standard", nil })
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
			Expect(err).NotTo(HaveOccurred())
			got = getKey(ctx, k)
			Expect(got.Status.Role).To(Equal("standard"))
			Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)))
			Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
			ix.Upsert(got)
			res := ix.Verify(verify.Request{Key: raw, AnyNamespace: true}, time.Now())
			Expect(res.Valid).To(BeTrue())
			Expect(res.Role).To(Equal("standard"))
		})
	})
})

// beforeGrants creates the APIKey, its Secret and its status as a release
// that recorded no grants left them: no status.owner or status.role, no
// seal, status.scopes mirroring the spec, an expiry an hour after
// issuance. The suite's controller leaves the key alone.
func beforeGrants(ctx context.Context, k *keywardenv1alpha1.APIKey) (*keywardenv1alpha1.APIKey, *corev1.Secret, string, metav1.Time) {
	k.Labels = map[string]string{labelUnmanaged: "true"}
	k.Finalizers = []string{keywardenv1alpha1.Finalizer}
	Expect(k8sClient.Create(ctx, k)).To(Succeed())
	raw := newRawKey(keys.DefaultPrefix)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "keywarden", "keywarden.dev/apikey": k.Name, "keywarden.dev/apikey-uid": string(k.UID),
		}},
		Type: "keywarden.dev/api-key", Immutable: ptr.To(true), Data: map[string][]byte{"key": []byte(raw)},
	}
	Expect(controllerutil.SetControllerReference(k, s, scheme)).To(Succeed())
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	issuedAt := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	expires := metav1.NewTime(issuedAt.Add(time.Hour))
	base := k.DeepCopy()
	k.Status = keywardenv1alpha1.APIKeyStatus{
		Phase: keywardenv1alpha1.PhaseActive, KeyHash: keys.Hash(raw), KeyPrefix: raw[:8],
		SecretRef: &keywardenv1alpha1.SecretReference{Name: s.Name, UID: string(s.UID)},
		IssuedAt:  &issuedAt, ExpiresAt: &expires, Scopes: k.Spec.Scopes, ClassName: k.Spec.ClassName, ObservedGeneration: k.Generation,
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "KeyIssued", Message: "m",
			ObservedGeneration: k.Generation, LastTransitionTime: issuedAt}},
	}
	Expect(k8sClient.Status().Patch(ctx, k, client.MergeFrom(base))).To(Succeed())
	return k, s, raw, expires
}
