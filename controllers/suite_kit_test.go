package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/controller"
	"keywarden.dev/keywarden/internal/keymetrics"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/test/harness"
	"keywarden.dev/keywarden/test/kit"
)

// The suite's setup: the control plane with config/rbac installed, and the
// controller built as the binary builds it, under its ServiceAccount, with
// the validating webhook served where envtest installed it. The specs
// (package controllers) drive some APIKeys by hand: those labelled
// LabelUnmanaged stay out of the controller's cache.
var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(controllers.SuiteLog()), zap.UseDevMode(true), zap.Level(zapcore.DebugLevel)))
	env, err := kit.Start(kit.Options{Webhooks: []*admissionv1.ValidatingWebhookConfiguration{controllers.SuiteWebhook()}})
	Expect(err).NotTo(HaveOccurred())

	direct, err := client.New(env.As(kit.ControllerAccount), client.Options{Scheme: controllers.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	seals := &seal.Store{Client: direct, Secret: types.NamespacedName{Namespace: harness.ManagerNamespace, Name: "keywarden-sealing-key"}}
	Expect(seals.Ensure(context.Background())).To(Succeed())
	registry := prometheus.NewPedanticRegistry()
	passes, err := controllers.NewMetrics(registry)
	Expect(err).NotTo(HaveOccurred())
	keyState := &keymetrics.Collector{PerKey: true}
	Expect(registry.Register(keyState)).To(Succeed())
	unmanaged, err := labels.Parse("!" + controllers.LabelUnmanaged)
	Expect(err).NotTo(HaveOccurred())

	running, err := env.StartController(append([]string{"--max-concurrent-reconciles=4"}, env.WebhookArgs()...), controller.Parts{
		Seals: seals, Metrics: passes, KeyState: keyState, Direct: direct,
		ManagerOptions: func(o *ctrl.Options) {
			o.Cache.ByObject[&keywardenv1alpha1.APIKey{}] = cache.ByObject{Label: unmanaged}
		},
	})
	Expect(err).NotTo(HaveOccurred())
	controllers.UseSuite(controllers.Suite{
		Env: env.Environment, Config: env.Config, Client: env.Client, Cache: running.Manager.GetCache(),
		Scrape: keyState.Handler(registry), Seals: seals, Stop: running.Stop,
	})
})
