// Package keymetrics exports the state of the APIKeys a manager holds as
// Prometheus series, kept from the informers' events and read at each
// scrape: how many keys are in each
// phase, how many are stalled and why, and, per key, its phase, when it
// was issued, when it expires and when it was last used, as cert-manager
// exports certmanager_certificate_expiration_timestamp_seconds. Per-key
// series are one a key for each metric, written by the scrape's handler
// straight from what is kept of each key, and can be turned off for very
// large fleets.
package keymetrics

import (
	"context"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var (
	keysDesc = prometheus.NewDesc("keywarden_apikeys",
		"APIKeys by namespace, class and phase (Pending before the controller has seen a key).",
		[]string{"namespace", "class", "phase"}, nil)
	stalledDesc = prometheus.NewDesc("keywarden_apikeys_stalled",
		"APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.",
		[]string{"namespace", "class", "reason"}, nil)
)

// summary is what the metrics need of one APIKey.
type summary struct {
	specClass, statusClass string
	phase, stalled         string
	issued, expires        float64 // Unix seconds; 0 when unset
	lastUsed               float64
	tracked                bool
}

func summarize(k *keywardenv1alpha1.APIKey) summary {
	s := summary{
		specClass: valid(k.Spec.ClassName), statusClass: valid(k.Status.ClassName),
		phase:    valid(string(k.Status.Phase)),
		issued:   seconds(k.Status.IssuedAt),
		expires:  seconds(k.Status.ExpiresAt),
		lastUsed: seconds(k.Status.LastUsedAt),
		tracked:  k.Spec.TrackLastUsed,
	}
	if s.phase == "" {
		s.phase = string(keywardenv1alpha1.PhasePending)
	}
	if c := apimeta.FindStatusCondition(k.Status.Conditions, keywardenv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		s.stalled = valid(c.Reason)
	}
	return s
}

// valid is a label value as valid UTF-8: a series with invalid UTF-8 in a
// label fails the whole scrape.
func valid(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// Collector keeps what the metrics need of each APIKey, and of which
// classes exist, current from the informers' events, so that a scrape
// reads a few numbers a key rather than listing (and copying) every
// APIKey.
type Collector struct {
	// PerKey exports the per-key series.
	PerKey bool

	mu      sync.RWMutex
	keys    map[types.NamespacedName]summary
	classes map[string]bool
}

// Set records the key as it is now.
func (c *Collector) Set(k *keywardenv1alpha1.APIKey) {
	s := summarize(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[types.NamespacedName]summary{}
	}
	c.keys[types.NamespacedName{Namespace: k.Namespace, Name: k.Name}] = s
}

// Remove forgets a key.
func (c *Collector) Remove(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, types.NamespacedName{Namespace: namespace, Name: name})
}

// SetClass records whether a class exists.
func (c *Collector) SetClass(name string, exists bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.classes == nil {
		c.classes = map[string]bool{}
	}
	if exists {
		c.classes[name] = true
	} else {
		delete(c.classes, name)
	}
}

// Reset forgets every key and class, before watching a new cache.
func (c *Collector) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys, c.classes = nil, nil
}

// Watch keeps the collector current from the informers of APIKeys and
// APIKeyClasses.
func (c *Collector) Watch(ctx context.Context, informers cache.Informers) error {
	keys, err := informers.GetInformer(ctx, &keywardenv1alpha1.APIKey{})
	if err != nil {
		return err
	}
	if _, err := keys.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if k, ok := obj.(*keywardenv1alpha1.APIKey); ok {
				c.Set(k)
			}
		},
		UpdateFunc: func(_, obj any) {
			if k, ok := obj.(*keywardenv1alpha1.APIKey); ok {
				c.Set(k)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if k, ok := obj.(*keywardenv1alpha1.APIKey); ok {
				c.Remove(k.Namespace, k.Name)
			}
		},
	}); err != nil {
		return err
	}
	classes, err := informers.GetInformer(ctx, &keywardenv1alpha1.APIKeyClass{})
	if err != nil {
		return err
	}
	_, err = classes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.class(obj, true) },
		UpdateFunc: func(_, obj any) { c.class(obj, true) },
		DeleteFunc: func(obj any) { c.class(obj, false) },
	})
	return err
}

func (c *Collector) class(obj any, exists bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if k, ok := obj.(*keywardenv1alpha1.APIKeyClass); ok {
		c.SetClass(k.Name, exists)
	}
}

// classOf is the class a key is labelled with: the one it was issued
// under, else the one its spec names if that class exists, else none. A
// spec's free text never becomes a label: nobody with the right to create
// APIKeys can grow the series at will.
func (c *Collector) classOf(s *summary) string {
	switch {
	case s.statusClass != "":
		return s.statusClass
	case c.classes[s.specClass]:
		return s.specClass
	}
	return ""
}

// Describe sends the descriptors of the series the collector sends: the
// counts. The per-key series are written by Handler.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keysDesc
	ch <- stalledDesc
}

type group struct{ namespace, class, detail string }

// Collect sends the counts of the keys as they are now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	phases, stalled := map[group]int{}, map[group]int{}
	for nn, s := range c.keys {
		class := c.classOf(&s)
		phases[group{nn.Namespace, class, s.phase}]++
		if s.stalled != "" {
			stalled[group{nn.Namespace, class, s.stalled}]++
		}
	}
	for g, n := range phases {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(n), g.namespace, g.class, g.detail)
	}
	for g, n := range stalled {
		ch <- prometheus.MustNewConstMetric(stalledDesc, prometheus.GaugeValue, float64(n), g.namespace, g.class, g.detail)
	}
}

// seconds is a time in Unix seconds; 0 for none.
func seconds(t *metav1.Time) float64 {
	if t == nil {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
