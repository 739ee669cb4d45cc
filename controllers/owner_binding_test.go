package controllers

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/test/harness"
)

// The optional policy of config/owner-binding, applied as shipped, with
// users impersonated through the API server. Its ConfigMap lists the
// suite's own admin group (system:masters), so the other specs are not
// affected while it is installed.
var _ = Describe("The owner-binding admission policy of config/owner-binding", Ordered, func() {
	const (
		argocd   = "system:serviceaccount:argocd:argocd-application-controller"
		platform = "platform-admins"
	)
	var ns string
	as := func(user string, groups ...string) client.Client {
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
		cl, err := client.New(c, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		return cl
	}
	keyOf := func(name, owner string) *keywardenv1alpha1.APIKey {
		k := newAPIKey(ns, name)
		k.Spec.Owner = owner
		return k
	}
	refused := func(err error, user string) {
		GinkgoHelper()
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("spec.owner must be your own username, " + user + ": the owner-binding policy"))
	}

	BeforeAll(func(ctx context.Context) {
		objs, err := harness.Kustomize("config/owner-binding")
		Expect(err).NotTo(HaveOccurred())
		Expect(objs).To(HaveLen(3))
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" {
				Expect(unstructured.SetNestedField(o.Object, argocd, "data", "users")).To(Succeed())
				Expect(unstructured.SetNestedField(o.Object, "system:masters, "+platform, "data", "groups")).To(Succeed())
			}
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
		}
		ns = newNamespace(ctx)
		// The policy and its binding go first, and its ConfigMap only once
		// the API server no longer applies them: without its ConfigMap the
		// policy refuses every create, the other specs' too.
		DeferCleanup(func(ctx context.Context) {
			for _, o := range objs {
				if o.GetKind() != "ConfigMap" {
					Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed())
				}
			}
			Eventually(func() error {
				return as("alice@example.com").Create(ctx, keyOf("probe", "cfo@example.com"), client.DryRunAll)
			}, 15*time.Second, 100*time.Millisecond).Should(Succeed())
			for _, o := range objs {
				if o.GetKind() == "ConfigMap" {
					Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed())
				}
			}
		})
		// The rights of a namespace editor over APIKeys, for everyone here.
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apikey-editor"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"keywarden.dev"}, Resources: []string{"apikeys"},
				Verbs: []string{"get", "list", "create", "update", "patch"}}},
		}
		Expect(k8sClient.Create(ctx, role)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apikey-editors"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice@example.com"},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: argocd},
				{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: platform},
			},
		})).To(Succeed())
		// The policy is in force once it refuses (a dry run leaves nothing).
		Eventually(func() error {
			return as("alice@example.com").Create(ctx, keyOf("probe", "cfo@example.com"), client.DryRunAll)
		}, 15*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("the owner-binding policy")))
	})

	It("lets a user create keys only in their own name", func(ctx context.Context) {
		alice := as("alice@example.com", "developers")
		Expect(alice.Create(ctx, keyOf("alices", "alice@example.com"))).To(Succeed())
		// The attack: a key in the CFO's name.
		refused(alice.Create(ctx, keyOf("cfos", "cfo@example.com")), "alice@example.com")
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cfos"}, &keywardenv1alpha1.APIKey{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the refused key was created: %v", err)
	})

	It("lets the listed users and groups set any owner", func(ctx context.Context) {
		Expect(as(argocd, "system:serviceaccounts").Create(ctx, keyOf("from-git", "payments@example.com"))).To(Succeed())
		Expect(as("pat@example.com", platform).Create(ctx, keyOf("for-payments", "payments@example.com"))).To(Succeed())
	})

	It("judges an update only when it changes the owner", func(ctx context.Context) {
		bobs := keyOf("bobs", "bob@example.com")
		Expect(k8sClient.Create(ctx, bobs)).To(Succeed())
		alice := as("alice@example.com")
		// Merge patches, as kubectl sends them: no conflict with the
		// controller's own writes.
		patch := func(spec string) error {
			return alice.Patch(ctx, bobs, client.RawPatch(types.MergePatchType, []byte(`{"spec":`+spec+`}`)))
		}
		Expect(patch(`{"displayName":"renamed by alice"}`)).To(Succeed(), "an edit that keeps the owner")
		refused(patch(`{"owner":"carol@example.com"}`), "alice@example.com")
		Expect(patch(`{"owner":"alice@example.com"}`)).To(Succeed(), "a move to herself")
	})
})
