package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Monitoring files, relative to the repository's root.
const (
	AlertsFile    = "config/prometheus/alerts.yaml"
	AlertTests    = "config/prometheus/alerts_test.yaml"
	DashboardFile = "config/grafana/keywarden-dashboard.json"
)

// RuleGroups reads the PrometheusRule's spec: a Prometheus rule file.
func RuleGroups(root string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, AlertsFile))
	if err != nil {
		return nil, err
	}
	var rule struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &rule); err != nil {
		return nil, err
	}
	if rule.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("%s holds a %q, not a PrometheusRule", AlertsFile, rule.Kind)
	}
	return yaml.Marshal(rule.Spec)
}

// DashboardQueries returns every query of the Grafana dashboard, by panel
// title, with Grafana's variables replaced by what Prometheus accepts.
func DashboardQueries(root string) (map[string][]string, error) {
	b, err := os.ReadFile(filepath.Join(root, DashboardFile))
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*")
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out[p.Title] = append(out[p.Title], vars.Replace(t.Expr))
		}
	}
	return out, nil
}

// AlertQueries returns the expression of each alert, by name.
func AlertQueries(root string) (map[string]string, error) {
	b, err := RuleGroups(root)
	if err != nil {
		return nil, err
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out, nil
}

var metricName = regexp.MustCompile(`\b(keywarden|controller_runtime|workqueue)_[a-z0-9_]+\b`)

// MetricNames returns the names of the Keywarden, controller-runtime and
// workqueue metrics an expression reads, a histogram's series by the
// histogram's name.
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	for _, n := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, "_seconds"+suffix) {
				n = strings.TrimSuffix(n, suffix)
			}
		}
		seen[n] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
