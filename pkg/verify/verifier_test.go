package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/verifier"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/pkg/verify"
	"keywarden.dev/keywarden/test/harness"
	"keywarden.dev/keywarden/test/kit"
)

func itoa(i int) string { return strconv.Itoa(i) }

var httpClient = &http.Client{Timeout: 5 * time.Second}

func getStatus(u string) (int, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// gaugeValue reads a registered gauge by name.
func gaugeValue(reg *prometheus.Registry, name string) float64 {
	families, err := reg.Gather()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	Fail("no metric " + name)
	return 0
}

// trustedNamespace is the namespace of the running spec: the helpers below
// name it as the one whose keys they accept, unless the request names its
// own (the suite's verifier, like config/manager's, has no default).
var trustedNamespace string

// verifyKey calls POST /v1/keys/verify and returns the decoded answer.
func verifyKey(req map[string]any) map[string]any {
	if req["namespace"] == nil && req["namespaces"] == nil && req["class"] == nil && req["classes"] == nil {
		req["namespace"] = trustedNamespace
	}
	b, err := json.Marshal(req)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	resp, err := httpClient.Post(baseURL+"/v1/keys/verify", "application/json", bytes.NewReader(b))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	ExpectWithOffset(1, resp.StatusCode).To(Equal(http.StatusOK))
	var out map[string]any
	ExpectWithOffset(1, json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return out
}

func code(raw string) any { return verifyKey(map[string]any{"key": raw})["code"] }

// authz calls GET /v1/authz with the key as a bearer token.
func authz(raw string, q url.Values) *http.Response {
	if q.Get("namespace") == "" && q.Get("class") == "" {
		q = maps.Clone(q)
		if q == nil {
			q = url.Values{}
		}
		q.Set("namespace", trustedNamespace)
	}
	req, err := http.NewRequest("GET", baseURL+"/v1/authz?"+q.Encode(), nil)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := httpClient.Do(req)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	return resp
}

func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "v-" + rand.String(8)}}
	ExpectWithOffset(1, k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// issue creates an APIKey, waits until it is Ready and returns it with the
// raw key read from its Secret, as a workload would.
func issue(ctx context.Context, ns, name string, mutate func(*keywardenv1alpha1.APIKey)) (string, *keywardenv1alpha1.APIKey) {
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: "Checkout service", Owner: "payments@example.com", Role: "standard",
			Scopes: []keywardenv1alpha1.Scope{"orders:read", "orders:write"},
		},
	}
	if mutate != nil {
		mutate(k)
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, k)).To(Succeed())
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
		g.Expect(apimeta.IsStatusConditionTrue(k.Status.Conditions, "Ready")).To(BeTrue())
	}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
	s := &corev1.Secret{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: k.Status.SecretRef.Name}, s)).To(Succeed())
	return string(s.Data["key"]), k
}

var _ = Describe("The verifier", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		trustedNamespace = ns
	})

	It("answers valid with the key's owner, role, scopes and expiry", func() {
		raw, k := issue(ctx, ns, "checkout", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 24 * time.Hour}
		})
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())
		got := verifyKey(map[string]any{"key": raw, "scopes": []string{"orders:read"}, "role": "standard", "namespace": ns})
		Expect(got).To(Equal(map[string]any{
			"valid": true, "namespace": ns, "name": "checkout", "owner": "payments@example.com", "role": "standard",
			"scopes": []any{"orders:read", "orders:write"}, "keyPrefix": raw[:8],
			"expiresAt": k.Status.ExpiresAt.UTC().Format(time.RFC3339),
		}))
	})

	It("answers MALFORMED and NOT_FOUND without a key on record", func() {
		Expect(code("kw_definitely-not-a-key")).To(Equal("MALFORMED"))
		Expect(code("pdm_" + rand.String(49))).To(Equal("MALFORMED"))
		raw, k := issue(ctx, ns, "deleted", nil)
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() any { return code(raw) }, 10*time.Second, 20*time.Millisecond).Should(Equal("NOT_FOUND"))
	})

	It("rejects a key from the second it expires, by its own clock, before any reconcile", func() {
		raw, k := issue(ctx, ns, "clock", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
		})
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())
		clockSkew.Store(int64(time.Hour))
		defer clockSkew.Store(0)
		Expect(code(raw)).To(Equal("EXPIRED"))
		// The controller, on the real clock, still has the key Active.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
		Expect(k.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
	})

	It("rejects a key that expires while it runs within the second", func() {
		raw, k := issue(ctx, ns, "short", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 3 * time.Second}
		})
		expiresAt := k.Status.ExpiresAt.Time
		var lastValid, firstRejected time.Time
		var rejectedWith any
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			at := time.Now()
			got := verifyKey(map[string]any{"key": raw})
			if got["valid"] == true {
				lastValid = at
				continue
			}
			firstRejected, rejectedWith = time.Now(), got["code"]
			break
		}
		Expect(rejectedWith).To(Equal("EXPIRED"))
		Expect(lastValid).To(BeTemporally("<", expiresAt.Add(10*time.Millisecond)), "valid after its expiry")
		Expect(firstRejected.Sub(expiresAt)).To(BeNumerically("<", time.Second), "rejected too late")
		GinkgoWriter.Printf("expired at %s; last valid answer %s before, first rejection %s after\n",
			expiresAt.Format(time.RFC3339Nano), expiresAt.Sub(lastValid), firstRejected.Sub(expiresAt))
	})

	It("rejects a revoked key as soon as the cache sees the change", func() {
		raw, k := issue(ctx, ns, "leaked", nil)
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())
		patch := client.MergeFrom(k.DeepCopy())
		k.Spec.Revoked = true
		start := time.Now()
		Expect(k8sClient.Patch(ctx, k, patch)).To(Succeed())
		Eventually(func() any { return code(raw) }, time.Second, 5*time.Millisecond).Should(Equal("REVOKED"))
		GinkgoWriter.Printf("revocation seen by the verifier after %s\n", time.Since(start))
		Expect(authz(raw, nil).StatusCode).To(Equal(http.StatusUnauthorized))
	})

	It("answers NOT_ACTIVE for a key whose APIKey is being deleted", func() {
		raw, k := issue(ctx, ns, "held", func(k *keywardenv1alpha1.APIKey) {
			k.Finalizers = []string{"test.keywarden.dev/hold"}
		})
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())
		Expect(k8sClient.Delete(ctx, k)).To(Succeed())
		Eventually(func() any { return code(raw) }, 5*time.Second, 10*time.Millisecond).Should(Equal("NOT_ACTIVE"))
		Eventually(func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k); err != nil {
				return err
			}
			patch := client.MergeFromWithOptions(k.DeepCopy(), client.MergeFromWithOptimisticLock{})
			controllerutil.RemoveFinalizer(k, "test.keywarden.dev/hold")
			return k8sClient.Patch(ctx, k, patch)
		}).Should(Succeed())
	})

	It("refuses a key whose hash another APIKey records, for both, and says so on both", func() {
		raw, a := issue(ctx, ns, "genuine", nil)
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())

		// Someone who may write APIKey status copies the hash into an
		// APIKey of their own (Expired, so that the controller keeps it).
		b := &keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "impostor"},
			Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "impostor", Owner: "mallory@example.com", Role: "admin"},
		}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		base := b.DeepCopy()
		b.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseExpired, KeyHash: a.Status.KeyHash, KeyPrefix: a.Status.KeyPrefix}
		Expect(k8sClient.Status().Patch(ctx, b, client.MergeFrom(base))).To(Succeed())

		Eventually(func() any { return code(raw) }, 5*time.Second, 10*time.Millisecond).Should(Equal("CONFLICT"))
		Expect(authz(raw, nil).StatusCode).To(Equal(http.StatusUnauthorized))
		for _, k := range []*keywardenv1alpha1.APIKey{a, b} {
			Eventually(func(g Gomega) {
				var events eventsv1.EventList
				g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
				var notes []string
				for _, e := range events.Items {
					if e.Regarding.UID == k.UID && e.Reason == "KeyConflict" {
						notes = append(notes, e.Note)
					}
				}
				g.Expect(notes).NotTo(BeEmpty(), "no KeyConflict event on %s", k.Name)
				g.Expect(notes[0]).To(ContainSubstring(ns + "/genuine"))
				g.Expect(notes[0]).To(ContainSubstring(ns + "/impostor"))
				g.Expect(notes[0]).NotTo(ContainSubstring(raw))
			}, 10*time.Second).Should(Succeed())
		}

		By("deleting the impostor gives the key back to its APIKey")
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["name"] }, 10*time.Second, 10*time.Millisecond).Should(Equal("genuine"))
	})

	It("revokes a key reported as leaked at once, every generation, without a change of its spec, and nothing for an unknown key", func() {
		reportKey := func(raw string) {
			resp, err := httpClient.Post(baseURL+"/v1/keys/report", "application/json", strings.NewReader(`{"key":"`+raw+`"}`))
			Expect(err).NotTo(HaveOccurred())
			_ = resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
		}
		raw, k := issue(ctx, ns, "leaked", nil)
		bystander, _ := issue(ctx, ns, "bystander", nil)
		unknown, err := keys.Generate(keys.DefaultPrefix)
		Expect(err).NotTo(HaveOccurred())
		reportKey(unknown)

		start := time.Now()
		reportKey(raw)
		// The 202 means the revocation is stored: read at once, with no
		// wait, the API server has it.
		stored := &keywardenv1alpha1.APIKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), stored)).To(Succeed())
		Expect(stored.Status.Revocation).NotTo(BeNil(), "answered 202 before the revocation was stored")
		Eventually(func() any { return code(raw) }, time.Second, 5*time.Millisecond).Should(Equal("REVOKED"), "revoked within a second")
		GinkgoWriter.Printf("revoked %s after the report\n", time.Since(start))
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
			g.Expect(k.Status.Revocation).NotTo(BeNil())
			g.Expect(k.Status.Revocation.Reason).To(Equal(keywardenv1alpha1.ReasonKeyReported))
			g.Expect(k.Status.Revocation.Message).NotTo(ContainSubstring(raw))
			g.Expect(k.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRevoked))
			g.Expect(k.Spec.Revoked).To(BeFalse())
			g.Expect(apimeta.FindStatusCondition(k.Status.Conditions, "Ready").Message).To(ContainSubstring("KeyReported"))
		}, 10*time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
			found := false
			for _, e := range events.Items {
				found = found || e.Regarding.UID == k.UID && e.Reason == keywardenv1alpha1.EventKeyReported && !strings.Contains(e.Note, raw)
			}
			g.Expect(found).To(BeTrue(), "no KeyReported event")
		}, 10*time.Second).Should(Succeed())
		Expect(verifyKey(map[string]any{"key": bystander})["valid"]).To(BeTrue(), "a report revoked another key")

		By("applying the manifest again, revoked: false, does not bring it back")
		Expect(k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":false,"displayName":"re-applied"}}`)))).To(Succeed())
		Consistently(func() any { return code(raw) }, time.Second).Should(Equal("REVOKED"))
	})

	DescribeTable("reports a rotated-out key used after its grace, and revokes its APIKey where its class says so",
		func(revokeOnReuse bool) {
			class := &keywardenv1alpha1.APIKeyClass{
				ObjectMeta: metav1.ObjectMeta{Name: "reuse-" + rand.String(6)},
				Spec:       keywardenv1alpha1.APIKeyClassSpec{Rotation: &keywardenv1alpha1.ClassRotation{RevokeOnReuse: revokeOnReuse}},
			}
			Expect(k8sClient.Create(ctx, class)).To(Succeed())
			old, k := issue(ctx, ns, "rotated", func(k *keywardenv1alpha1.APIKey) {
				k.Spec.ClassName = class.Name
				k.Spec.Rotation = &keywardenv1alpha1.Rotation{GracePeriod: &keywardenv1alpha1.Duration{}}
			})
			before := k.Status.KeyHash
			patch := []byte(`{"spec":{"rotation":{"request":"now"}}}`)
			Expect(k8sClient.Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
				g.Expect(k.Status.KeyHash).NotTo(Equal(before))
				g.Expect(k.Status.Rotation.Next).To(BeNil())
			}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
			s := &corev1.Secret{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: k.Status.SecretRef.Name}, s)).To(Succeed())
			current := string(s.Data["key"])
			Eventually(func() any { return verifyKey(map[string]any{"key": current})["valid"] }).Should(BeTrue())

			Expect(code(old)).To(Equal("ROTATED"))
			for range 4 {
				if revokeOnReuse {
					// Revoked as soon as the first use is seen.
					Expect(code(old)).To(BeElementOf("ROTATED", "REVOKED"))
				} else {
					Expect(code(old)).To(Equal("ROTATED"))
				}
			}
			Eventually(func(g Gomega) {
				var events eventsv1.EventList
				g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
				var notes []string
				for _, e := range events.Items {
					if e.Regarding.UID == k.UID && e.Reason == keywardenv1alpha1.EventRotatedKeyUsed {
						notes = append(notes, e.Note)
					}
				}
				g.Expect(notes).To(HaveLen(1), "RotatedKeyUsed events for five uses in a minute")
				g.Expect(notes[0]).To(ContainSubstring(old[:8]))
				g.Expect(notes[0]).NotTo(ContainSubstring(old))
			}, 10*time.Second).Should(Succeed())
			if !revokeOnReuse {
				Consistently(func() any { return verifyKey(map[string]any{"key": current})["valid"] }, time.Second).Should(BeTrue())
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
				Expect(k.Status.Revocation).To(BeNil())
				return
			}
			Eventually(func() any { return code(current) }, 5*time.Second, 10*time.Millisecond).Should(Equal("REVOKED"))
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
				g.Expect(k.Status.Revocation).NotTo(BeNil())
				g.Expect(k.Status.Revocation.Reason).To(Equal(keywardenv1alpha1.ReasonRotatedKeyReused))
				g.Expect(k.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRevoked))
				g.Expect(k.Spec.Revoked).To(BeFalse(), "the manifest need not change")
			}, 10*time.Second).Should(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: s.Name}, &corev1.Secret{}))
			}, 10*time.Second).Should(BeTrue(), "the revoked key's Secret is deleted")

			By("a revocation in status cannot be taken back, nor dropped with the whole status")
			base := k.DeepCopy()
			k.Status.Revocation = nil
			err := k8sClient.Status().Patch(ctx, k, client.MergeFrom(base))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("a revocation recorded in status is irreversible"))
			err = k8sClient.Status().Patch(ctx, base, client.RawPatch(types.MergePatchType, []byte(`{"status":null}`)))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("a revocation recorded in status is irreversible"))
		},
		Entry("a class that revokes on reuse", true),
		Entry("a class that does not", false),
	)

	It("checks the required namespace, role and scopes", func() {
		raw, _ := issue(ctx, ns, "scoped", nil)
		Eventually(func() any { return verifyKey(map[string]any{"key": raw})["valid"] }).Should(BeTrue())
		Expect(verifyKey(map[string]any{"key": raw, "namespace": "elsewhere"})["code"]).To(Equal("WRONG_NAMESPACE"))
		Expect(verifyKey(map[string]any{"key": raw, "namespace": ns})["valid"]).To(BeTrue())
		Expect(verifyKey(map[string]any{"key": raw, "role": "admin"})["code"]).To(Equal("WRONG_ROLE"))
		Expect(verifyKey(map[string]any{"key": raw, "scopes": []string{"orders:read", "refunds:write"}})["code"]).To(Equal("INSUFFICIENT_SCOPE"))
		Expect(verifyKey(map[string]any{"key": raw, "scopes": []string{"orders:write"}})["valid"]).To(BeTrue())
	})

	It("serves forward authentication for reverse proxies", func() {
		raw, _ := issue(ctx, ns, "edge", nil)
		Eventually(func() int { return authz(raw, nil).StatusCode }).Should(Equal(http.StatusOK))
		resp := authz(raw, url.Values{"scope": {"orders:read"}, "namespace": {ns}})
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		Expect(resp.Header.Get("X-Keywarden-Owner")).To(Equal("payments@example.com"))
		Expect(resp.Header.Get("X-Keywarden-Role")).To(Equal("standard"))
		Expect(resp.Header.Get("X-Keywarden-Scopes")).To(Equal("orders:read,orders:write"))
		Expect(resp.Header.Get("X-Keywarden-Key")).To(Equal(ns + "/edge"))

		Expect(authz(raw, url.Values{"scope": {"admin:all"}}).StatusCode).To(Equal(http.StatusForbidden))
		Expect(authz(raw, url.Values{"role": {"admin"}}).StatusCode).To(Equal(http.StatusForbidden))
		Expect(authz(raw, url.Values{"namespace": {"elsewhere"}}).StatusCode).To(Equal(http.StatusForbidden))
		resp = authz("kw_wrong", nil)
		Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
		Expect(resp.Header.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
	})

	It("writes lastUsedAt at most once per interval for an opted-in key, and never for others", func() {
		tracked, tk := issue(ctx, ns, "tracked", func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true })
		untracked, uk := issue(ctx, ns, "untracked", nil)
		Eventually(func() any { return verifyKey(map[string]any{"key": tracked})["valid"] }).Should(BeTrue())

		start := time.Now()
		requests := 0
		for time.Since(start) < 3*lastUsedInterval {
			for _, raw := range []string{tracked, untracked} {
				Expect(authz(raw, nil).StatusCode).To(Equal(http.StatusOK))
				requests++
			}
		}
		elapsed := time.Since(start)
		writes := func(k client.Object) int64 {
			n, ok := lastUsedWrites.Load(types.NamespacedName{Namespace: k.GetNamespace(), Name: k.GetName()})
			if !ok {
				return 0
			}
			return n.(*atomic.Int64).Load()
		}
		Eventually(func() *metav1.Time {
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(tk), tk)
			return tk.Status.LastUsedAt
		}, 5*time.Second).ShouldNot(BeNil())
		// A write per elapsed interval, plus one for the interval in
		// progress when the loop started.
		limit := int64(elapsed/lastUsedInterval) + 2
		Expect(writes(tk)).To(And(BeNumerically(">=", 1), BeNumerically("<=", limit)))
		Expect(writes(uk)).To(BeZero())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(uk), uk)).To(Succeed())
		Expect(uk.Status.LastUsedAt).To(BeNil())
		GinkgoWriter.Printf("%d requests over %s: %d lastUsedAt writes for the tracked key, 0 for the other\n",
			requests, elapsed.Round(time.Millisecond), writes(tk))
	})

	It("answers 400 to a bad request over the real listener", func() {
		for body, want := range map[string]string{
			`not json`:                            "the body is not a JSON object",
			`{"key":"` + rand.String(9000) + `"}`: "the body is larger than 8 KiB",
			`{"scopes":["a"]}`:                    `"key" is required`,
			`{"key":"kw_x"}`:                      "say whose keys you accept",
		} {
			resp, err := httpClient.Post(baseURL+"/v1/keys/verify", "application/json", bytes.NewReader([]byte(body)))
			Expect(err).NotTo(HaveOccurred())
			var out map[string]string
			Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
			_ = resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusBadRequest))
			Expect(out).To(HaveKeyWithValue("error", ContainSubstring(want)))
		}
		req, err := http.NewRequest("GET", baseURL+"/v1/authz", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("X-API-Key", "kw_x")
		resp, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusBadRequest))
		Expect(string(body)).To(ContainSubstring("say whose keys you accept"))
	})

	It("accepts a key minted in another namespace only where that namespace is trusted", func() {
		// The attack: an editor of a sandbox namespace mints a key in the
		// CFO's name, with the admin role, through the real controller.
		sandbox := newNamespace(ctx)
		minted, _ := issue(ctx, sandbox, "cfo", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Owner, k.Spec.Role = "cfo@example.com", "admin"
		})
		Eventually(func() any { return verifyKey(map[string]any{"key": minted, "namespace": sandbox})["valid"] }).Should(BeTrue())
		// A service that trusts its own namespace refuses it, and says
		// nothing of whose it is.
		got := verifyKey(map[string]any{"key": minted, "namespace": ns})
		Expect(got).To(Equal(map[string]any{"valid": false, "code": "WRONG_NAMESPACE"}))
		resp := authz(minted, url.Values{"namespace": {ns}})
		Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
		Expect(resp.Header.Get("X-Keywarden-Owner")).To(BeEmpty())
		// A service that names both namespaces accepts it: its choice.
		Expect(verifyKey(map[string]any{"key": minted, "namespaces": []string{ns, sandbox}})["owner"]).To(Equal("cfo@example.com"))
	})

	It("flushes recorded use when it stops", func() {
		_, k := issue(ctx, ns, "flushed", func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true })
		usage := verify.NewUsageRecorder(k8sClient, time.Hour, logr.Discard())
		at := time.Now().Truncate(time.Second)
		usage.Record(ns, "flushed", at)
		stopCtx, stop := context.WithCancel(ctx)
		stopped := make(chan error)
		go func() { stopped <- usage.Start(stopCtx) }()
		stop()
		Eventually(stopped, 15*time.Second).Should(Receive(BeNil()))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
		Expect(k.Status.LastUsedAt).NotTo(BeNil())
		Expect(k.Status.LastUsedAt.Time).To(BeTemporally("==", at))
	})

	It("leaves a use unwritten when another replica's lastUsedAt covers it", func() {
		_, k := issue(ctx, ns, "shared", func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true })
		nn := client.ObjectKeyFromObject(k)
		// What each replica's cache shows, read here from the API server
		// so that no cache lag is in play.
		recorded := func(nn types.NamespacedName) time.Time {
			got := &keywardenv1alpha1.APIKey{}
			Expect(k8sClient.Get(ctx, nn, got)).To(Succeed())
			if got.Status.LastUsedAt == nil {
				return time.Time{}
			}
			return got.Status.LastUsedAt.Time
		}
		lastUsed := func() time.Time { return recorded(nn) }
		a := verify.NewUsageRecorder(k8sClient, time.Minute, logr.Discard())
		b := verify.NewUsageRecorder(k8sClient, time.Minute, logr.Discard())
		a.Recorded, b.Recorded = recorded, recorded
		at := time.Now().Truncate(time.Second)

		a.Record(ns, "shared", at)
		a.Flush(ctx)
		Expect(lastUsed()).To(BeTemporally("==", at))
		// Within half an interval of what A wrote: B leaves it.
		b.Record(ns, "shared", at.Add(20*time.Second))
		b.Flush(ctx)
		Expect(lastUsed()).To(BeTemporally("==", at))
		// Half an interval or more later: B writes.
		b.Record(ns, "shared", at.Add(30*time.Second))
		b.Flush(ctx)
		Expect(lastUsed()).To(BeTemporally("==", at.Add(30*time.Second)))
		// A's next flush, an interval after its last: its own use is
		// written unless B's covers it.
		a.Record(ns, "shared", at.Add(45*time.Second))
		a.Flush(ctx)
		Expect(lastUsed()).To(BeTemporally("==", at.Add(30*time.Second)))
		a.Record(ns, "shared", at.Add(time.Minute))
		a.Flush(ctx)
		Expect(lastUsed()).To(BeTemporally("==", at.Add(time.Minute)))
	})

	It("answers /readyz only once its index holds every APIKey that existed when it started", func() {
		// Keys as the controller leaves them once they expire (it keeps
		// those as they are): found, they answer EXPIRED; not indexed yet,
		// NOT_FOUND.
		const n = 300
		raws := make([]string, n)
		for i := range raws {
			raw, err := keys.Generate(keys.DefaultPrefix)
			Expect(err).NotTo(HaveOccurred())
			raws[i] = raw
			k := &keywardenv1alpha1.APIKey{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ready-" + itoa(i)},
				Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "d", Owner: "o@example.com", Role: "readonly"},
			}
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			base := k.DeepCopy()
			k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseExpired, KeyHash: keys.Hash(raw), Owner: "o@example.com", Role: "readonly"}
			Expect(k8sClient.Status().Patch(ctx, k, client.MergeFrom(base))).To(Succeed())
		}

		reg := prometheus.NewRegistry()
		replica, err := env.StartVerifier([]string{"--verifier-max-staleness=1m"}, verifier.Parts{Registerer: reg})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(replica.Stop()).To(Succeed()) }()

		// The server answers from the moment the manager starts, before
		// its caches sync: until the index holds every key, /readyz and
		// verification answer 503; no request ever hears NOT_FOUND for a
		// key that exists. Then every key is found.
		url := replica.URL
		notReady, early, notFound := 0, 0, 0
		Eventually(func() int {
			code, _ := getStatus(url + "/readyz")
			if code == http.StatusServiceUnavailable {
				notReady++
			}
			body, _ := json.Marshal(map[string]string{"key": raws[(notReady+early)%n], "namespace": ns})
			if resp, err := httpClient.Post(url+"/v1/keys/verify", "application/json", bytes.NewReader(body)); err == nil {
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				_ = resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusServiceUnavailable:
					early++
				case out["code"] == string(verify.CodeNotFound):
					notFound++
				}
			}
			return code
		}, 20*time.Second, time.Millisecond).Should(Equal(http.StatusOK))
		Expect(notReady).To(BeNumerically(">", 0),
			"/readyz never answered 503: the server did not answer before the index was complete, so this test saw nothing")
		Expect(early).To(BeNumerically(">", 0), "verification never answered 503 before the index was complete")
		Expect(notFound).To(BeZero(), "verification answered NOT_FOUND %d times for keys that exist", notFound)
		missing := 0
		for _, raw := range raws {
			body, _ := json.Marshal(map[string]string{"key": raw, "namespace": ns})
			resp, err := httpClient.Post(url+"/v1/keys/verify", "application/json", bytes.NewReader(body))
			Expect(err).NotTo(HaveOccurred())
			var out map[string]any
			Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
			_ = resp.Body.Close()
			if out["code"] == string(verify.CodeNotFound) {
				missing++
			}
		}
		Expect(missing).To(BeZero(), "%d of %d keys unknown to a verifier that said it was ready", missing, n)
		// Its watch runs: the index is current, and its staleness is
		// followed on the feed's resource version.
		Consistently(func() float64 {
			return gaugeValue(reg, "keywarden_verifier_index_staleness_seconds")
		}, 2*time.Second, 200*time.Millisecond).Should(BeZero())
		Expect(gaugeValue(reg, "keywarden_verifier_keys_indexed")).To(BeNumerically(">=", n))
		GinkgoWriter.Printf("/readyz answered 503 %d times, verification %d times, before 200\n", notReady, early)
	})

	It("runs under the verifier's own account, which reads no Secret, may not make a key valid, and reports only on APIKeys", func() {
		// The suite's verifier is built with env.As(kit.VerifierAccount):
		// what that account may not do, the verifier cannot do here.
		as, err := client.New(env.As(kit.VerifierAccount), client.Options{Scheme: k8sClient.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		_, k := issue(ctx, ns, "own-account", nil)
		Expect(as.List(ctx, &keywardenv1alpha1.APIKeyList{}, client.InNamespace(ns))).To(Succeed())
		err = as.Get(ctx, types.NamespacedName{Namespace: ns, Name: k.Name}, &corev1.Secret{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "reading a key's Secret: %v", err)
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"keyHash":"`+strings.Repeat("0", 64)+`"}}`))
		err = as.Status().Patch(ctx, k, patch)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "writing a key hash: %v", err)
		Expect(err.Error()).To(ContainSubstring("keywarden-verifier-status"), "refused by the admission policy, not by RBAC")
		// A revocation for a reused rotated-out key, of an APIKey that
		// has none.
		patch = client.RawPatch(types.MergePatchType, []byte(`{"status":{"revocation":{"reason":"RotatedKeyReused","message":"x","at":"2026-01-01T00:00:00Z"}}}`))
		err = as.Status().Patch(ctx, k, patch)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "revoking for reuse a key that never rotated: %v", err)

		// Events: about its APIKeys, as keywarden-verifier; nothing else.
		event := func(regarding corev1.ObjectReference, controller string) *eventsv1.Event {
			return &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "own-account-"},
				EventTime:  metav1.NewMicroTime(time.Now()), Type: corev1.EventTypeWarning, Reason: "Test", Action: "Verify",
				ReportingController: controller, ReportingInstance: "test", Regarding: regarding, Note: "a note",
			}
		}
		apiKey := corev1.ObjectReference{APIVersion: keywardenv1alpha1.GroupVersion.String(), Kind: keywardenv1alpha1.APIKeyKind,
			Namespace: ns, Name: k.Name, UID: k.UID}
		Expect(as.Create(ctx, event(apiKey, "keywarden-verifier"))).To(Succeed())
		for what, e := range map[string]*eventsv1.Event{
			"about a Pod":               event(corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: "web"}, "keywarden-verifier"),
			"in another's name":         event(apiKey, "kubelet"),
			"about another namespace's": event(corev1.ObjectReference{APIVersion: apiKey.APIVersion, Kind: apiKey.Kind, Namespace: "kube-system", Name: "x"}, "keywarden-verifier"),
		} {
			err := as.Create(ctx, e)
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "an event %s: %v", what, err)
			Expect(err.Error()).To(ContainSubstring("Keywarden's verifier reports only on APIKeys"), what)
		}
	})

	It("serves on a replica that is not the leader", func() {
		raw, _ := issue(ctx, ns, "follower", nil)
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keywarden-follower-test"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To("another-replica"),
				LeaseDurationSeconds: ptr.To[int32](3600),
				AcquireTime:          &metav1.MicroTime{Time: time.Now()},
				RenewTime:            &metav1.MicroTime{Time: time.Now()},
			},
		}
		Expect(k8sClient.Create(ctx, lease)).To(Succeed())
		// A Go service may embed the verifier in a manager of its own
		// that elects a leader: it serves on every replica all the same.
		follower, err := ctrl.NewManager(env.Config, ctrl.Options{
			Scheme:                  k8sClient.Scheme(),
			Metrics:                 metricsserver.Options{BindAddress: "0"},
			Cache:                   controllers.CacheOptions(),
			LeaderElection:          true,
			LeaderElectionID:        lease.Name,
			LeaderElectionNamespace: ns,
		})
		Expect(err).NotTo(HaveOccurred())
		port, err := harness.FreePort()
		Expect(err).NotTo(HaveOccurred())
		_, err = verifier.AddToManager(follower, verifier.Serving{Addr: "127.0.0.1:" + itoa(port), Registerer: prometheus.NewRegistry()})
		Expect(err).NotTo(HaveOccurred())
		fctx, stop := context.WithCancel(ctx)
		stopped := make(chan error)
		go func() { stopped <- follower.Start(fctx) }()
		defer func() {
			stop()
			Eventually(stopped, 30*time.Second).Should(Receive(BeNil()))
		}()

		url := "http://127.0.0.1:" + itoa(port)
		Eventually(func() (int, error) { return getStatus(url + "/readyz") }, 20*time.Second).Should(Equal(200))
		resp, err := httpClient.Post(url+"/v1/keys/verify", "application/json", bytes.NewReader([]byte(`{"key":"`+raw+`","namespace":"`+ns+`"}`)))
		Expect(err).NotTo(HaveOccurred())
		var out map[string]any
		Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
		_ = resp.Body.Close()
		Expect(out).To(HaveKeyWithValue("valid", true))
		Expect(follower.Elected()).NotTo(BeClosed(), "the lease is held by another replica")
	})
})
