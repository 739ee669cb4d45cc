package keymetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func key(ns, name, class string, phase keywardenv1alpha1.APIKeyPhase, f ...func(*keywardenv1alpha1.APIKey)) keywardenv1alpha1.APIKey {
	k := keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	k.Spec.ClassName = class
	k.Status.Phase = phase
	for _, f := range f {
		f(&k)
	}
	return k
}

func at(sec int64) *metav1.Time { return &metav1.Time{Time: time.Unix(sec, 0)} }

func stalled(reason string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		k.Status.Conditions = append(k.Status.Conditions, metav1.Condition{Type: "Stalled", Status: metav1.ConditionTrue, Reason: reason})
	}
}

func TestCollector(t *testing.T) {
	issued := func(k *keywardenv1alpha1.APIKey) { k.Status.IssuedAt, k.Status.ExpiresAt = at(1000), at(5000) }
	tests := []struct {
		name   string
		keys   []keywardenv1alpha1.APIKey
		perKey bool
		want   string
	}{{
		name: "no keys, no series",
		want: "",
	}, {
		name: "counts by namespace, class and phase; a key not seen yet is Pending",
		keys: []keywardenv1alpha1.APIKey{
			key("a", "k1", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "k2", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "k3", "", ""),
			key("b", "k1", "gold", keywardenv1alpha1.PhaseRefused),
		},
		want: `
# HELP keywarden_apikeys APIKeys by namespace, class and phase (Pending before the controller has seen a key).
# TYPE keywarden_apikeys gauge
keywarden_apikeys{class="",namespace="a",phase="Pending"} 1
keywarden_apikeys{class="gold",namespace="a",phase="Active"} 2
keywarden_apikeys{class="gold",namespace="b",phase="Refused"} 1
`,
	}, {
		name: "stalled keys by reason",
		keys: []keywardenv1alpha1.APIKey{
			key("a", "k1", "", keywardenv1alpha1.PhaseExpired, stalled("Expired")),
			key("a", "k2", "", keywardenv1alpha1.PhaseExpired, stalled("Expired")),
			key("a", "k3", "", keywardenv1alpha1.PhaseActive, stalled("RoleNotAllowed")),
			key("a", "k4", "", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) {
				k.Status.Conditions = []metav1.Condition{{Type: "Stalled", Status: metav1.ConditionFalse, Reason: "X"}}
			}),
		},
		want: `
# HELP keywarden_apikeys_stalled APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.
# TYPE keywarden_apikeys_stalled gauge
keywarden_apikeys_stalled{class="",namespace="a",reason="Expired"} 2
keywarden_apikeys_stalled{class="",namespace="a",reason="RoleNotAllowed"} 1
`,
	}, {
		name:   "per key: phase, issuance, expiry, and last use of tracked keys only (0 never used)",
		perKey: true,
		keys: []keywardenv1alpha1.APIKey{
			key("a", "used", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) {
				k.Spec.TrackLastUsed, k.Status.LastUsedAt = true, at(3000)
			}),
			key("a", "unused", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = true }),
			key("a", "untracked", "gold", keywardenv1alpha1.PhaseActive, issued),
			key("a", "forever", "", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) { k.Status.IssuedAt = at(1000) }),
			key("a", "waiting", "", keywardenv1alpha1.PhasePending),
		},
		want: `
# HELP keywarden_apikey_expiration_timestamp_seconds When each APIKey expires, in Unix seconds; absent for a key that never expires or is not issued yet.
# TYPE keywarden_apikey_expiration_timestamp_seconds gauge
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="untracked",namespace="a"} 5000
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="unused",namespace="a"} 5000
keywarden_apikey_expiration_timestamp_seconds{class="gold",name="used",namespace="a"} 5000
# HELP keywarden_apikey_issued_timestamp_seconds When each issued APIKey was first issued, in Unix seconds.
# TYPE keywarden_apikey_issued_timestamp_seconds gauge
keywarden_apikey_issued_timestamp_seconds{class="",name="forever",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="untracked",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="unused",namespace="a"} 1000
keywarden_apikey_issued_timestamp_seconds{class="gold",name="used",namespace="a"} 1000
# HELP keywarden_apikey_last_used_timestamp_seconds When each APIKey with trackLastUsed was last used, in Unix seconds; 0 for one never used. Absent for keys not tracked.
# TYPE keywarden_apikey_last_used_timestamp_seconds gauge
keywarden_apikey_last_used_timestamp_seconds{class="gold",name="unused",namespace="a"} 0
keywarden_apikey_last_used_timestamp_seconds{class="gold",name="used",namespace="a"} 3000
# HELP keywarden_apikey_phase 1 for each APIKey, labelled with its phase.
# TYPE keywarden_apikey_phase gauge
keywarden_apikey_phase{class="",name="forever",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="",name="waiting",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="gold",name="untracked",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="gold",name="unused",namespace="a",phase="Active"} 1
keywarden_apikey_phase{class="gold",name="used",namespace="a",phase="Active"} 1
`,
	}, {
		name:   "per-key series off: none of them, whatever the keys",
		perKey: false,
		keys: []keywardenv1alpha1.APIKey{key("a", "used", "gold", keywardenv1alpha1.PhaseActive, issued, func(k *keywardenv1alpha1.APIKey) {
			k.Spec.TrackLastUsed, k.Status.LastUsedAt = true, at(3000)
		})},
		want: "",
	}}
	perKeyNames := []string{"keywarden_apikey_phase", "keywarden_apikey_issued_timestamp_seconds",
		"keywarden_apikey_expiration_timestamp_seconds", "keywarden_apikey_last_used_timestamp_seconds"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{PerKey: tt.perKey}
			c.SetClass("gold", true)
			for i := range tt.keys {
				c.Set(&tt.keys[i])
			}
			// Each case looks at the metrics its text names; the per-key
			// ones are always looked at, so that "none" is checked too.
			names := perKeyNames
			for _, n := range []string{"keywarden_apikeys", "keywarden_apikeys_stalled"} {
				if strings.Contains(tt.want, "# TYPE "+n+" ") {
					names = append(names, n)
				}
			}
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCollectorClassLabel: a key is labelled with the class it was issued
// under, or the existing class its spec names; the free text of a spec
// that names no class never becomes a label.
func TestCollectorClassLabel(t *testing.T) {
	c := &Collector{PerKey: true}
	c.SetClass("gold", true)
	c.SetClass("gone", true)
	c.SetClass("gone", false)
	keys := []keywardenv1alpha1.APIKey{
		key("a", "issued", "whatever", keywardenv1alpha1.PhaseActive, func(k *keywardenv1alpha1.APIKey) { k.Status.ClassName = "silver" }),
		key("a", "waiting", "gold", keywardenv1alpha1.PhaseRefused),
		key("a", "made-up", "x-9f8e7d6c5b4a", keywardenv1alpha1.PhasePending, stalled("ClassNotFound")),
		key("a", "deleted-class", "gone", keywardenv1alpha1.PhasePending, stalled("ClassNotFound")),
	}
	for i := range keys {
		c.Set(&keys[i])
	}
	c.Set(&keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "removed"}})
	c.Remove("a", "removed")
	want := `
# HELP keywarden_apikey_phase 1 for each APIKey, labelled with its phase.
# TYPE keywarden_apikey_phase gauge
keywarden_apikey_phase{class="",name="deleted-class",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="",name="made-up",namespace="a",phase="Pending"} 1
keywarden_apikey_phase{class="gold",name="waiting",namespace="a",phase="Refused"} 1
keywarden_apikey_phase{class="silver",name="issued",namespace="a",phase="Active"} 1
# HELP keywarden_apikeys_stalled APIKeys whose Stalled condition is True, by namespace, class and reason: they need a person.
# TYPE keywarden_apikeys_stalled gauge
keywarden_apikeys_stalled{class="",namespace="a",reason="ClassNotFound"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "keywarden_apikey_phase", "keywarden_apikeys_stalled"); err != nil {
		t.Error(err)
	}
	c.Reset()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series after Reset, want none", n)
	}
}
