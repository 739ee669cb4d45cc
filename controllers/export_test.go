package controllers

import (
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"keywarden.dev/keywarden/internal/seal"
)

// What the suite's setup, in the external test package (it builds the
// controller through internal/app/controller, which imports this
// package), needs of the specs' state and hands them.

// LabelUnmanaged keeps an APIKey out of the controller's cache.
const LabelUnmanaged = labelUnmanaged

// SuiteLog is where the controller logs: the leak check reads it.
func SuiteLog() io.Writer { return &logs }

// SuiteWebhook is the webhook configuration the suite installs.
func SuiteWebhook() *admissionv1.ValidatingWebhookConfiguration { return webhookConfig() }

// Suite is what the setup hands the specs.
type Suite struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.WithWatch
	Cache  cache.Cache
	// Scrape answers a scrape of the controller's metrics.
	Scrape http.Handler
	Seals  *seal.Store
	Stop   func() error
}

// UseSuite hands the specs what the setup started.
func UseSuite(s Suite) {
	testEnv, cfg, k8sClient, scheme = s.Env, s.Config, s.Client, s.Client.Scheme()
	mgrCache, scrapeMetrics, seals, stopController = s.Cache, s.Scrape, s.Seals, s.Stop
}
