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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"keywarden.dev/keywarden/internal/app/controller"
	"keywarden.dev/keywarden/internal/app/verifier"
	"keywarden.dev/keywarden/test/kit"
)

// The suite runs the controller and the verifier as their binaries build
// them, each under its own ServiceAccount (test/kit), against a real
// kube-apiserver, and talks to the verifier over loopback HTTP.
var (
	env        *kit.Env
	k8sClient  client.WithWatch
	components []*kit.Running

	// baseURL is the verifier's address.
	baseURL string
	// clockSkew is added to the verifier's clock, to show that it decides
	// expiry by itself.
	clockSkew atomic.Int64
	// lastUsedWrites counts the verifier's status patches, per key.
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
	env, err = kit.Start(kit.Options{})
	Expect(err).NotTo(HaveOccurred())
	k8sClient = env.Client

	c, err := env.StartController(nil, controller.Parts{})
	Expect(err).NotTo(HaveOccurred())
	components = append(components, c)
	// The verifier's status writes, as its own account, counted.
	own, err := client.NewWithWatch(env.As(kit.VerifierAccount), client.Options{Scheme: k8sClient.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	counting := func(client.Client) client.Client {
		return interceptor.NewClient(own, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				n, _ := lastUsedWrites.LoadOrStore(types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				return c.SubResource(sub).Patch(ctx, obj, p, opts...)
			},
		})
	}
	v, err := env.StartVerifier([]string{"--last-used-interval=" + lastUsedInterval.String(), "--verifier-report-budget=200ms"}, verifier.Parts{
		Registerer: prometheus.NewRegistry(),
		Client:     counting,
		Now:        func() time.Time { return time.Now().Add(time.Duration(clockSkew.Load())) },
	})
	Expect(err).NotTo(HaveOccurred())
	components = append(components, v)
	baseURL = v.URL
	Eventually(func() (int, error) { return getStatus(baseURL + "/readyz") }, 20*time.Second).Should(Equal(200))
})

var _ = AfterSuite(func() {
	for _, c := range components {
		Expect(c.Stop()).To(Succeed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
