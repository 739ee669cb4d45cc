package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keymetrics"
)

// keySource is the cache the key metrics read: the verifier's, which
// lives as long as the process, or else that of the controller manager
// of the moment (it is rebuilt when leadership is lost).
type keySource struct{ reader atomic.Pointer[client.Reader] }

func (s *keySource) set(r client.Reader) { s.reader.Store(&r) }

func (s *keySource) list() ([]keywardenv1alpha1.APIKey, error) {
	r := s.reader.Load()
	if r == nil {
		return nil, errors.New("no cache of APIKeys yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var l keywardenv1alpha1.APIKeyList
	// Read only: no copy of each key for a scrape.
	err := (*r).List(ctx, &l, client.UnsafeDisableDeepCopy)
	return l.Items, err
}

// registerKeyMetrics registers, once for the process, the state of the
// keys read at each scrape and the counters of the controller's passes.
func registerKeyMetrics(perKey bool, src *keySource, log logr.Logger) (*controllers.Metrics, error) {
	c := &keymetrics.Collector{List: src.list, PerKey: perKey, Class: controllers.ClassLabel,
		OnError: func(err error) { log.V(1).Info("The keys' metrics are left out of this scrape", "reason", err.Error()) }}
	if err := ctrlmetrics.Registry.Register(c); err != nil {
		return nil, err
	}
	return controllers.NewMetrics(ctrlmetrics.Registry)
}
