//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"keywarden.dev/keywarden/test/harness"
)

// monitoring: keys in every state the alerts watch (issued and tracked,
// refused for the limit, stalled by policy, expired, revoked, reissued,
// rotated),
// verifications valid, expired and malformed; then a scrape of the leader
// holds every metric that the shipped alerts and dashboard read, and the
// per-key series of these keys.
func monitoring(e *env) {
	e.kubectl("create", "namespace", "monitoring")
	expiresAt := time.Now().Add(20 * time.Second).UTC().Format(time.RFC3339)
	manifest := fmt.Sprintf(`apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata:
  name: monitored
spec:
  maxActiveKeysPerOwner: 1
  roles:
    - name: reader
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: tracked, namespace: monitoring}
spec: {displayName: Tracked, owner: a@example.com, role: reader, className: monitored, trackLastUsed: true}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: stalled, namespace: monitoring}
spec: {displayName: Stalled, owner: b@example.com, role: admin, className: monitored}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: short, namespace: monitoring}
spec: {displayName: Short, owner: c@example.com, role: reader, className: monitored, expiresAt: %q}
---
apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: gone, namespace: monitoring}
spec: {displayName: Gone, owner: d@example.com, role: reader, className: monitored}
`, expiresAt)
	if _, err := e.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey/short", "-n", "monitoring", "--timeout=15s")
	short := e.secretKey("monitoring", "short")
	for _, k := range []string{"apikey/tracked", "apikey/gone"} {
		e.kubectl("wait", "--for=condition=Ready", k, "-n", "monitoring", "--timeout=60s")
	}
	e.kubectl("patch", "apikey", "gone", "-n", "monitoring", "--type=merge", "-p", `{"spec":{"revoked":true}}`)
	// Created once tracked holds its owner's only place.
	if _, err := e.kubectlIn(`apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata: {name: waiting, namespace: monitoring}
spec: {displayName: Waiting, owner: a@example.com, role: reader, className: monitored}
`, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Refused", "apikey/waiting", "-n", "monitoring", "--timeout=60s")
	e.kubectl("wait", "--for=condition=Stalled", "apikey/stalled", "-n", "monitoring", "--timeout=60s")

	hash := func() string {
		return e.kubectl("get", "apikey", "tracked", "-n", "monitoring", "-o", "jsonpath={.status.keyHash}")
	}
	first := hash()
	e.kubectl("delete", "secret", "tracked", "-n", "monitoring")
	e.eventually("the lost Secret is reissued", 30*time.Second, func() bool { h := hash(); return h != "" && h != first })
	reissued := hash()
	e.kubectl("patch", "apikey", "tracked", "-n", "monitoring", "--type=merge", "-p", `{"spec":{"rotation":{"request":"r1"}}}`)
	e.eventually("the key is rotated", 30*time.Second, func() bool {
		return e.kubectl("get", "apikey", "tracked", "-n", "monitoring", "-o", "jsonpath={.status.rotation.lastRotatedAt}") != "" && hash() != reissued
	})
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Expired", "apikey/short", "-n", "monitoring", "--timeout=60s")

	leader, verifier := e.leader(), e.verifiers[0]
	raw := e.secretKey("monitoring", "tracked")
	if got, err := verify(verifier, map[string]any{"key": raw, "namespace": "monitoring"}); err != nil || got["valid"] != true {
		e.t.Fatalf("verifying the tracked key: %v %v", got, err)
	}
	if got, err := verify(verifier, map[string]any{"key": short, "namespace": "monitoring"}); err != nil || got["code"] != "EXPIRED" {
		e.t.Fatalf("verifying the expired key: %v %v", got, err)
	}
	resp, err := http1.Post(verifier.URL+"/v1/keys/verify", "application/json", strings.NewReader(`{"key":`))
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		e.t.Fatalf("a malformed request: %d, want 400", resp.StatusCode)
	}

	// What Prometheus scrapes through the metrics Service: the leader
	// controller's and a verifier's endpoints, each a target of its own.
	var families map[string]*dto.MetricFamily
	e.eventually("the scrapes of the leader and a verifier show the keys' states", 30*time.Second, func() bool {
		families = map[string]*dto.MetricFamily{}
		for _, m := range []*harness.Component{leader, verifier} {
			text, err := metricsText(m)
			if err != nil {
				return false
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			scraped, err := parser.TextToMetricFamilies(strings.NewReader(text))
			if err != nil {
				e.t.Fatalf("parsing the scrape: %v", err)
			}
			for name, f := range scraped {
				if have, ok := families[name]; ok {
					have.Metric = append(have.Metric, f.Metric...)
				} else {
					families[name] = f
				}
			}
		}
		for name, labels := range map[string]map[string]string{
			"keywarden_apikey_phase":                        {"name": "tracked", "phase": "Active"},
			"keywarden_apikey_last_used_timestamp_seconds":  {"name": "tracked"},
			"keywarden_apikey_expiration_timestamp_seconds": {"name": "short"},
			"keywarden_key_rotations_total":                 {"class": "monitored"},
			"keywarden_key_reissues_total":                  {"class": "monitored"},
			"keywarden_key_expiries_total":                  {"class": "monitored"},
			"keywarden_key_refusals_total":                  {"class": "monitored"},
			"keywarden_apikeys_stalled":                     {"reason": "RoleNotAllowed"},
		} {
			labels["namespace"] = "monitoring"
			if !hasSeries(families[name], labels) {
				return false
			}
		}
		return true
	})

	used := map[string][]string{}
	alerts, err := harness.AlertQueries("../..")
	if err != nil {
		e.t.Fatal(err)
	}
	for alert, expr := range alerts {
		for _, n := range harness.MetricNames(expr) {
			used[n] = append(used[n], "alert "+alert)
		}
	}
	panels, err := harness.DashboardQueries("../..")
	if err != nil {
		e.t.Fatal(err)
	}
	for title, exprs := range panels {
		for _, expr := range exprs {
			for _, n := range harness.MetricNames(expr) {
				used[n] = append(used[n], "panel "+title)
			}
		}
	}
	var missing []string
	for n, where := range used {
		if _, ok := families[n]; !ok {
			missing = append(missing, fmt.Sprintf("%s (%s)", n, strings.Join(where, ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		e.t.Fatalf("the alerts and the dashboard read metrics neither the controller nor the verifier exports:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(used) < 10 {
		e.t.Fatalf("only %d metrics read by the alerts and the dashboard", len(used))
	}
	e.note("monitoring: the leader controller and a verifier export all %d metrics the %d alerts and %d dashboard panels read, with the series of keys tracked, refused, stalled, expired, revoked, reissued and rotated",
		len(used), len(alerts), len(panels))
}

// hasSeries reports whether the family has a series with these labels.
func hasSeries(f *dto.MetricFamily, labels map[string]string) bool {
	if f == nil {
		return false
	}
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if match {
			return true
		}
	}
	return false
}
