package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
)

// Metrics counts what the controller's passes did to keys, by namespace
// and class: issuances, reissues, rotations, refusals, expiries,
// revocations, and stalls by reason. A pass is counted once its status is
// written, as its events are emitted: a pass retried after a conflict
// counts once.
type Metrics struct {
	byEvent map[string]*prometheus.CounterVec
	stalls  *prometheus.CounterVec
}

// eventCounters names the counter of each event reason that is counted.
var eventCounters = map[string]struct{ name, help string }{
	keywardenv1alpha1.EventKeyIssued:   {"keywarden_key_issuances_total", "Keys issued for the first time."},
	keywardenv1alpha1.EventKeyReissued: {"keywarden_key_reissues_total", "Keys issued again after their Secret was lost or tampered with."},
	keywardenv1alpha1.EventKeyRotated:  {"keywarden_key_rotations_total", "Rotations completed: a new key written into its Secret."},
	keywardenv1alpha1.EventKeyReissuedAfterRestore: {"keywarden_key_restore_reissues_total",
		"Keys issued anew because their Secret was restored without the status that records its key (none written back in time)."},
	keywardenv1alpha1.EventKeyRefused: {"keywarden_key_refusals_total", "Keys refused for their owner's active-key limit (counted as they become Refused)."},
	keywardenv1alpha1.EventKeyExpired: {"keywarden_key_expiries_total", "Keys that expired."},
	keywardenv1alpha1.EventKeyRevoked: {"keywarden_key_revocations_total", "Keys revoked, in their spec or by the verifier."},
}

// NewMetrics registers the counters with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		byEvent: map[string]*prometheus.CounterVec{},
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keywarden_key_stalls_total",
			Help: "Keys that became Stalled, by the condition's reason: they need a person.",
		}, []string{"namespace", "class", "reason"}),
	}
	if err := reg.Register(m.stalls); err != nil {
		return nil, err
	}
	for reason, c := range eventCounters {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: c.name, Help: c.help}, []string{"namespace", "class"})
		if err := reg.Register(v); err != nil {
			return nil, err
		}
		m.byEvent[reason] = v
	}
	return m, nil
}

// recordPass counts a pass whose status was written: its events, and a
// stall it entered (a key already stalled for that reason is not counted
// again). class is the class the pass's policy resolved; the label is
// always a class that exists (or was issued under), never the free text of
// a spec, so that nobody can grow the counters' series at will.
func (m *Metrics) recordPass(before, after *keywardenv1alpha1.APIKey, events []lifecycle.Event, class string) {
	if m == nil {
		return
	}
	if after.Status.ClassName != "" {
		class = after.Status.ClassName
	}
	for _, e := range events {
		if c, ok := m.byEvent[e.Reason]; ok {
			c.WithLabelValues(after.Namespace, class).Inc()
		}
	}
	now := apimeta.FindStatusCondition(after.Status.Conditions, keywardenv1alpha1.ConditionStalled)
	if now == nil || now.Status != metav1.ConditionTrue {
		return
	}
	if was := apimeta.FindStatusCondition(before.Status.Conditions, keywardenv1alpha1.ConditionStalled); was != nil &&
		was.Status == metav1.ConditionTrue && was.Reason == now.Reason {
		return
	}
	m.stalls.WithLabelValues(after.Namespace, class, now.Reason).Inc()
}
