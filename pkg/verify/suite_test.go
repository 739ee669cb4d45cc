package verify_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/app/verifier"
	"keywarden.dev/keywarden/internal/seal"
	"keywarden.dev/keywarden/test/harness"
)

// The suite runs the controller and the verifier in one manager against a
// real kube-apiserver, and talks to the verifier over loopback HTTP.
var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.WithWatch
	cancel    context.CancelFunc
	done      sync.WaitGroup

	// baseURL is the verifier's address.
	baseURL string
	// clockSkew is added to the verifier's clock, to show that it decides
	// expiry by itself.
	clockSkew atomic.Int64
	// lastUsedWrites counts status patches by the usage recorder, per key.
	lastUsedWrites sync.Map
)

// lastUsedInterval is the usage recorder's interval in this suite.
const lastUsedInterval = time.Second

func TestVerifier(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Verifier Suite")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	testEnv, err = harness.NewEnvironment()
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	scheme := controllers.NewScheme()
	k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(harness.CreateManagerNamespace(cfg)).To(Succeed())
	Expect((&controllers.APIKeyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("keywarden"),
		Seals:     &seal.Store{Client: k8sClient, Secret: types.NamespacedName{Namespace: harness.ManagerNamespace, Name: "keywarden-sealing-key"}},
	}).SetupWithManager(mgr)).To(Succeed())

	counting := interceptor.NewClient(k8sClient, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			n, _ := lastUsedWrites.LoadOrStore(types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	port, err := harness.FreePort()
	Expect(err).NotTo(HaveOccurred())
	_, err = verifier.AddToManager(mgr, verifier.Serving{
		Addr:             "127.0.0.1:" + itoa(port),
		LastUsedInterval: lastUsedInterval,
		Registerer:       prometheus.NewRegistry(),
		Client:           counting,
		Now:              func() time.Time { return time.Now().Add(time.Duration(clockSkew.Load())) },
	})
	Expect(err).NotTo(HaveOccurred())
	baseURL = "http://127.0.0.1:" + itoa(port)

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	done.Add(1)
	go func() {
		defer GinkgoRecover()
		defer done.Done()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Eventually(func() (int, error) { return getStatus(baseURL + "/readyz") }, 20*time.Second).Should(Equal(200))
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	done.Wait()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
