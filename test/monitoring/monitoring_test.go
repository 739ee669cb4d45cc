// Package monitoring checks the alerts and the dashboard Keywarden ships:
// promtool validates the PrometheusRule's rules and runs their unit tests
// (config/prometheus/alerts_test.yaml), and validates every query of the
// Grafana dashboard. make test provides promtool (PROMTOOL); the e2e suite
// checks that every metric they read is one a running manager exports.
package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"keywarden.dev/keywarden/test/harness"
)

const root = "../.."

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("PROMTOOL")
	if bin == "" {
		t.Fatal("PROMTOOL is not set: run make test, which builds promtool into bin/")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRules(t *testing.T) {
	rules, err := harness.RuleGroups(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(root, harness.AlertTests))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", filepath.Join(dir, "alerts.rules.yaml"))
	out := promtool(t, "test", "rules", filepath.Join(dir, "alerts_test.yaml"))
	t.Log(out)

	// Every alert is unit-tested: it fires somewhere in alerts_test.yaml.
	alerts, err := harness.AlertQueries(root)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &f); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for name := range alerts {
		if !fires[name] || !quiet[name] {
			t.Errorf("alert %s: tested firing %v, tested quiet %v; want both", name, fires[name], quiet[name])
		}
	}
	if len(alerts) < 9 {
		t.Errorf("%d alerts, want at least the 9 the README lists", len(alerts))
	}
}

// TestDashboardQueries runs every query of the dashboard through promtool
// as a recording rule, which parses it as Prometheus would.
func TestDashboardQueries(t *testing.T) {
	queries, err := harness.DashboardQueries(root)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for title, exprs := range queries {
		for i, e := range exprs {
			if len(harness.MetricNames(e)) == 0 {
				t.Errorf("panel %q query %d reads no Keywarden or controller metric: %s", title, i, e)
			}
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d:%d", len(rules), i), Expr: e})
		}
	}
	if len(rules) < 10 {
		t.Fatalf("%d queries in the dashboard, want its panels' queries", len(rules))
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", file)
}
