// Package keymetrics exports the state of the APIKeys a manager holds as
// Prometheus series, read at each scrape: how many keys are in each
// phase, how many are stalled and why, and, per key, its phase, when it
// was issued, when it expires and when it was last used, as cert-manager
// exports certmanager_certificate_expiration_timestamp_seconds. Per-key
// series are one a key for each metric, and can be turned off for very
// large fleets.
package keymetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var (
	keysDesc = prometheus.NewDesc("keywarden_apikeys",
		"APIKeys by namespace, class and phase (Pending before the controller has seen a key).",
		[]string{"namespace", "class", "phase"}, nil)
	stalledDesc = prometheus.NewDesc("keywarden_apikeys_stalled",
		"APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.",
		[]string{"namespace", "class", "reason"}, nil)
	phaseDesc = prometheus.NewDesc("keywarden_apikey_phase",
		"1 for each APIKey, labelled with its phase.",
		[]string{"namespace", "name", "class", "phase"}, nil)
	issuedDesc = prometheus.NewDesc("keywarden_apikey_issued_timestamp_seconds",
		"When each issued APIKey was first issued, in Unix seconds.",
		[]string{"namespace", "name", "class"}, nil)
	expiryDesc = prometheus.NewDesc("keywarden_apikey_expiration_timestamp_seconds",
		"When each APIKey expires, in Unix seconds; absent for a key that never expires or is not issued yet.",
		[]string{"namespace", "name", "class"}, nil)
	lastUsedDesc = prometheus.NewDesc("keywarden_apikey_last_used_timestamp_seconds",
		"When each APIKey with trackLastUsed was last used, in Unix seconds; 0 for one never used. Absent for keys not tracked.",
		[]string{"namespace", "name", "class"}, nil)
)

// Collector reads the keys at each scrape.
type Collector struct {
	// List returns the keys; it must not copy them needlessly (the
	// manager's cache, read without deep copies).
	List func() ([]keywardenv1alpha1.APIKey, error)
	// PerKey exports the per-key series.
	PerKey bool
	// Class is the class a key is labelled with.
	Class func(*keywardenv1alpha1.APIKey) string
	// OnError, when set, is told why the keys could not be read.
	OnError func(error)
}

// Describe sends the descriptors of the series.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{keysDesc, stalledDesc, phaseDesc, issuedDesc, expiryDesc, lastUsedDesc} {
		ch <- d
	}
}

type group struct{ namespace, class, detail string }

// Collect sends the series of the keys as they are now. When the keys
// cannot be read (the cache not synced yet, at start), it sends none of
// them, rather than zeros; it does not fail the scrape either, which would
// lose every other metric with it. OnError hears of the failure.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	keys, err := c.List()
	if err != nil {
		if c.OnError != nil {
			c.OnError(err)
		}
		return
	}
	phases, stalled := map[group]int{}, map[group]int{}
	for i := range keys {
		k := &keys[i]
		class := c.Class(k)
		phase := string(k.Status.Phase)
		if phase == "" {
			phase = string(keywardenv1alpha1.PhasePending)
		}
		phases[group{k.Namespace, class, phase}]++
		if s := apimeta.FindStatusCondition(k.Status.Conditions, keywardenv1alpha1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue {
			stalled[group{k.Namespace, class, s.Reason}]++
		}
		if !c.PerKey {
			continue
		}
		ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, 1, k.Namespace, k.Name, class, phase)
		if t := k.Status.IssuedAt; t != nil {
			ch <- prometheus.MustNewConstMetric(issuedDesc, prometheus.GaugeValue, seconds(t), k.Namespace, k.Name, class)
		}
		if t := k.Status.ExpiresAt; t != nil {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, seconds(t), k.Namespace, k.Name, class)
		}
		if k.Spec.TrackLastUsed {
			ch <- prometheus.MustNewConstMetric(lastUsedDesc, prometheus.GaugeValue, seconds(k.Status.LastUsedAt), k.Namespace, k.Name, class)
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
