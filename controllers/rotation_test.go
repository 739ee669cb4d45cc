package controllers

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/pkg/verify"
)

// verifies answers whether the raw key verifies against what the API
// server holds of the key now (read through the direct client), and
// whether as a previous key.
func verifies(ctx context.Context, k *keywardenv1alpha1.APIKey, raw string) verify.Result {
	ix := verify.NewIndex()
	ix.Upsert(getKey(ctx, k))
	return ix.Verify(verify.Request{Key: raw, Namespaces: []string{k.Namespace}}, time.Now())
}

// secretValue reads the raw key of a Secret (noted for the leak check).
func secretValue(ctx context.Context, ns, name string) (string, *corev1.Secret) {
	s, err := readSecret(ctx, ns, name)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return string(s.Data[keywardenv1alpha1.SecretKeyField]), s
}

// waitRotated waits until the key has rotated away from the key it held,
// and returns it.
func waitRotated(ctx context.Context, before *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = getKey(ctx, before)
		g.Expect(got.Status.KeyHash).NotTo(Equal(before.Status.KeyHash))
		g.Expect(got.Status.Rotation.Next).To(BeNil())
	}).Should(Succeed())
	return got
}

func requestRotation(ctx context.Context, k *keywardenv1alpha1.APIKey, request string) {
	patch := []byte(`{"spec":{"rotation":{"request":"` + request + `"}}}`)
	ExpectWithOffset(1, k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

var _ = Describe("Rotation", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("writes a new key into the same Secret on request, the previous one valid for its grace, and only once a request", func() {
		k := newAPIKey(ns, "rotated")
		k.Spec.Rotation = &keywardenv1alpha1.Rotation{GracePeriod: &keywardenv1alpha1.Duration{Duration: time.Hour}, Request: "created"}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		issued := waitReady(ctx, k)
		Expect(issued.Status.Rotation.Request).To(Equal("created"), "the request a key is created with is handled at issuance")
		first, before := secretValue(ctx, ns, "rotated")

		requestRotation(ctx, k, "2026-12-01")
		got := waitRotated(ctx, issued)
		second, after := secretValue(ctx, ns, "rotated")
		Expect(after.UID).To(Equal(before.UID), "the Secret keeps its object")
		Expect(after.ResourceVersion).NotTo(Equal(before.ResourceVersion))
		Expect(keys.Hash(second)).To(Equal(got.Status.KeyHash))
		Expect(got.Status.SecretRef.UID).To(Equal(string(before.UID)))
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		Expect(got.Status.Rotation.Request).To(Equal("2026-12-01"))
		Expect(got.Status.Rotation.Previous).To(HaveLen(1))
		prev := got.Status.Rotation.Previous[0]
		Expect(prev.KeyHash).To(Equal(issued.Status.KeyHash))
		Expect(prev.KeyPrefix).To(Equal(issued.Status.KeyPrefix))
		Expect(prev.ValidUntil.Time).To(Equal(got.Status.Rotation.LastRotatedAt.Add(time.Hour)))

		res := verifies(ctx, k, first)
		Expect(res.Valid).To(BeTrue(), "the previous key in its grace: %s", res.Code)
		Expect(res.Previous).To(BeTrue())
		Expect(*res.ValidUntil).To(BeTemporally("==", prev.ValidUntil.Time))
		res = verifies(ctx, k, second)
		Expect(res.Valid).To(BeTrue(), "the new key: %s", res.Code)
		Expect(res.Previous).To(BeFalse())
		Eventually(eventReasons(ctx, got)).Should(ContainElement(keywardenv1alpha1.EventKeyRotated))

		By("applying the same request again")
		Expect(k8sClient.Patch(ctx, got, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"reapplied":"yes"}},"spec":{"rotation":{"request":"2026-12-01"}}}`)))).To(Succeed())
		Consistently(func() string { return getKey(ctx, k).Status.KeyHash }, 2*time.Second).Should(Equal(got.Status.KeyHash))
	})

	It("records the key's life in its status, where a forged Event never reaches", func() {
		k := newAPIKey(ns, "recorded")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		issued := waitReady(ctx, k)

		By("writing an Event about the key as if Keywarden had revoked it")
		forged := &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged"},
			EventTime:  metav1.NewMicroTime(time.Now()), ReportingController: "keywarden", ReportingInstance: "keywarden-controller",
			Action: "Revoke", Reason: keywardenv1alpha1.EventKeyRevoked, Type: corev1.EventTypeNormal,
			Note: "The key was revoked and its Secret deleted",
			Regarding: corev1.ObjectReference{APIVersion: keywardenv1alpha1.GroupVersion.String(), Kind: "APIKey",
				Namespace: ns, Name: k.Name, UID: issued.UID},
		}
		Expect(k8sClient.Create(ctx, forged)).To(Succeed())

		requestRotation(ctx, k, "r1")
		got := waitRotated(ctx, issued)
		var events []string
		for _, h := range got.Status.History {
			events = append(events, h.Event)
			Expect(h.At.Time).NotTo(BeZero())
		}
		Expect(events).To(Equal([]string{keywardenv1alpha1.EventKeyIssued, keywardenv1alpha1.EventKeyRotated}),
			"the history is the controller's transitions, none of the forged Event")
		Expect(got.Status.History[1].At.Time).To(Equal(got.Status.Rotation.LastRotatedAt.Time), "recorded with the rotation itself")
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
	})

	It("replaces an immutable Secret of an earlier release, keeping the key valid for its grace", func() {
		k := newAPIKey(ns, "legacy")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		issued := waitReady(ctx, k)
		first, s := secretValue(ctx, ns, "legacy")
		// As the previous release wrote it.
		s.Immutable = ptr.To(true)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())

		requestRotation(ctx, k, "r1")
		got := waitRotated(ctx, issued)
		second, after := secretValue(ctx, ns, "legacy")
		Expect(keys.Hash(second)).To(Equal(got.Status.KeyHash))
		Expect(after.Immutable).To(BeNil())
		Expect(got.Status.SecretRef.UID).To(Equal(string(after.UID)))
		Expect(verifies(ctx, k, first).Previous).To(BeTrue())
		Expect(verifies(ctx, k, second).Valid).To(BeTrue())
		Eventually(eventReasons(ctx, got)).Should(ContainElement(keywardenv1alpha1.EventSecretReplaced), "no word that running pods keep the previous key")

		By("a Secret no longer labelled as Keywarden's, which the admission policy would not let it update")
		delete(after.Labels, keywardenv1alpha1.LabelManagedBy)
		Expect(k8sClient.Update(ctx, after)).To(Succeed())
		requestRotation(ctx, k, "r2")
		waitRotated(ctx, got)
		third, relabelled := secretValue(ctx, ns, "legacy")
		Expect(relabelled.Labels).To(HaveKeyWithValue(keywardenv1alpha1.LabelManagedBy, keywardenv1alpha1.ManagedByValue))
		Expect(verifies(ctx, k, third).Valid).To(BeTrue())
		Expect(verifies(ctx, k, second).Previous).To(BeTrue())
	})

	It("keeps a key to the rules of the class it was granted under when its spec names a missing class, and after that class is deleted", func() {
		strict := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{Rotation: &keywardenv1alpha1.ClassRotation{
			MaxGracePeriod: &keywardenv1alpha1.Duration{Duration: time.Minute},
		}})
		k := newAPIKey(ns, "strict")
		k.Spec.ClassName = strict.Name
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		issued := waitReady(ctx, k)
		Expect(issued.Status.ClassRotation).To(Equal(strict.Spec.Rotation), "the class's rules are recorded with the grant")

		By("pointing the key at a class that does not exist and asking for a day's grace")
		patch := []byte(`{"spec":{"className":"no-such-class","rotation":{"gracePeriod":"24h","request":"r1"}}}`)
		Expect(k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
		got := waitRotated(ctx, issued)
		Expect(got.Status.ClassName).To(Equal(strict.Name), "the grant keeps its class")
		prev := got.Status.Rotation.Previous
		Expect(prev).To(HaveLen(1))
		Expect(prev[0].ValidUntil.Time).To(Equal(got.Status.Rotation.LastRotatedAt.Add(time.Minute)),
			"the rotated-out key is valid for the class's maximum, not the day the spec asks for")

		By("deleting the class")
		Expect(k8sClient.Delete(ctx, strict)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(strict), &keywardenv1alpha1.APIKeyClass{}))
		}).Should(BeTrue())
		requestRotation(ctx, k, "r2")
		again := waitRotated(ctx, got)
		Expect(again.Status.ClassRotation).To(Equal(strict.Spec.Rotation), "what was recorded stays")
		// The key this rotation replaced, among the previous ones.
		i := slices.IndexFunc(again.Status.Rotation.Previous, func(p keywardenv1alpha1.PreviousKey) bool { return p.KeyHash == got.Status.KeyHash })
		Expect(i).NotTo(Equal(-1))
		Expect(again.Status.Rotation.Previous[i].ValidUntil.Time).To(Equal(again.Status.Rotation.LastRotatedAt.Add(time.Minute)),
			"a deleted class's rules keep applying to the keys granted under it")
	})

	Context("driven pass by pass, with the manager killed at each write", func() {
		// failing returns a reconciler on the direct client whose status
		// writes and Secret writes fail while the flags say so.
		failing := func(status, secret *atomic.Bool) *APIKeyReconciler {
			c := interceptor.NewClient(k8sClient, interceptor.Funcs{
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
					if status.Load() {
						return errors.New("simulated crash at the status write")
					}
					return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					if _, ok := obj.(*corev1.Secret); ok && secret.Load() {
						return errors.New("simulated crash at the Secret write")
					}
					return c.Update(ctx, obj, opts...)
				},
			})
			return &APIKeyReconciler{Client: withOwnerIndex(c), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: seals}
		}
		once := func(r *APIKeyReconciler, k *keywardenv1alpha1.APIKey) error {
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
			return err
		}
		// whole checks what a crash may never leave: the Secret holds a
		// key that verifies, as the current key or the next one, never a
		// rotated-out one.
		whole := func(k *keywardenv1alpha1.APIKey) string {
			raw, _ := secretValue(ctx, ns, k.Name)
			res := verifies(ctx, k, raw)
			ExpectWithOffset(1, res.Valid).To(BeTrue(), "the Secret's key does not verify: %s", res.Code)
			ExpectWithOffset(1, res.Previous).To(BeFalse(), "the Secret holds a rotated-out key")
			return raw
		}

		It("withholds a refusal of the Secret write that quotes the key it replaces", func() {
			var quoting atomic.Value
			c := interceptor.NewClient(k8sClient, interceptor.Funcs{
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					if raw, ok := quoting.Load().(string); ok && raw != "" {
						if _, isSecret := obj.(*corev1.Secret); isSecret {
							return apierrors.NewForbidden(corev1.Resource("secrets"), obj.GetName(), errors.New("a webhook refuses the Secret holding "+raw))
						}
					}
					return c.Update(ctx, obj, opts...)
				},
			})
			r := &APIKeyReconciler{Client: withOwnerIndex(c), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: seals}
			k := newAPIKey(ns, "quoted")
			k.Labels = map[string]string{labelUnmanaged: "true"}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			for range 3 {
				Expect(once(r, k)).To(Succeed())
			}
			current, _ := secretValue(ctx, ns, "quoted")
			quoting.Store(current)
			requestRotation(ctx, k, "r1")
			Expect(once(r, k)).To(Succeed())
			err := once(r, k)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).NotTo(ContainSubstring(current))
			Expect(err.Error()).To(ContainSubstring("withheld"))
			got := getKey(ctx, k)
			Expect(condition(got, "Ready").Message).NotTo(ContainSubstring(current))
			Expect(condition(got, "Ready").Message).To(ContainSubstring("withheld"))
		})

		It("never leaves a Secret whose key does not verify, and completes without a second new key", func() {
			var failStatus, failSecret atomic.Bool
			r := failing(&failStatus, &failSecret)
			k := newAPIKey(ns, "crashy")
			k.Labels = map[string]string{labelUnmanaged: "true"}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			for range 3 {
				Expect(once(r, k)).To(Succeed())
			}
			Expect(getKey(ctx, k).Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			first := whole(k)
			requestRotation(ctx, k, "r1")

			By("a crash at the status write that would record the next key")
			failStatus.Store(true)
			Expect(once(r, k)).To(MatchError(ContainSubstring("simulated crash")))
			Expect(whole(k)).To(Equal(first))
			Expect(getKey(ctx, k).Status.Rotation).To(BeNil())

			By("the next key is recorded, and nothing is written into the Secret in that pass")
			failStatus.Store(false)
			Expect(once(r, k)).To(Succeed())
			next := getKey(ctx, k).Status.Rotation.Next
			Expect(next).NotTo(BeNil())
			Expect(whole(k)).To(Equal(first))

			By("a crash at the Secret write")
			failSecret.Store(true)
			Expect(once(r, k)).To(MatchError(ContainSubstring("simulated crash")))
			Expect(whole(k)).To(Equal(first))
			Expect(getKey(ctx, k).Status.Rotation.Next).To(Equal(next))

			By("a crash at the status write that completes the rotation, once the Secret is written")
			failSecret.Store(false)
			failStatus.Store(true)
			Expect(once(r, k)).To(MatchError(ContainSubstring("simulated crash")))
			second := whole(k)
			Expect(keys.Hash(second)).To(Equal(next.KeyHash), "the held next key, not another, is written")
			Expect(verifies(ctx, k, first).Valid).To(BeTrue(), "the current key while its successor is in the Secret")
			_, s := secretValue(ctx, ns, k.Name)

			By("the next pass completes it, with no other new key")
			failStatus.Store(false)
			Expect(once(r, k)).To(Succeed())
			done := getKey(ctx, k)
			Expect(done.Status.KeyHash).To(Equal(keys.Hash(second)))
			Expect(done.Status.Rotation.Next).To(BeNil())
			Expect(done.Status.Rotation.Previous).To(HaveLen(1))
			Expect(done.Status.Rotation.Previous[0].KeyHash).To(Equal(keys.Hash(first)))
			_, after := secretValue(ctx, ns, k.Name)
			Expect(after.ResourceVersion).To(Equal(s.ResourceVersion), "the Secret was written again")
			Expect(whole(k)).To(Equal(second))
			Expect(verifies(ctx, k, first).Previous).To(BeTrue())

			By("a restart between recording the next key and writing it")
			requestRotation(ctx, k, "r2")
			Expect(once(r, k)).To(Succeed())
			lost := getKey(ctx, k).Status.Rotation.Next
			Expect(lost).NotTo(BeNil())
			restarted := failing(&failStatus, &failSecret)
			Expect(once(restarted, k)).To(Succeed())
			again := getKey(ctx, k).Status.Rotation.Next
			Expect(again).NotTo(BeNil())
			Expect(again.KeyHash).NotTo(Equal(lost.KeyHash), "a next key whose value was lost is replaced")
			Expect(whole(k)).To(Equal(second))
			Expect(once(restarted, k)).To(Succeed())
			third := whole(k)
			Expect(keys.Hash(third)).To(Equal(again.KeyHash))
			Expect(getKey(ctx, k).Status.KeyHash).To(Equal(again.KeyHash))
		})
	})
})
