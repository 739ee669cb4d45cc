package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/seal"
)

var _ = Describe("APIKey controller", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("issues a key into a Secret and records only its hash and prefix", func() {
		k := newAPIKey(ns, "purge")
		k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 720 * time.Hour}
		k.Spec.SecretTemplate = &keywardenv1alpha1.SecretTemplate{
			Labels:      map[string]keywardenv1alpha1.LabelValue{"team": "web"},
			Annotations: map[string]string{"reloader.stakater.com/match": "true"},
		}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitReady(ctx, k)

		s, err := readSecret(ctx, ns, "purge")
		Expect(err).NotTo(HaveOccurred())
		raw := string(s.Data["key"])
		By("the Secret's shape")
		Expect(s.Type).To(Equal(corev1.SecretType("keywarden.dev/api-key")))
		Expect(s.Immutable).To(BeNil(), "a rotation writes the next key in place")
		Expect(s.Data).To(HaveLen(1))
		Expect(s.Labels).To(Equal(map[string]string{
			"app.kubernetes.io/managed-by": "keywarden",
			"keywarden.dev/apikey":         "purge",
			"keywarden.dev/apikey-uid":     string(got.UID),
			"team":                         "web",
		}))
		Expect(s.Annotations).To(HaveKeyWithValue("reloader.stakater.com/match", "true"))
		owner := metav1.GetControllerOf(s)
		Expect(owner.UID).To(Equal(got.UID))
		Expect(owner.Kind).To(Equal("APIKey"))
		Expect(owner.BlockOwnerDeletion).To(Equal(ptr.To(true)))

		By("the key and its status")
		_, err = keys.Parse(raw)
		Expect(err).NotTo(HaveOccurred(), "the key's checksum must be valid")
		Expect(raw).To(HavePrefix("kw_"))
		sum := sha256.Sum256([]byte(raw))
		Expect(got.Status.KeyHash).To(Equal("sha256:" + hex.EncodeToString(sum[:])))
		Expect(got.Status.KeyPrefix).To(Equal(raw[:8]))
		Expect(got.Status.SecretRef).To(Equal(&keywardenv1alpha1.SecretReference{Name: "purge", UID: string(s.UID), ResourceVersion: s.ResourceVersion}))
		Expect(got.Status.IssuedAt).NotTo(BeNil())
		Expect(got.Status.ExpiresAt.Time).To(BeTemporally("~", got.Status.IssuedAt.Add(720*time.Hour), time.Second))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(got.Finalizers).To(ContainElement("keywarden.dev/secret-cleanup"))
		Expect(condition(got, "Reconciling").Status).To(BeEmpty())
		Expect(condition(got, "Stalled").Status).To(BeEmpty())
		Expect(condition(got, "Ready").ObservedGeneration).To(Equal(got.Generation))

		By("kstatus sees the key as Current")
		Expect(kstatusOf(got)).To(Equal(status.CurrentStatus))

		Eventually(eventReasons(ctx, got)).Should(ContainElement("KeyIssued"))

		By("a value edited in place is replaced by a new key, as a replaced Secret is")
		Expect(got.Status.SecretRef.ResourceVersion).To(Equal(s.ResourceVersion))
		s.Data["key"] = []byte(newRawKey(keys.DefaultPrefix))
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		reissued := waitReissued(ctx, got)
		after, err := readSecret(ctx, ns, "purge")
		Expect(err).NotTo(HaveOccurred())
		Expect(after.UID).NotTo(Equal(s.UID))
		Expect(keys.Hash(string(after.Data["key"]))).To(Equal(reissued.Status.KeyHash))
		Expect(eventReasons(ctx, got)()).To(ContainElement(keywardenv1alpha1.EventSecretTampered))
	})

	It("names the Secret after spec.secretName", func() {
		k := newAPIKey(ns, "named")
		k.Spec.SecretName = "wp-api-key"
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitReady(ctx, k)
		s, err := readSecret(ctx, ns, "wp-api-key")
		Expect(err).NotTo(HaveOccurred())
		Expect(keys.Hash(string(s.Data["key"]))).To(Equal(got.Status.KeyHash))
		Expect(secretGone(ctx, ns, "named")()).To(Succeed())
	})

	It("leaves a foreign Secret of the same name untouched and stalls with SecretConflict", func() {
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken", Labels: map[string]string{"app": "other"}},
			StringData: map[string]string{"password": "hunter2"},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		k := newAPIKey(ns, "conflicted")
		k.Spec.SecretName = "taken"
		Expect(k8sClient.Create(ctx, k)).To(Succeed())

		got := waitStalled(ctx, k, "SecretConflict")
		Expect(condition(got, "Stalled").Message).To(ContainSubstring("Secret taken exists and is not owned by this APIKey"))
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionFalse))
		Expect(got.Status.KeyHash).To(BeEmpty())

		after := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(foreign.ResourceVersion))
		Expect(after.Data).To(Equal(map[string][]byte{"password": []byte("hunter2")}))
		Expect(after.OwnerReferences).To(BeEmpty())
		Eventually(eventReasons(ctx, k)).Should(ContainElement("SecretConflict"))

		By("deleting the APIKey leaves the foreign Secret too")
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &keywardenv1alpha1.APIKey{}))
		}, 20*time.Second).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(foreign.ResourceVersion))
	})

	It("stalls with SecretInvalid when the API server refuses the Secret", func() {
		k := newAPIKey(ns, "badmeta")
		k.Spec.SecretTemplate = &keywardenv1alpha1.SecretTemplate{Annotations: map[string]string{"not a key!": "x"}}
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		stalled := condition(waitStalled(ctx, k, "SecretInvalid"), "Stalled")
		Expect(stalled.Message).To(ContainSubstring("The API server refuses Secret badmeta"))
		Expect(stalled.Message).To(ContainSubstring("not a key!"))
		Expect(secretGone(ctx, ns, "badmeta")()).To(Succeed())
	})

	It("issues a new key into a new Secret when the Secret is deleted", func() {
		k := newAPIKey(ns, "lost")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		first := waitReady(ctx, k)
		old, err := readSecret(ctx, ns, "lost")
		Expect(err).NotTo(HaveOccurred())

		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		second := waitReissued(ctx, first)

		s, err := readSecret(ctx, ns, "lost")
		Expect(err).NotTo(HaveOccurred())
		Expect(s.UID).NotTo(Equal(old.UID))
		Expect(s.Data["key"]).NotTo(Equal(old.Data["key"]))
		Expect(keys.Hash(string(s.Data["key"]))).To(Equal(second.Status.KeyHash))
		Expect(second.Status.SecretRef.UID).To(Equal(string(s.UID)))
		Expect(second.Status.IssuedAt).To(Equal(first.Status.IssuedAt), "a reissued key keeps the APIKey's issuance time and expiry")
		Eventually(eventReasons(ctx, k)).Should(ContainElement("KeyReissued"))
	})

	It("puts back the labels someone stripped from a key's Secret, so that a later change in place is seen at once", func() {
		k := newAPIKey(ns, "stripped")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		first := waitReady(ctx, k)
		s, err := readSecret(ctx, ns, "stripped")
		Expect(err).NotTo(HaveOccurred())

		By("removing Keywarden's labels, which take the Secret out of the controller's cache")
		Expect(k8sClient.Patch(ctx, s, client.RawPatch(types.JSONPatchType,
			[]byte(`[{"op":"remove","path":"/metadata/labels"}]`)))).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := readSecret(ctx, ns, "stripped")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Labels).To(HaveKeyWithValue(keywardenv1alpha1.LabelManagedBy, keywardenv1alpha1.ManagedByValue))
			g.Expect(got.Labels).To(HaveKeyWithValue(keywardenv1alpha1.LabelAPIKeyUID, string(k.UID)))
			g.Expect(got.Data["key"]).To(Equal(s.Data["key"]), "the same key")
		}).Should(Succeed())
		Expect(getKey(ctx, k).Status.KeyHash).To(Equal(first.Status.KeyHash), "no new key for lost labels")

		By("changing its value in place")
		got, err := readSecret(ctx, ns, "stripped")
		Expect(err).NotTo(HaveOccurred())
		got.Data["key"] = []byte(newRawKey(keys.DefaultPrefix))
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		second := waitReissued(ctx, first)
		Expect(second.Status.KeyHash).NotTo(Equal(keys.Hash(string(got.Data["key"]))), "the planted value is not adopted")
	})

	It("expires keys at their moment, not at a later poll, and deletes their Secrets", func() {
		// Three keys a second apart. The controller wakes for each expiry
		// (RequeueAfter); one that looked every few seconds instead would
		// be late for some of them.
		var active []*keywardenv1alpha1.APIKey
		for i, lifetime := range []time.Duration{3 * time.Second, 4 * time.Second, 5 * time.Second} {
			k := newAPIKey(ns, fmt.Sprintf("short-%d", i))
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: lifetime}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			active = append(active, k)
		}
		for i, k := range active {
			active[i] = waitReady(ctx, k)
			_, err := readSecret(ctx, ns, k.Name)
			Expect(err).NotTo(HaveOccurred())
		}

		// Look at all of them every 20 ms, through the direct client, and
		// note when each is Expired with its Secret gone.
		expired := map[string]*keywardenv1alpha1.APIKey{}
		lags := map[string]time.Duration{}
		for deadline := time.Now().Add(15 * time.Second); len(expired) < len(active) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, k := range active {
				if expired[k.Name] != nil {
					continue
				}
				got := getKey(ctx, k)
				if got.Status.Phase == keywardenv1alpha1.PhaseExpired && secretGone(ctx, ns, k.Name)() == nil {
					expired[k.Name], lags[k.Name] = got, time.Since(k.Status.ExpiresAt.Time)
				}
			}
		}
		Expect(expired).To(HaveLen(len(active)), "not all keys expired within 15 s")
		GinkgoWriter.Printf("expired, with the Secret deleted, this long after expiresAt: %v\n", lags)
		for name, lag := range lags {
			Expect(lag).To(BeNumerically("<", 1500*time.Millisecond), "%s expired %s after its expiresAt", name, lag)
		}

		first, got := active[0], expired[active[0].Name]
		Expect(got.Status.ExpiresAt).To(Equal(first.Status.ExpiresAt))
		Expect(got.Status.KeyHash).To(Equal(first.Status.KeyHash), "the hash stays so that the verifier can answer EXPIRED")
		ready := condition(got, "Ready")
		Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		Expect(ready.Reason).To(Equal("Expired"))
		Expect(condition(got, "Reconciling").Status).To(BeEmpty())
		Expect(condition(got, "Stalled")).To(And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", "Expired")),
			"an expired key no longer does what it was declared for")
		Eventually(eventReasons(ctx, first)).Should(ContainElement("KeyExpired"))
	})

	It("never issues a key declared with an expiresAt already past, and says so until it is set later", func() {
		k := newAPIKey(ns, "stillborn")
		past := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
		k.Spec.ExpiresAt = &past
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		got := waitStalled(ctx, k, keywardenv1alpha1.ReasonExpiryInPast)
		Expect(condition(got, "Stalled").Message).To(Equal(fmt.Sprintf(
			"spec.expiresAt %s is in the past: set a later expiresAt, or a lifetime (such as 30d) instead", past.UTC().Format(time.RFC3339))))
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhasePending), "not a key that ended: one that never began")
		Expect(got.Status.KeyHash).To(BeEmpty())
		Expect(got.Status.ExpiresAt).To(BeNil())
		Consistently(secretGone(ctx, ns, "stillborn"), time.Second).Should(Succeed())

		got.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(24 * time.Hour)}
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		waitReady(ctx, k)
	})

	It("revokes a key irreversibly and deletes its Secret", func() {
		k := newAPIKey(ns, "leaked")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitReady(ctx, k)
		_, err := readSecret(ctx, ns, "leaked")
		Expect(err).NotTo(HaveOccurred())

		patch := client.MergeFrom(k.DeepCopy())
		k.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, k, patch)).To(Succeed())
		got := waitPhase(ctx, k, keywardenv1alpha1.PhaseRevoked, 20*time.Second)
		Expect(got.Status.RevokedAt).NotTo(BeNil())
		Expect(got.Status.Conditions).NotTo(ContainElement(HaveField("Type", "Ready")),
			"a revoked key holds no key to be ready with")
		Eventually(secretGone(ctx, ns, "leaked"), 10*time.Second).Should(Succeed())
		Eventually(eventReasons(ctx, k)).Should(ContainElement("KeyRevoked"))

		By("refusing to un-revoke")
		back := got.DeepCopy()
		back.Spec.Revoked = false
		err = k8sClient.Update(ctx, back)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.revoked: Invalid value: revocation is irreversible: revoked cannot be set back to false; create a new APIKey instead"))
	})

	It("deletes the Secret before the APIKey goes", func() {
		k := newAPIKey(ns, "doomed")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitReady(ctx, k)
		_, err := readSecret(ctx, ns, "doomed")
		Expect(err).NotTo(HaveOccurred())

		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &keywardenv1alpha1.APIKey{}))
		}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
		// envtest runs no garbage collector: the Secret is gone because the
		// finalizer deleted it, not through its ownerReference.
		Expect(secretGone(ctx, ns, "doomed")()).To(Succeed())
	})

	It("caches only Keywarden's Secrets, and of them only name, UID and owner", func() {
		k := newAPIKey(ns, "cached")
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitReady(ctx, k)
		_, err := readSecret(ctx, ns, "cached")
		Expect(err).NotTo(HaveOccurred())
		other := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"},
			Data:       map[string][]byte{"tls.crt": make([]byte, 100<<10)},
		}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())

		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
		Eventually(func(g Gomega) {
			g.Expect(mgrCache.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(mgrCache.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			names := []string{}
			for _, m := range list.Items {
				names = append(names, m.Name)
				g.Expect(m.Labels).To(BeEmpty())
				g.Expect(m.Annotations).To(BeEmpty())
				g.Expect(m.ManagedFields).To(BeEmpty())
				g.Expect(m.UID).NotTo(BeEmpty())
				g.Expect(metav1.GetControllerOf(&m)).To(HaveField("Name", "cached"))
			}
			g.Expect(names).To(Equal([]string{"cached"}))
		}, 500*time.Millisecond).Should(Succeed())
	})

	Context("driven pass by pass", func() {
		// These keys are outside the suite manager's cache; the test runs
		// a reconciler on a direct client, one pass at a time.
		// byHand returns a reconciler on the direct client, or on c.
		byHand := func(c client.WithWatch) *APIKeyReconciler {
			return &APIKeyReconciler{Client: withOwnerIndex(c), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: seals}
		}
		var r *APIKeyReconciler
		BeforeEach(func() { r = byHand(k8sClient) })
		unmanagedKey := func(name string) *keywardenv1alpha1.APIKey {
			k := newAPIKey(ns, name)
			k.Labels = map[string]string{labelUnmanaged: "true"}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			return k
		}
		reconcileOnce := func(r *APIKeyReconciler, k *keywardenv1alpha1.APIKey) (ctrl.Result, error) {
			return r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(k)})
		}

		It("counts a revocation once, by the pass that succeeds, not by one whose Secret delete failed", func() {
			k := unmanagedKey("counted")
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(getKey(ctx, k).Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			Expect(k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())

			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			Expect(err).NotTo(HaveOccurred())
			failing := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					if _, ok := obj.(*corev1.Secret); ok {
						return errors.New("simulated failure of the Secret's deletion")
					}
					return c.Delete(ctx, obj, opts...)
				},
			}))
			failing.Metrics = m
			for range 2 {
				_, err = reconcileOnce(failing, k)
				Expect(err).To(MatchError(ContainSubstring("simulated failure")))
			}
			revocations := func() float64 {
				return testutil.ToFloat64(m.byEvent[keywardenv1alpha1.EventKeyRevoked].WithLabelValues(ns, ""))
			}
			Expect(revocations()).To(BeZero(), "a failed pass was counted")
			Expect(getKey(ctx, k).Status.History).NotTo(ContainElement(HaveField("Event", keywardenv1alpha1.EventKeyRevoked)),
				"a failed pass wrote its transition into the history")
			r.Metrics = m
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			got := getKey(ctx, k)
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRevoked))
			Expect(revocations()).To(Equal(1.0))
			var revoked int
			for _, h := range got.Status.History {
				if h.Event == keywardenv1alpha1.EventKeyRevoked {
					revoked++
				}
			}
			Expect(revoked).To(Equal(1), "the revocation in the history once")
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(revocations()).To(Equal(1.0), "a later pass over the revoked key counted it again")
		})

		It("adopts the Secret written by a pass that crashed before recording the hash", func() {
			k := unmanagedKey("crashy")
			crashing := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
				SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
					return errors.New("simulated crash before the status write")
				},
			}))
			_, err := reconcileOnce(crashing, k)
			Expect(err).To(MatchError(ContainSubstring("simulated crash")))
			written, err := readSecret(ctx, ns, "crashy")
			Expect(err).NotTo(HaveOccurred())
			Expect(getKey(ctx, k).Status.KeyHash).To(BeEmpty())

			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			got := getKey(ctx, k)
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			Expect(got.Status.KeyHash).To(Equal(keys.Hash(string(written.Data["key"]))))
			Expect(got.Status.SecretRef.UID).To(Equal(string(written.UID)))
			after, err := readSecret(ctx, ns, "crashy")
			Expect(err).NotTo(HaveOccurred())
			Expect(after.ResourceVersion).To(Equal(written.ResourceVersion), "the Secret is adopted, never rewritten")
		})

		It("adopts only a Secret it sealed for this APIKey, whoever wrote the Secret object", func() {
			// A Secret restored by someone who could read the sealed one
			// (a backup) holds the same key with the same seal: that is
			// still the key Keywarden generated for this APIKey.
			k := unmanagedKey("restored")
			raw, err := keys.Generate(keys.DefaultPrefix)
			Expect(err).NotTo(HaveOccurred())
			rawKeys.add(raw)
			sealed, err := seals.Seal(ctx, k.UID, 0, keys.Hash(raw))
			Expect(err).NotTo(HaveOccurred())
			s := plantedSecret(k, raw)
			s.Annotations = map[string]string{"keywarden.dev/seal": sealed}
			Expect(k8sClient.Create(ctx, s)).To(Succeed())

			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			got := getKey(ctx, k)
			Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)))
			Expect(got.Status.SecretRef.UID).To(Equal(string(s.UID)))
			Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		})

		// A principal that may create Secrets in the namespace but not
		// read them plants a key of its choosing for someone else's
		// APIKey, dressed as Keywarden dresses its Secrets. None is ever
		// recorded: each is deleted and a key is generated.
		DescribeTable("never records a value it did not seal for this APIKey",
			func(plant func(k *keywardenv1alpha1.APIKey) *corev1.Secret) {
				k := unmanagedKey("planted-" + rand.String(5))
				planted := plant(k)
				planted.Name = k.Name
				Expect(k8sClient.Create(ctx, planted)).To(Succeed())
				plantedRaw := string(planted.Data["key"])

				rec := &recordingRecorder{}
				r.Recorder = rec
				_, err := reconcileOnce(r, k)
				Expect(err).NotTo(HaveOccurred())

				got := getKey(ctx, k)
				Expect(got.Status.KeyHash).NotTo(BeEmpty(), "a key is issued in the same pass")
				Expect(got.Status.KeyHash).NotTo(Equal(keys.Hash(plantedRaw)))
				Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
				s, err := readSecret(ctx, ns, k.Name)
				Expect(err).NotTo(HaveOccurred())
				Expect(s.UID).NotTo(Equal(planted.UID), "the planted Secret is deleted")
				Expect(keys.Hash(string(s.Data["key"]))).To(Equal(got.Status.KeyHash))
				Expect(rec.reasons()).To(ContainElement("SecretTampered"))
				Expect(rec.notes()).To(ContainElement(ContainSubstring("Secret " + k.Name + " holds a value that Keywarden did not seal")))
				if plantedRaw != "" {
					for _, note := range rec.notes() {
						Expect(keys.Quoted(note, plantedRaw)).To(BeFalse(), "an event quotes the planted value")
					}
				}
			},
			Entry("dressed like Keywarden's: labels, owner, type, immutable", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				return plantedSecret(k, newRawKey(keys.DefaultPrefix))
			}),
			Entry("without Keywarden's labels", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				s := plantedSecret(k, newRawKey(keys.DefaultPrefix))
				s.Labels = nil
				return s
			}),
			Entry("mutable", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				s := plantedSecret(k, newRawKey(keys.DefaultPrefix))
				s.Immutable = nil
				return s
			}),
			Entry("of another type", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				s := plantedSecret(k, newRawKey(keys.DefaultPrefix))
				s.Type = corev1.SecretTypeOpaque
				return s
			}),
			Entry("with the prefix of another class", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				return plantedSecret(k, newRawKey("pdm_"))
			}),
			Entry("with a seal made up under the sealing key's ID", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				raw := newRawKey(keys.DefaultPrefix)
				var sealing corev1.Secret
				Expect(k8sClient.Get(ctx, seals.Secret, &sealing)).To(Succeed())
				guess := map[string][]byte{}
				for id := range sealing.Data {
					guess[id] = bytes.Repeat([]byte{7}, 32)
				}
				forger, err := seal.NewKeyring(guess)
				Expect(err).NotTo(HaveOccurred())
				s := plantedSecret(k, raw)
				s.Annotations = map[string]string{"keywarden.dev/seal": forger.Seal(k.UID, 0, keys.Hash(raw))}
				return s
			}),
			Entry("holding no key", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				s := plantedSecret(k, "")
				s.Data = map[string][]byte{"password": []byte("hunter2")}
				return s
			}),
			Entry("a copy of another APIKey's Secret, sealed for that one", func(k *keywardenv1alpha1.APIKey) *corev1.Secret {
				other := unmanagedKey("other-" + rand.String(5))
				_, err := reconcileOnce(r, other)
				Expect(err).NotTo(HaveOccurred())
				theirs, err := readSecret(ctx, ns, other.Name)
				Expect(err).NotTo(HaveOccurred())
				Expect(theirs.Annotations).To(HaveKey("keywarden.dev/seal"))
				s := plantedSecret(k, string(theirs.Data["key"]))
				s.Annotations = theirs.Annotations
				return s
			}),
		)

		It("never adopts again the Secret of a key that was replaced, sealed as it is", func() {
			k := unmanagedKey("replayed")
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			first := getKey(ctx, k)
			kept, err := readSecret(ctx, ns, "replayed") // a copy, as in a backup
			Expect(err).NotTo(HaveOccurred())

			By("the Secret is lost, and the pass records that the key is gone")
			Expect(k8sClient.Delete(ctx, kept)).To(Succeed())
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			mid := getKey(ctx, k)
			Expect(mid.Status.KeyHash).To(BeEmpty())
			Expect(mid.Status.KeySerial).To(Equal(first.Status.KeySerial + 1))

			By("the old Secret is put back, seal and all, before the new key is written")
			back := kept.DeepCopy()
			back.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: kept.Name, Labels: kept.Labels,
				Annotations: kept.Annotations, OwnerReferences: kept.OwnerReferences}
			Expect(k8sClient.Create(ctx, back)).To(Succeed())
			rec := &recordingRecorder{}
			r.Recorder = rec
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			last := getKey(ctx, k)
			Expect(last.Status.KeyHash).NotTo(BeEmpty())
			Expect(last.Status.KeyHash).NotTo(Equal(first.Status.KeyHash), "the replaced key came back")
			Expect(rec.reasons()).To(ContainElement("SecretTampered"))
		})

		It("lets a foreign Secret stand and records nothing from it when it is replaced by a planted one", func() {
			// The reproduction of the attack: squat the name, read the
			// APIKey's UID from its stall, plant a Secret owned by it.
			squat := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squatted"},
				Data: map[string][]byte{"x": []byte("y")}}
			Expect(k8sClient.Create(ctx, squat)).To(Succeed())
			k := unmanagedKey("squatted")
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			stalled := getKey(ctx, k)
			Expect(condition(stalled, "Stalled").Reason).To(Equal("SecretConflict"))

			Expect(k8sClient.Delete(ctx, squat)).To(Succeed())
			chosen := newRawKey(keys.DefaultPrefix)
			Expect(k8sClient.Create(ctx, plantedSecret(stalled, chosen))).To(Succeed())
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			got := getKey(ctx, k)
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			Expect(got.Status.KeyHash).NotTo(Equal(keys.Hash(chosen)))
		})

		It("replaces a Secret whose value no longer matches the hash, in two recorded steps", func() {
			k := unmanagedKey("tampered")
			rec := &recordingRecorder{}
			r.Recorder = rec
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			first := getKey(ctx, k)
			Expect(first.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			orig, err := readSecret(ctx, ns, "tampered")
			Expect(err).NotTo(HaveOccurred())

			By("someone recreates the Secret with another value")
			Expect(k8sClient.Delete(ctx, orig)).To(Succeed())
			other, err := keys.Generate(keys.DefaultPrefix)
			Expect(err).NotTo(HaveOccurred())
			rawKeys.add(other)
			fake := orig.DeepCopy()
			fake.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: orig.Name, Labels: orig.Labels, OwnerReferences: orig.OwnerReferences}
			fake.Data = map[string][]byte{"key": []byte(other)}
			Expect(k8sClient.Create(ctx, fake)).To(Succeed())

			By("the first pass deletes it and forgets the old key")
			res, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(res.RequeueAfter).To(BeNumerically(">", 0))
			mid := getKey(ctx, k)
			Expect(mid.Status.KeyHash).To(BeEmpty())
			Expect(mid.Status.Phase).To(Equal(keywardenv1alpha1.PhasePending))
			Expect(condition(mid, "Reconciling").Reason).To(Equal("Reissuing"))
			Expect(secretGone(ctx, ns, "tampered")()).To(Succeed())
			Expect(rec.reasons()).To(ContainElement("SecretTampered"))

			By("the second pass issues a new key")
			_, err = reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			last := getKey(ctx, k)
			s, err := readSecret(ctx, ns, "tampered")
			Expect(err).NotTo(HaveOccurred())
			Expect(last.Status.KeyHash).To(Equal(keys.Hash(string(s.Data["key"]))))
			Expect(last.Status.KeyHash).NotTo(Equal(first.Status.KeyHash))
			Expect(last.Status.KeyHash).NotTo(Equal(keys.Hash(other)))
		})

		// An admission policy that refuses Secrets and quotes their data
		// in its message, as policy engines often quote the object they
		// refuse. The message must not carry the key into status, the
		// pass's error or its events.
		DescribeTable("never copies an API error that quotes the key",
			func(reason metav1.StatusReason) {
				echoSecrets(ctx, ns, reason, admissionv1.Create)
				k := unmanagedKey("echoed")
				var tried []string
				capturing := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
					Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
						if s, ok := obj.(*corev1.Secret); ok {
							tried = append(tried, string(s.Data["key"]))
							rawKeys.add(string(s.Data["key"]))
						}
						return c.Create(ctx, obj, opts...)
					},
				}))
				rec := &recordingRecorder{}
				capturing.Recorder = rec
				_, passErr := reconcileOnce(capturing, k)
				Expect(tried).To(HaveLen(1))
				raw := tried[0]
				Expect(secretGone(ctx, ns, "echoed")()).To(Succeed())

				got := getKey(ctx, k)
				Expect(got.Status.KeyHash).To(BeEmpty())
				status, err := json.Marshal(got.Status)
				Expect(err).NotTo(HaveOccurred())
				Expect(keys.Quoted(string(status), raw)).To(BeFalse(), "status quotes the key")
				ready := condition(got, "Ready")
				Expect(ready.Message).To(ContainSubstring("Secret echoed"))
				Expect(ready.Message).To(ContainSubstring("a message that quotes the key and is withheld"))
				if reason == metav1.StatusReasonInvalid {
					Expect(passErr).NotTo(HaveOccurred())
					Expect(condition(got, "Stalled").Reason).To(Equal("SecretInvalid"))
				} else {
					Expect(passErr).To(HaveOccurred())
					Expect(keys.Quoted(passErr.Error(), raw)).To(BeFalse(), "the pass's error quotes the key")
					Expect(passErr.Error()).To(ContainSubstring("403 Forbidden"))
				}
				for _, note := range rec.notes() {
					Expect(keys.Quoted(note, raw)).To(BeFalse(), "an event quotes the key")
				}
			},
			Entry("refused as invalid: the key stalls", metav1.StatusReasonInvalid),
			Entry("refused as forbidden: the pass fails and is retried", metav1.StatusReasonForbidden),
		)

		It("never copies an API error that quotes the key when deleting a Secret", func() {
			k := unmanagedKey("echoed-delete")
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			s, err := readSecret(ctx, ns, "echoed-delete")
			Expect(err).NotTo(HaveOccurred())
			raw := string(s.Data["key"])
			echoSecrets(ctx, ns, metav1.StatusReasonForbidden, admissionv1.Delete)

			got := getKey(ctx, k)
			patch := client.MergeFrom(got.DeepCopy())
			got.Spec.Revoked = true
			Expect(k8sClient.Patch(ctx, got, patch)).To(Succeed())
			rec := &recordingRecorder{}
			r.Recorder = rec
			_, passErr := reconcileOnce(r, k)
			Expect(passErr).To(HaveOccurred(), "the policy refuses the deletion")
			Expect(keys.Quoted(passErr.Error(), raw)).To(BeFalse(), "the pass's error quotes the key")
			Expect(passErr.Error()).To(ContainSubstring("deleting Secret echoed-delete: the API server answered 403 Forbidden"))
			status, err := json.Marshal(getKey(ctx, k).Status)
			Expect(err).NotTo(HaveOccurred())
			Expect(keys.Quoted(string(status), raw)).To(BeFalse(), "status quotes the key")
			for _, note := range rec.notes() {
				Expect(keys.Quoted(note, raw)).To(BeFalse(), "an event quotes the key")
			}
		})

		It("counts a key it has just issued against the owner's limit while the cache lags", func() {
			class := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{MaxActiveKeysPerOwner: ptr.To[int32](1)})
			older, newer := newAPIKey(ns, "older"), newAPIKey(ns, "newer")
			for _, k := range []*keywardenv1alpha1.APIKey{older, newer} {
				k.Labels = map[string]string{labelUnmanaged: "true"}
				k.Spec.ClassName = class.Name
				Expect(k8sClient.Create(ctx, k)).To(Succeed())
			}
			// The owner's keys as a lagging cache shows them: both pending.
			var view keywardenv1alpha1.APIKeyList
			Expect(k8sClient.List(ctx, &view, client.InNamespace(ns))).To(Succeed())
			Expect(view.Items).To(HaveLen(2))
			shown := view.DeepCopy()
			lagging := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if l, ok := list.(*keywardenv1alpha1.APIKeyList); ok {
						shown.DeepCopyInto(l)
						return nil
					}
					return c.List(ctx, list, opts...)
				},
			}))

			// The cache has not seen the older key yet: the newer one is
			// issued.
			shown.Items = slices.DeleteFunc(shown.Items, func(k keywardenv1alpha1.APIKey) bool { return k.Name == "older" })
			_, err := reconcileOnce(lagging, newer)
			Expect(err).NotTo(HaveOccurred())
			Expect(getKey(ctx, newer).Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))

			// Now it shows both keys, the newer one still pending: only
			// the reconciler's memory of what it issued keeps the older
			// one from being the owner's second active key.
			view.DeepCopyInto(shown)
			_, err = reconcileOnce(lagging, older)
			Expect(err).NotTo(HaveOccurred())
			got := getKey(ctx, older)
			Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRefused))
			Expect(got.Status.KeyHash).To(BeEmpty())
			Expect(apimeta.FindStatusCondition(got.Status.Conditions, keywardenv1alpha1.ConditionReconciling)).To(HaveField("Reason", keywardenv1alpha1.ReasonActiveKeyLimit))
		})

		It("looks past the cache for the Secret when a key expires, and never again after", func() {
			k := newAPIKey(ns, "expiring")
			k.Labels = map[string]string{labelUnmanaged: "true"}
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			_, err := reconcileOnce(r, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(getKey(ctx, k).Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			issued, err := readSecret(ctx, ns, "expiring")
			Expect(err).NotTo(HaveOccurred())

			// A cache that has not seen the Secret, and a count of what is
			// asked of the API server instead.
			var asked int
			blind := interceptor.NewClient(k8sClient, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if _, ok := obj.(*metav1.PartialObjectMetadata); ok {
						return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
					}
					return c.Get(ctx, key, obj, opts...)
				},
			})
			counting := interceptor.NewClient(k8sClient, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					asked++
					return c.Get(ctx, key, obj, opts...)
				},
			})
			later := &APIKeyReconciler{Client: withOwnerIndex(blind), APIReader: counting, Recorder: discardRecorder{}, Seals: seals,
				Clock: clocktesting.NewFakeClock(time.Now().Add(2 * time.Hour))}

			By("the pass that expires the key finds the Secret on the API server and deletes it")
			_, err = reconcileOnce(later, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(getKey(ctx, k).Status.Phase).To(Equal(keywardenv1alpha1.PhaseExpired))
			Expect(secretGone(ctx, ns, "expiring")()).To(Succeed())
			Expect(asked).To(Equal(1))

			By("later passes read only the cache")
			for range 3 {
				_, err = reconcileOnce(later, k)
				Expect(err).NotTo(HaveOccurred())
			}
			Expect(asked).To(Equal(1))

			By("a Secret of the key that the cache shows again is deleted")
			back := issued.DeepCopy()
			back.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: issued.Name, Labels: issued.Labels, OwnerReferences: issued.OwnerReferences}
			Expect(k8sClient.Create(ctx, back)).To(Succeed())
			later.Client = k8sClient
			_, err = reconcileOnce(later, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(secretGone(ctx, ns, "expiring")()).To(Succeed())
			Expect(asked).To(Equal(1))
			Expect(getKey(ctx, k).Status.Phase).To(Equal(keywardenv1alpha1.PhaseExpired))
		})

		It("writes status once per pass and not at all when nothing changed", func() {
			k := unmanagedKey("quiet")
			var writes int
			counting := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
				SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
					writes++
					return c.SubResource(sub).Patch(ctx, obj, p, opts...)
				},
			}))
			_, err := reconcileOnce(counting, k)
			Expect(err).NotTo(HaveOccurred())
			Expect(writes).To(Equal(1))
			_, err = readSecret(ctx, ns, "quiet")
			Expect(err).NotTo(HaveOccurred())
			for range 3 {
				_, err = reconcileOnce(counting, k)
				Expect(err).NotTo(HaveOccurred())
			}
			Expect(writes).To(Equal(1))
		})

		It("never replaces a Secret from a stale view of its APIKey: a leader paused through another's rotation", func() {
			k := unmanagedKey("paused")
			Eventually(func() keywardenv1alpha1.APIKeyPhase {
				_, err := reconcileOnce(r, k)
				Expect(err).NotTo(HaveOccurred())
				return getKey(ctx, k).Status.Phase
			}).Should(Equal(keywardenv1alpha1.PhaseActive))
			stale := getKey(ctx, k)

			By("another leader rotates the key meanwhile")
			Expect(k8sClient.Patch(ctx, stale.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"rotation":{"request":"r1"}}}`)))).To(Succeed())
			Eventually(func(g Gomega) {
				_, err := reconcileOnce(r, k)
				g.Expect(err).NotTo(HaveOccurred())
				got := getKey(ctx, k)
				g.Expect(got.Status.KeyHash).NotTo(Equal(stale.Status.KeyHash))
				g.Expect(got.Status.Rotation.Next).To(BeNil())
			}).Should(Succeed())
			rotated := getKey(ctx, k)
			raw, before := secretValue(ctx, ns, "paused")
			Expect(keys.Hash(raw)).To(Equal(rotated.Status.KeyHash))

			By("the paused leader wakes with the APIKey as it was before the rotation")
			paused := byHand(interceptor.NewClient(k8sClient, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if ak, ok := obj.(*keywardenv1alpha1.APIKey); ok && key == client.ObjectKeyFromObject(k) {
						stale.DeepCopyInto(ak)
						return nil
					}
					return c.Get(ctx, key, obj, opts...)
				},
			}))
			_, err := reconcileOnce(paused, k)
			Expect(err).To(MatchError(ContainSubstring("changed since this pass read it")))
			got, after := secretValue(ctx, ns, "paused")
			Expect(after.UID).To(Equal(before.UID), "the Secret was replaced")
			Expect(got).To(Equal(raw), "the rotated key was taken for a tampered one")
			Expect(getKey(ctx, k).Status.KeyHash).To(Equal(rotated.Status.KeyHash))
		})
	})
})

// echoSecrets makes the API server refuse every Secret created in the
// namespace with a key in its data, with a message that quotes the key,
// and waits until the policy is in force.
func echoSecrets(ctx context.Context, ns string, reason metav1.StatusReason, op admissionv1.OperationType) {
	object := "object"
	if op == admissionv1.Delete {
		object = "oldObject"
	}
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-" + strings.ToLower(string(op)) + "-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{op},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression:        "!has(" + object + ".data) || !('key' in " + object + ".data)",
				MessageExpression: "'refused a Secret with key=' + string(" + object + ".data['key'])",
				Reason:            &reason,
			}},
		},
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, policy)).To(Succeed())
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, binding)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(k8sClient.Delete(ctx, binding)).To(Succeed())
		Expect(k8sClient.Delete(ctx, policy)).To(Succeed())
	})
	EventuallyWithOffset(1, func() error {
		probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"},
			Data: map[string][]byte{"key": []byte("probe")}}
		err := k8sClient.Create(ctx, probe)
		if op == admissionv1.Delete && err == nil {
			err = k8sClient.Delete(ctx, probe)
		}
		if err == nil {
			_ = k8sClient.Delete(ctx, probe)
			return errors.New("the policy is not in force yet")
		}
		// Secret data reaches the policy in base64, as in JSON.
		if !strings.Contains(err.Error(), "refused a Secret with key=cHJvYmU=") {
			return err
		}
		return nil
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
}

// plantedSecret is a Secret holding raw, made the way Keywarden makes the
// Secret of k (labels, controller reference, type, immutable) but by
// someone else, without a seal.
func plantedSecret(k *keywardenv1alpha1.APIKey, raw string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "keywarden", "keywarden.dev/apikey": k.Name, "keywarden.dev/apikey-uid": string(k.UID),
		}},
		Type: "keywarden.dev/api-key", Immutable: ptr.To(true),
		Data: map[string][]byte{"key": []byte(raw)},
	}
	ExpectWithOffset(1, controllerutil.SetControllerReference(k, s, scheme)).To(Succeed())
	return s
}

// newRawKey generates a well-formed key, recorded for the leak check.
func newRawKey(prefix string) string {
	raw, err := keys.Generate(prefix)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	rawKeys.add(raw)
	return raw
}

// recordingRecorder keeps the reasons and notes of the events it is given.
type recordingRecorder struct {
	mu     sync.Mutex
	events [][2]string
}

func (r *recordingRecorder) Eventf(_ runtime.Object, _ runtime.Object, _, reason, _, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, [2]string{reason, fmt.Sprintf(note, args...)})
}

func (r *recordingRecorder) reasons() []string { return r.column(0) }
func (r *recordingRecorder) notes() []string   { return r.column(1) }

func (r *recordingRecorder) column(i int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e[i])
	}
	return out
}

// withOwnerIndex serves, on a client that reads the API server, the owner
// index that the manager's cache keeps (ownerIndex), by listing the
// namespace and keeping the keys that count against the owner.
func withOwnerIndex(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			keys, ok := list.(*keywardenv1alpha1.APIKeyList)
			if !ok || lo.FieldSelector == nil {
				return c.List(ctx, list, opts...)
			}
			owner, found := lo.FieldSelector.RequiresExactMatch(ownerIndex)
			if !found {
				return c.List(ctx, list, opts...)
			}
			if err := c.List(ctx, keys, client.InNamespace(lo.Namespace)); err != nil {
				return err
			}
			keys.Items = slices.DeleteFunc(keys.Items, func(k keywardenv1alpha1.APIKey) bool { return k.GrantedOwner() != owner })
			return nil
		},
	})
}

// discardRecorder drops events, for reconcilers driven by hand.
type discardRecorder struct{}

func (discardRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {
}
