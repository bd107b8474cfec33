/*
Copyright 2026 The m2m-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package monitoring_test checks config/monitoring: the alert rules with Prometheus's own
// tools (promtool check rules, promtool test rules on alerts_test.yaml), and that every metric
// an alert or a dashboard query names is one the code registers, in the real registries of the
// token server and of the controller (controller-runtime's included).
//
// The Prometheus tools are built by `make promtool` (hack/promql pins the version); `make test`
// and `make test-alerts` pass their paths in M2M_PROMTOOL and M2M_PROMQL_METRICS. Without them
// (a bare `go test`) these tests are skipped.
package monitoring_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// The controller's own metrics register when their packages load, as in the binary.
	_ "github.com/m2m-dev/m2m-operator/controllers"
	_ "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	_ "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/install"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// prometheusSeries are the series Prometheus itself makes for every target.
var prometheusSeries = map[string]bool{"up": true}

// tool returns the path in the environment variable, or skips the test.
func tool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s is not set: run `make test-alerts` (or `make test`), which builds the Prometheus tools", env)
	}
	return p
}

func run(t *testing.T, stdin io.Reader, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertRules runs promtool's checks and the rule unit tests.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "M2M_PROMTOOL")
	if out, err := run(t, nil, promtool, "check", "rules", "alerts.yaml"); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := run(t, nil, promtool, "test", "rules", "alerts_test.yaml"); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestEveryAlertHasAFiringAndANonFiringCase: alerts_test.yaml covers each alert of alerts.yaml
// with at least one case expecting it and one expecting nothing.
func TestEveryAlertHasAFiringAndANonFiringCase(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	data, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Not strict: promtool's format has fields this test does not read.
	if err := yaml.Unmarshal(data, &tests); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := alertRules(t)
	if len(alerts) == 0 {
		t.Fatal("no alert in alerts.yaml")
	}
	for _, r := range alerts {
		if !firing[r.Alert] || !quiet[r.Alert] {
			t.Errorf("alert %s: firing case %v, non-firing case %v; want both", r.Alert, firing[r.Alert], quiet[r.Alert])
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[k] == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, k)
			}
		}
		if r.Labels["severity"] == "" {
			t.Errorf("alert %s has no severity label", r.Alert)
		}
	}
}

// TestRunbooksExist: each alert's runbook_url points at a section of docs/troubleshooting.md.
func TestRunbooksExist(t *testing.T) {
	doc, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	const prefix = "https://github.com/m2m-dev/m2m-operator/blob/main/docs/troubleshooting.md#"
	for _, r := range alertRules(t) {
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], prefix)
		if !ok || !anchors[anchor] {
			t.Errorf("alert %s: runbook_url %q is not a section of docs/troubleshooting.md", r.Alert, r.Annotations["runbook_url"])
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces to dashes, punctuation
// dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestQueriesNameOnlyRegisteredMetrics: every metric an alert or a dashboard query names is
// registered by the token server or the controller (histograms with their _bucket, _sum and
// _count series).
func TestQueriesNameOnlyRegisteredMetrics(t *testing.T) {
	parse := tool(t, "M2M_PROMQL_METRICS")
	registered := registeredMetrics(t)
	exprs := append(alertExprs(t), dashboardExprs(t)...)
	used := metricsOf(t, parse, exprs)
	if len(used) < 20 {
		t.Fatalf("only %d metrics named by %d queries: the extraction is broken", len(used), len(exprs))
	}
	if unknown := unknownMetrics(used, registered); len(unknown) > 0 {
		t.Errorf("queries name metrics the code does not register:\n  %s", strings.Join(unknown, "\n  "))
	}
}

// TestUnknownMetricIsCaught: the check above reports a misspelt metric (so that its passing
// means something).
func TestUnknownMetricIsCaught(t *testing.T) {
	parse := tool(t, "M2M_PROMQL_METRICS")
	used := metricsOf(t, parse, []string{`sum(rate(m2m_tokenserver_tokens_isued_total[5m])) / sum(rate(m2m_tokenserver_token_request_duration_seconds_count[5m]))`})
	unknown := unknownMetrics(used, registeredMetrics(t))
	if len(unknown) != 1 || !strings.HasPrefix(unknown[0], "m2m_tokenserver_tokens_isued_total") {
		t.Errorf("unknown metrics %q, want exactly m2m_tokenserver_tokens_isued_total", unknown)
	}
}

func unknownMetrics(used map[string][]string, registered map[string]bool) []string {
	var unknown []string
	for name, where := range used {
		if !registered[name] && !prometheusSeries[name] {
			unknown = append(unknown, name+" (in "+where[0]+")")
		}
	}
	sort.Strings(unknown)
	return unknown
}

type rule struct {
	Alert       string            `json:"alert"`
	For         string            `json:"for"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	var file struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	readYAML(t, "alerts.yaml", &file)
	var rules []rule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func alertExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, r := range alertRules(t) {
		exprs = append(exprs, r.Expr)
	}
	return exprs
}

// grafanaVariables are the dashboard's interval variables, replaced by a duration for parsing
// (the other variables appear only inside label values, where any string parses).
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// labelValues matches a Grafana variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// dashboardExprs returns every query of dashboard.json: each panel's targets (rows' nested
// panels too), and the metric of each label_values variable as a bare selector.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("dashboard.json panel: %v", err)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has a target without expr", p.Title)
					continue
				}
				exprs = append(exprs, grafanaVariables.Replace(tg.Expr))
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("dashboard variable %s: query %v is not label_values(metric, label)", v.Name, v.Query)
			continue
		}
		exprs = append(exprs, m[1])
	}
	if len(exprs) == 0 {
		t.Fatal("no query in dashboard.json")
	}
	return exprs
}

// metricsOf parses the expressions with Prometheus's parser (promql-metrics) and returns each
// metric named, with the expressions naming it. An expression that does not parse fails the test.
func metricsOf(t *testing.T, parse string, exprs []string) map[string][]string {
	t.Helper()
	in, err := json.Marshal(exprs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(parse)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("promql-metrics: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Expr    string   `json:"expr"`
		Metrics []string `json:"metrics"`
		Error   string   `json:"error"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("promql-metrics output: %v", err)
	}
	used := map[string][]string{}
	for _, r := range results {
		if r.Error != "" {
			t.Errorf("query does not parse: %s\n  %s", r.Error, r.Expr)
		}
		for _, m := range r.Metrics {
			used[m] = append(used[m], r.Expr)
		}
	}
	return used
}

// registeredMetrics returns the series names the code registers: the token server's registry
// (its own metrics, Go, process and build info) and the controller's (controller-runtime's
// registry, which holds controller-runtime's, client-go's, the Go and process collectors and
// ours). Names come from the collectors' descriptions, so that a vector with no series yet
// counts; a histogram or summary, known by what a gather returns, adds its _bucket, _sum and
// _count series.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ts, err := tokenserver.New(tokenserver.Options{AuditLog: io.Discard, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, ok := ctrlmetrics.Registry.(prometheus.Collector)
	if !ok {
		t.Fatalf("the controller-runtime registry %T does not describe its collectors", ctrlmetrics.Registry)
	}
	names := map[string]bool{}
	for _, c := range []prometheus.Collector{ts.MetricsRegistry(), ctrl} {
		for _, n := range describedNames(t, c) {
			names[n] = true
		}
	}
	for _, g := range []prometheus.Gatherer{ts.MetricsRegistry(), ctrlmetrics.Registry} {
		families, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			names[f.GetName()] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				names[f.GetName()+"_bucket"] = true
				fallthrough
			case dto.MetricType_SUMMARY:
				names[f.GetName()+"_sum"], names[f.GetName()+"_count"] = true, true
			}
		}
	}
	for _, must := range []string{"m2m_tokenserver_tokens_issued_total", "controller_runtime_reconcile_total", "m2m_signing_key_secret_recreated_total"} {
		if !names[must] {
			t.Fatalf("%s is not among the registered metrics: the registries were not read", must)
		}
	}
	return names
}

// descName reads the metric name out of a prometheus.Desc, which exposes it only in String.
var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

func describedNames(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names = append(names, m[1])
	}
	return names
}

// TestKustomizationShipsTheSources: `kubectl apply -k config/monitoring` creates the
// PrometheusRule with exactly the groups of alerts.yaml (prometheusrule.yaml is generated, never
// edited) and the dashboard ConfigMap with exactly dashboard.json; config/default has neither
// (the Prometheus Operator's CRDs may not exist).
func TestKustomizationShipsTheSources(t *testing.T) {
	m, err := install.Render(".", "")
	if err != nil {
		t.Fatal(err)
	}
	var source map[string]any
	data, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &source); err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range m.Resources() {
		kinds[r.GetKind()]++
		if r.GetNamespace() != "m2m-system" {
			t.Errorf("%s %s in namespace %q, want m2m-system", r.GetKind(), r.GetName(), r.GetNamespace())
		}
		obj, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "PrometheusRule":
			spec, _ := obj["spec"].(map[string]any)
			if !reflect.DeepEqual(spec["groups"], source["groups"]) {
				t.Errorf("PrometheusRule %s does not hold the groups of alerts.yaml: run `make generate`", r.GetName())
			}
		case "ConfigMap":
			cm, _ := obj["data"].(map[string]any)
			if cm["m2m-operator.json"] != string(dashboard) || r.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("ConfigMap %s does not hold dashboard.json with label grafana_dashboard=1", r.GetName())
			}
		}
	}
	if kinds["PrometheusRule"] != 1 || kinds["ConfigMap"] != 1 || kinds["ServiceMonitor"] != 2 {
		t.Errorf("config/monitoring renders %v, want 1 PrometheusRule, 1 ConfigMap, 2 ServiceMonitors", kinds)
	}
	def, err := install.Render("../default", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range def.Resources() {
		if r.GetKind() == "PrometheusRule" || r.GetKind() == "ServiceMonitor" {
			t.Errorf("config/default holds %s %s: it must install where the Prometheus Operator is absent", r.GetKind(), r.GetName())
		}
	}
}
