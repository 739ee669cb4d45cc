package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/seal"
)

// The suite runs the controller as `keywarden controller` builds it, under
// its own ServiceAccount, against a real kube-apiserver and etcd
// (suite_kit_test.go starts it through test/kit), and asserts through
// k8sClient, an administrator's client that does not read from the
// controller's cache.
var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.WithWatch
	scheme    *runtime.Scheme
	// stopController stops the suite's controller.
	stopController func() error
	// mgrCache is the controller's informer cache.
	mgrCache cache.Cache
	// scrapeMetrics answers a scrape of the controller's metrics.
	scrapeMetrics http.Handler
	// seals is the sealing-key store of the controller and of the
	// reconcilers the specs drive by hand.
	seals *seal.Store

	// logs holds everything the controller logged during the suite.
	logs syncBuffer
	// rawKeys holds every raw key the tests read from a Secret.
	rawKeys keySet
)

// labelUnmanaged keeps an APIKey out of the suite controller's cache, so
// that a test can drive the reconciler pass by pass (crash simulations).
const labelUnmanaged = "test.keywarden.dev/unmanaged"

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = AfterSuite(func() {
	// No raw key may appear anywhere but in its Secret: not in the
	// manager's logs, not in Events, not in the APIKeys themselves. A
	// whole run that read no key would check nothing: that fails. A run
	// narrowed to some specs checks the keys it read.
	suiteConfig, _ := GinkgoConfiguration()
	narrowed := len(suiteConfig.FocusStrings) > 0 || len(suiteConfig.SkipStrings) > 0 || suiteConfig.LabelFilter != ""
	if !narrowed {
		Expect(rawKeys.len()).To(BeNumerically(">", 0), "the leak check has no raw key to look for")
	}
	if rawKeys.len() > 0 {
		ctx := context.Background()
		var apiKeys keywardenv1alpha1.APIKeyList
		Expect(k8sClient.List(ctx, &apiKeys)).To(Succeed())
		var coreEvents corev1.EventList
		Expect(k8sClient.List(ctx, &coreEvents)).To(Succeed())
		var newEvents eventsv1.EventList
		Expect(k8sClient.List(ctx, &newEvents)).To(Succeed())
		if !narrowed {
			Expect(newEvents.Items).NotTo(BeEmpty(), "the check must see the controller's events")
			Expect(logs.Len()).To(BeNumerically(">", 0), "the check must see the manager's logs")
		}

		places := map[string][]byte{"manager log": logs.Bytes()}
		for name, obj := range map[string]any{"APIKeys": apiKeys, "core/v1 Events": coreEvents, "events.k8s.io/v1 Events": newEvents} {
			b, err := json.Marshal(obj)
			Expect(err).NotTo(HaveOccurred())
			places[name] = b
		}
		for place, text := range places {
			Expect(rawKeys.foundIn(text)).To(BeEmpty(), "raw keys found in %s", place)
		}
		GinkgoWriter.Printf("Checked %d raw keys against %d bytes of logs, %d events and %d APIKeys: none found\n",
			rawKeys.len(), logs.Len(), len(newEvents.Items)+len(coreEvents.Items), len(apiKeys.Items))
	}

	if stopController != nil {
		Expect(stopController()).To(Succeed())
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// labelWebhook marks the namespaces where the suite's validating webhook
// applies, so that the controller's own enforcement is tested elsewhere.
const labelWebhook = "test.keywarden.dev/webhook"

// webhookConfig is config/webhook as generated, limited to the namespaces
// labelled for it.
func webhookConfig() *admissionv1.ValidatingWebhookConfiguration {
	b, err := os.ReadFile(filepath.Join("..", "config", "webhook", "manifests.yaml"))
	Expect(err).NotTo(HaveOccurred())
	c := &admissionv1.ValidatingWebhookConfiguration{}
	Expect(yaml.Unmarshal(b, c)).To(Succeed())
	Expect(c.Webhooks).To(HaveLen(1))
	// Down or slow, the webhook must never block anything, deletions least
	// of all: the controller enforces the same rules.
	Expect(*c.Webhooks[0].FailurePolicy).To(Equal(admissionv1.Ignore))
	Expect(*c.Webhooks[0].TimeoutSeconds).To(BeNumerically("<=", 5))
	Expect(c.Webhooks[0].Rules[0].Operations).To(ConsistOf(admissionv1.Create, admissionv1.Update))
	c.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{labelWebhook: "true"}}
	return c
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, the sink of the
// manager's logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, _ = GinkgoWriter.Write(p)
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// keySet records raw keys the tests have seen, to look for them later where
// they must not be.
type keySet struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (s *keySet) add(raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	s.keys[raw] = true
}

func (s *keySet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// foundIn returns the display prefixes of the recorded keys that occur in
// text; the keys themselves are not repeated in test output.
func (s *keySet) foundIn(text []byte) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for raw := range s.keys {
		if bytes.Contains(text, []byte(raw)) {
			found = append(found, raw[:8]+"...")
		}
	}
	return found
}
