package main

import (
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keymetrics"
)

// registerKeyMetrics registers, once for the process, the state of the
// keys (kept from the informers of the cache it is told to watch: the
// verifier's, which lives as long as the process, or else that of the
// controller manager of the moment) and the counters of the controller's
// passes.
func registerKeyMetrics(perKey bool) (*keymetrics.Collector, *controllers.Metrics, error) {
	c := &keymetrics.Collector{PerKey: perKey}
	if err := ctrlmetrics.Registry.Register(c); err != nil {
		return nil, nil, err
	}
	m, err := controllers.NewMetrics(ctrlmetrics.Registry)
	return c, m, err
}
