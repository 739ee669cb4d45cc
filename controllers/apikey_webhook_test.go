package controllers

import (
	"context"
	"fmt"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var _ = Describe("The validating webhook, through the API server", func() {
	var (
		ctx context.Context
		ns  string
		c   *keywardenv1alpha1.APIKeyClass
	)
	BeforeEach(func() {
		ctx = context.Background()
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "w-" + rand.String(8), Labels: map[string]string{labelWebhook: "true"}}}
		Expect(k8sClient.Create(ctx, n)).To(Succeed())
		ns = n.Name
		c = newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles:                 []keywardenv1alpha1.ClassRole{{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read"}}},
			MaxLifetime:           &keywardenv1alpha1.Duration{Duration: 720 * time.Hour},
			MaxActiveKeysPerOwner: ptr.To[int32](2),
		})
		// The webhook reads classes from the manager's cache: wait until
		// it holds this one, or a create right after may be told the class
		// does not exist.
		Eventually(func() error {
			return mgrCache.Get(ctx, client.ObjectKeyFromObject(c), &keywardenv1alpha1.APIKeyClass{})
		}).Should(Succeed())
	})
	key := func(name string, mutate func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
		k := newAPIKey(ns, name)
		k.Spec.ClassName, k.Spec.Role, k.Spec.Scopes = c.Name, "readonly", []keywardenv1alpha1.Scope{"logs:read"}
		if mutate != nil {
			mutate(k)
		}
		return k
	}
	denied := func(err error, message string) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`admission webhook "vapikey.keywarden.dev" denied the request: ` + message))
	}

	It("admits a key of a class just created, which the cache may not hold yet", func() {
		fresh := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			Roles: []keywardenv1alpha1.ClassRole{{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read"}}},
		})
		k := key("fresh", func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName = fresh.Name })
		// A cache that has not seen the class yet (the same kubectl apply
		// created both).
		lagging := interceptor.NewClient(withOwnerIndex(k8sClient), interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if _, ok := list.(*keywardenv1alpha1.APIKeyClassList); ok {
					return nil
				}
				return c.List(ctx, list, opts...)
			},
		})
		v := &APIKeyValidator{Client: lagging}
		_, err := v.ValidateCreate(ctx, k)
		Expect(err).To(MatchError(ContainSubstring("does not exist")), "the cache alone takes the class for missing")
		v.APIReader = k8sClient
		_, err = v.ValidateCreate(ctx, k)
		Expect(err).NotTo(HaveOccurred(), "the class is read from the API server before the key is refused")
		k.Spec.ClassName = "c-missing-" + rand.String(6)
		_, err = v.ValidateCreate(ctx, k)
		Expect(err).To(MatchError(ContainSubstring("does not exist")), "a class that does not exist is still refused")
	})

	It("refuses at create what the class does not allow", func() {
		denied(k8sClient.Create(ctx, key("admin", func(k *keywardenv1alpha1.APIKey) { k.Spec.Role = "admin"; k.Spec.Scopes = nil })),
			fmt.Sprintf(`role "admin" is not allowed by APIKeyClass %q; allowed roles: readonly`, c.Name))
		denied(k8sClient.Create(ctx, key("greedy", func(k *keywardenv1alpha1.APIKey) { k.Spec.Scopes = append(k.Spec.Scopes, "logs:delete") })),
			fmt.Sprintf(`scope "logs:delete" is not allowed for role "readonly" by APIKeyClass %q; it allows logs:read`, c.Name))
		denied(k8sClient.Create(ctx, key("forever", func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 8760 * time.Hour}
		})),
			fmt.Sprintf(`lifetime 8760h0m0s exceeds the maximum of 720h0m0s set by APIKeyClass %q`, c.Name))
		past := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
		denied(k8sClient.Create(ctx, key("late", func(k *keywardenv1alpha1.APIKey) { k.Spec.ExpiresAt = &past })),
			fmt.Sprintf(`spec.expiresAt %s is in the past: set a later expiresAt, or a lifetime (such as 30d) instead`, past.UTC().Format(time.RFC3339)))
		// The classes the suite's other specs made are named too: the
		// message's words are policy's table test's.
		err := k8sClient.Create(ctx, key("lost", func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName = "no-such-class" }))
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(And(
			HavePrefix(`admission webhook "vapikey.keywarden.dev" denied the request: APIKeyClass "no-such-class" does not exist (`),
			HaveSuffix(`); the key is issued once it does`)))
		var list keywardenv1alpha1.APIKeyList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(BeEmpty(), "nothing is left behind")
	})

	It("refuses at create a key of a class that does not admit the namespace", func() {
		scoped := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"keywarden.dev/team": "payments"}},
		})
		want := fmt.Sprintf(`admission webhook "vapikey.keywarden.dev" denied the request: APIKeyClass %q admits the keys of namespaces labelled keywarden.dev/team=payments; namespace %q is not: label it, or use another class`, scoped.Name, ns)
		Eventually(func() error {
			return k8sClient.Create(ctx, key("elsewhere", func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName = scoped.Name }))
		}).Should(MatchError(want))
	})

	It("refuses a key over the owner's limit, but never a revocation", func() {
		first, second := key("one", nil), key("two", nil)
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		waitReady(ctx, first)
		waitReady(ctx, second)
		Eventually(func() error { return k8sClient.Create(ctx, key("three", nil)) }).Should(MatchError(
			`admission webhook "vapikey.keywarden.dev" denied the request: owner web-team@example.com already holds 2 active keys (limit 2) in namespace ` + ns + `; revoke or delete one of them first`))

		By("changing a key's role to one the class does not allow")
		bad := getKey(ctx, first)
		bad.Spec.Role = "admin"
		denied(k8sClient.Update(ctx, bad), fmt.Sprintf(`role "admin" is not allowed by APIKeyClass %q; allowed roles: readonly`, c.Name))

		By("revoking, which is always allowed")
		patch := client.MergeFrom(first.DeepCopy())
		first.Spec.Revoked = true
		Expect(k8sClient.Patch(ctx, first, patch)).To(Succeed())
		waitPhase(ctx, first, keywardenv1alpha1.PhaseRevoked, 10*time.Second)
		Eventually(func() error { return k8sClient.Create(ctx, key("three", nil)) }).Should(Succeed())
	})

	It("refuses at create a key over a limit counted in every namespace", func() {
		across := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{
			MaxActiveKeysPerOwner: ptr.To[int32](1), OwnerLimitScope: keywardenv1alpha1.OwnerLimitCluster,
		})
		Eventually(func() error {
			return mgrCache.Get(ctx, client.ObjectKeyFromObject(across), &keywardenv1alpha1.APIKeyClass{})
		}).Should(Succeed())
		other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "w-" + rand.String(8), Labels: map[string]string{labelWebhook: "true"}}}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		first := newAPIKey(ns, "first")
		first.Spec.ClassName = across.Name
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		waitReady(ctx, first)
		second := newAPIKey(other.Name, "second")
		second.Spec.ClassName = across.Name
		Eventually(func() error { return k8sClient.Create(ctx, second.DeepCopy()) }).Should(MatchError(
			`admission webhook "vapikey.keywarden.dev" denied the request: owner web-team@example.com already holds 1 active keys of APIKeyClass "` + across.Name +
				`" (limit 1, counted in every namespace); revoke or delete one of them first`))
	})

	It("refuses a change of an issued key with the controller's message", func() {
		mine := key("mine", func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "me@example.com" })
		Expect(k8sClient.Create(ctx, mine)).To(Succeed())
		waitReady(ctx, mine)
		theirs := []*keywardenv1alpha1.APIKey{key("theirs-1", nil), key("theirs-2", nil)}
		for _, k := range theirs {
			Expect(k8sClient.Create(ctx, k)).To(Succeed())
			waitReady(ctx, k)
		}

		By("a reassignment to an owner without room")
		moved := getKey(ctx, mine)
		moved.Spec.Owner = "web-team@example.com"
		want := "owner web-team@example.com already holds 2 active keys (limit 2) in namespace " + ns + "; revoke or delete one of them first"
		Eventually(func() error { return k8sClient.Update(ctx, moved) }).Should(MatchError(`admission webhook "vapikey.keywarden.dev" denied the request: ` + want))

		By("an expiry past the class's maximum from issuance")
		later := getKey(ctx, mine)
		later.Spec.ExpiresAt = &metav1.Time{Time: later.Status.IssuedAt.Add(721 * time.Hour)}
		denied(k8sClient.Update(ctx, later), fmt.Sprintf(`lifetime 721h0m0s exceeds the maximum of 720h0m0s set by APIKeyClass %q`, c.Name))

		By("an expiry brought forward, which is always granted")
		sooner := getKey(ctx, mine)
		sooner.Spec.ExpiresAt = &metav1.Time{Time: sooner.Status.IssuedAt.Add(time.Hour)}
		Expect(k8sClient.Update(ctx, sooner)).To(Succeed())
	})
})

// The webhook as config/webhook ships it, pointed at a server that
// accepts connections and never answers: creations and revocations still
// go through, after the webhook's timeout, and the controller still
// enforces the owner's limit.
var _ = Describe("The validating webhook, unreachable", func() {
	It("fails open within its timeout, and the controller enforces the limit alone", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		hang, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(hang.Close)
		go func() {
			var held []net.Conn // accepted and never answered
			for {
				c, err := hang.Accept()
				if err != nil {
					for _, c := range held {
						_ = c.Close()
					}
					return
				}
				held = append(held, c)
			}
		}()
		cfg := webhookConfig()
		cfg.Name = "unreachable-" + ns
		cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
		cfg.Webhooks[0].ClientConfig = admissionv1.WebhookClientConfig{URL: ptr.To("https://" + hang.Addr().String() + "/validate-keywarden-dev-v1alpha1-apikey")}
		Expect(k8sClient.Create(ctx, cfg)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, cfg)).To(Succeed()) })
		timeout := time.Duration(*cfg.Webhooks[0].TimeoutSeconds) * time.Second

		class := newClass(ctx, false, keywardenv1alpha1.APIKeyClassSpec{MaxActiveKeysPerOwner: ptr.To[int32](1)})
		timed := func(what string, do func() error) {
			GinkgoHelper()
			start := time.Now()
			Expect(do()).To(Succeed(), what)
			took := time.Since(start)
			GinkgoWriter.Printf("%s took %s with the webhook unreachable\n", what, took)
			Expect(took).To(BeNumerically("<", timeout+3*time.Second), what)
		}
		first, second := newAPIKey(ns, "first"), newAPIKey(ns, "second")
		first.Spec.ClassName, second.Spec.ClassName = class.Name, class.Name
		// The API server may take a moment to see the new configuration:
		// wait until a call is seen to hang on it.
		Eventually(func() time.Duration {
			probe := newAPIKey(ns, "probe-"+rand.String(5))
			probe.Spec.Revoked = true
			start := time.Now()
			Expect(k8sClient.Create(ctx, probe)).To(Succeed())
			return time.Since(start)
		}, 30*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", timeout-time.Second))

		timed("creating a key", func() error { return k8sClient.Create(ctx, first) })
		waitReady(ctx, first)
		timed("creating a key over the limit", func() error { return k8sClient.Create(ctx, second) })
		waitRefused(ctx, second)
		timed("revoking a key", func() error {
			patch := client.MergeFrom(first.DeepCopy())
			first.Spec.Revoked = true
			return k8sClient.Patch(ctx, first, patch)
		})
		waitReady(ctx, second)
	})
})
