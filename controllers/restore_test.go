package controllers

import (
	"context"
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/seal"
)

// Restoring keys as Velero restores them (its resetMetadata and
// restoreStatus): Secrets first, without owner references, UID or
// resourceVersion, with their labels and annotations; then the APIKeys,
// with their finalizers and without status; then each APIKey's status,
// written through the status subresource with the resourceVersion the
// create returned.
var _ = Describe("Restore from a backup", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	// restoreSecret re-creates a Secret from its backup, as Velero does.
	restoreSecret := func(backup *corev1.Secret) *corev1.Secret {
		labels := maps.Clone(backup.Labels)
		labels["velero.io/backup-name"], labels["velero.io/restore-name"] = "nightly", "nightly-1"
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: backup.Namespace, Name: backup.Name, Labels: labels, Annotations: backup.Annotations},
			Type:       backup.Type, Data: backup.Data,
		}
		ExpectWithOffset(1, k8sClient.Create(ctx, s)).To(Succeed())
		return s
	}
	// restoreKey re-creates an APIKey from its backup, its status written
	// after the create when withStatus.
	restoreKey := func(backup *keywardenv1alpha1.APIKey, withStatus bool) *keywardenv1alpha1.APIKey {
		k := &keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: backup.Namespace, Name: backup.Name, Labels: backup.Labels,
				Annotations: backup.Annotations, Finalizers: backup.Finalizers},
			Spec: backup.Spec,
		}
		ExpectWithOffset(1, k8sClient.Create(ctx, k)).To(Succeed())
		if withStatus {
			k.Status = backup.Status
			ExpectWithOffset(1, k8sClient.Status().Update(ctx, k)).To(Succeed())
		}
		return k
	}
	lose := func(k *keywardenv1alpha1.APIKey) {
		ExpectWithOffset(1, k8sClient.Delete(ctx, k)).To(Succeed())
		EventuallyWithOffset(1, func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), &keywardenv1alpha1.APIKey{}))
		}).Should(BeTrue())
		EventuallyWithOffset(1, secretGone(ctx, k.Namespace, k.SecretName())).Should(Succeed())
	}
	// issuedThenLost issues a key of that name, backs up its value, its
	// Secret and the APIKey with its status, then loses both.
	issuedThenLost := func(name string) (raw string, secretBackup *corev1.Secret, keyBackup *keywardenv1alpha1.APIKey) {
		GinkgoHelper()
		k := newAPIKey(ns, name)
		Expect(k8sClient.Create(ctx, k)).To(Succeed())
		waitReady(ctx, k)
		raw, secretBackup = secretValue(ctx, ns, name)
		keyBackup = getKey(ctx, k)
		lose(k)
		return raw, secretBackup, keyBackup
	}

	It("brings a key back with its old value, adopting its Secret, when the status is restored", func() {
		raw, secretBackup, keyBackup := issuedThenLost("restored")

		restoreSecret(secretBackup)
		restored := restoreKey(keyBackup, true)
		Expect(restored.UID).NotTo(Equal(keyBackup.UID))

		Eventually(func(g Gomega) {
			s, err := readSecret(ctx, ns, "restored")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(s)).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(s).UID).To(Equal(restored.UID), "the Secret is the restored APIKey's")
			g.Expect(s.Data["key"]).To(Equal([]byte(raw)), "the key is unchanged")
			g.Expect(s.Labels).To(HaveKeyWithValue(keywardenv1alpha1.LabelAPIKeyUID, string(restored.UID)))
			got := getKey(ctx, restored)
			g.Expect(got.Status.SecretRef.UID).To(Equal(string(s.UID)))
			g.Expect(got.Status.SecretRef.ResourceVersion).NotTo(BeEmpty())
		}, 20*time.Second).Should(Succeed())
		got := getKey(ctx, restored)
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)), "no new key")
		Expect(got.Status.KeySerial).To(Equal(keyBackup.Status.KeySerial))
		Expect(got.Status.Role).To(Equal(keyBackup.Status.Role), "the grant as it was")
		Expect(condition(got, "Ready").Status).To(Equal(metav1.ConditionTrue))
		res := verifies(ctx, got, raw)
		Expect(res.Valid).To(BeTrue(), "the old value verifies: %s", res.Code)
		Eventually(eventReasons(ctx, got)).Should(ContainElement(keywardenv1alpha1.EventSecretAdopted))
		Consistently(func() string { return getKey(ctx, restored).Status.KeyHash }, 2*time.Second).Should(Equal(keys.Hash(raw)))
	})

	It("brings a key back with its old value when Keywarden's namespace, and its sealing key, were lost too", func() {
		raw, secretBackup, keyBackup := issuedThenLost("unsealed")

		// A new install: a new namespace whose sealing key is created
		// anew on first use; the backup's seals were made with the lost one.
		newInstall := newNamespace(ctx)
		store := &seal.Store{Client: k8sClient, Secret: types.NamespacedName{Namespace: newInstall, Name: "keywarden-sealing-key"}}
		restoreSecret(secretBackup)
		keyBackup.Labels = map[string]string{labelUnmanaged: "true"}
		restored := restoreKey(keyBackup, true)
		r := &APIKeyReconciler{Client: withOwnerIndex(k8sClient), APIReader: k8sClient, Recorder: discardRecorder{}, Clock: clock.RealClock{}, Seals: store}
		Eventually(func(g Gomega) {
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(restored)})
			g.Expect(err).NotTo(HaveOccurred())
			s, err := readSecret(ctx, ns, "unsealed")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(s)).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(s).UID).To(Equal(restored.UID))
			g.Expect(s.Data["key"]).To(Equal([]byte(raw)))
			sealed, err := store.Verify(ctx, restored.UID, keyBackup.Status.KeySerial, keys.Hash(raw), s.Annotations[seal.Annotation])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sealed).To(BeTrue(), "sealed again under the new install's key")
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
		got := getKey(ctx, restored)
		Expect(got.Status.KeyHash).To(Equal(keys.Hash(raw)), "no new key")
		Expect(verifies(ctx, got, raw).Valid).To(BeTrue())
	})

	It("adopts the Secret once the status is written back, after the key stalled without it (kubectl apply, then replace --subresource=status)", func() {
		raw, secretBackup, keyBackup := issuedThenLost("late")

		restoreSecret(secretBackup)
		restored := restoreKey(keyBackup, false)
		stalled := waitStalled(ctx, restored, keywardenv1alpha1.ReasonSecretConflict)
		stalled.Status = keyBackup.Status
		Expect(k8sClient.Status().Update(ctx, stalled)).To(Succeed())
		// The status written back already says Active: wait for the
		// controller's pass over it, which adopts the Secret.
		Eventually(func(g Gomega) {
			s, err := readSecret(ctx, ns, "late")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(s)).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(s).UID).To(Equal(restored.UID))
			got := getKey(ctx, restored)
			g.Expect(got.Status.SecretRef.UID).To(Equal(string(s.UID)))
			g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
			g.Expect(condition(got, "Stalled").Status).To(BeEmpty())
			g.Expect(verifies(ctx, got, raw).Valid).To(BeTrue())
		}, 20*time.Second).Should(Succeed())
	})

	It("adopts nothing for an APIKey created over a Secret without its status: a planted key stays out", func() {
		_, secretBackup, keyBackup := issuedThenLost("planted")

		// A namespace user (no status rights) re-creates the APIKey by
		// name over a Secret holding a key of their own.
		planted := secretBackup.DeepCopy()
		mine := newRawKey(keys.DefaultPrefix)
		planted.Data = map[string][]byte{"key": []byte(mine)}
		restoreSecret(planted)
		again := restoreKey(keyBackup, false)

		got := waitStalled(ctx, again, keywardenv1alpha1.ReasonSecretConflict)
		Expect(got.Status.KeyHash).To(BeEmpty(), "nothing recorded from the planted Secret")
		s, err := readSecret(ctx, ns, "planted")
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(s)).To(BeNil(), "the planted Secret is not adopted")
		Expect(s.Data["key"]).To(Equal([]byte(mine)), "and left as it was")
		Expect(verifies(ctx, got, mine).Valid).To(BeFalse())
	})

	It("issues a new key into a Secret restored without its status once the wait for it is over, with a warning and a metric", func() {
		raw, secretBackup, keyBackup := issuedThenLost("statusless")

		// Restored by a backup without status, and driven by hand (the
		// suite's controller leaves it alone) on a clock that can move.
		restoreSecret(secretBackup)
		keyBackup.Labels = map[string]string{labelUnmanaged: "true"}
		restored := restoreKey(keyBackup, false)
		clk := clocktesting.NewFakeClock(restored.CreationTimestamp.Add(time.Minute))
		rec := &recordingRecorder{}
		m, err := NewMetrics(prometheus.NewRegistry())
		Expect(err).NotTo(HaveOccurred())
		r := &APIKeyReconciler{Client: withOwnerIndex(k8sClient), APIReader: k8sClient, Recorder: rec, Clock: clk, Seals: seals, Metrics: m}
		pass := func() {
			GinkgoHelper()
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(restored)})
			Expect(err).NotTo(HaveOccurred())
		}

		By("within the wait, it stalls and says until when the status may come back")
		pass()
		got := getKey(ctx, restored)
		Expect(condition(got, "Stalled").Reason).To(Equal(keywardenv1alpha1.ReasonSecretConflict))
		Expect(condition(got, "Stalled").Message).To(ContainSubstring("replace --subresource=status"))
		s, err := readSecret(ctx, ns, "statusless")
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Data["key"]).To(Equal([]byte(raw)), "the restored Secret is left as it is meanwhile")

		By("past it, a new key is issued into the Secret, loudly")
		clk.SetTime(restored.CreationTimestamp.Add(lifecycle.RestoreReissueAfter + time.Second))
		pass()
		got = getKey(ctx, restored)
		Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		Expect(got.Status.KeyHash).NotTo(BeEmpty())
		Expect(got.Status.KeyHash).NotTo(Equal(keys.Hash(raw)), "the old value is never adopted without its status")
		fresh, s := secretValue(ctx, ns, "statusless")
		Expect(metav1.GetControllerOf(s).UID).To(Equal(restored.UID))
		Expect(verifies(ctx, got, fresh).Valid).To(BeTrue())
		Expect(verifies(ctx, got, raw).Valid).To(BeFalse())
		Expect(rec.reasons()).To(ContainElement(keywardenv1alpha1.EventKeyReissuedAfterRestore))
		Expect(rec.reasons()).NotTo(ContainElement(keywardenv1alpha1.EventSecretTampered))
		Expect(testutil.ToFloat64(m.byEvent[keywardenv1alpha1.EventKeyReissuedAfterRestore].WithLabelValues(ns, ""))).To(Equal(1.0))
		Expect(got.Status.History).To(ContainElement(HaveField("Event", keywardenv1alpha1.EventKeyReissuedAfterRestore)))
	})
})
