package controllers

import (
	"context"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var _ = Describe("config/samples", func() {
	It("are accepted by the API server and become Ready", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		classes, err := filepath.Glob(filepath.Join("..", "config", "samples", "apikeyclass_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(classes).To(HaveLen(1))
		for _, p := range classes {
			b, err := os.ReadFile(p)
			Expect(err).NotTo(HaveOccurred())
			c := &keywardenv1alpha1.APIKeyClass{}
			Expect(yaml.UnmarshalStrict(b, c)).To(Succeed(), p)
			Expect(k8sClient.Create(ctx, c, client.FieldValidation("Strict"))).To(Succeed(), p)
			DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, c)).To(Succeed()) })
		}
		paths, err := filepath.Glob(filepath.Join("..", "config", "samples", "apikey_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(paths).To(HaveLen(4))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			Expect(err).NotTo(HaveOccurred())
			k := &keywardenv1alpha1.APIKey{}
			Expect(yaml.UnmarshalStrict(b, k)).To(Succeed(), p)
			k.Namespace = ns
			Expect(k8sClient.Create(ctx, k, client.FieldValidation("Strict"))).To(Succeed(), p)
			got := waitReady(ctx, k)
			_, err = readSecret(ctx, ns, got.Status.SecretRef.Name)
			Expect(err).NotTo(HaveOccurred())
		}
	})
})
