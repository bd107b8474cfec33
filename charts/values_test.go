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

package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// allValues sets every value of the chart (relative paths would be the repository root's: helm runs there).
var allValues = filepath.Join(testenv.RepoRoot(), "charts", "testdata", "all-values.yaml")

// declaredFlags returns the flags of `m2m <command>` as docs/flags.md lists them (generated
// from the flag definitions by `make generate`, checked fresh by CI).
func declaredFlags(t *testing.T, heading string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "flags.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("docs/flags.md has no section %s", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(section, -1) {
		flags[m[1]] = true
	}
	return flags
}

// TestEveryValueReachesItsFlag renders the chart with every value set (testdata/all-values.yaml)
// and checks that each reaches the flag it stands for, on the component(s) it is for, and that
// every flag the chart passes is one the binary declares.
func TestEveryValueReachesItsFlag(t *testing.T) {
	objs := template(t, "-f", allValues)
	want := map[string][]string{
		"m2m-controller": {
			"controller", "--leader-elect", "--credentials-namespace=m2m-credentials",
			"--issuer=https://auth.example.com", "--token-url=https://auth.example.com/oauth2/token",
			"--tokenserver-tls", "--tls-service-name=m2m-tokenserver",
			"--signing-key-algorithm=EdDSA", "--signing-key-rotation-interval=360h",
			"--signing-key-publish-ahead=2h", "--signing-key-leeway=10m",
			"--signing-key-max-token-ttl=12h", "--signing-key-jwks-max-age=2m",
			"--tls-cluster-domain=example.internal", "--tls-ca-validity=87600h", "--tls-serving-validity=720h",
			"--max-concurrent-reconciles=32", "--kube-api-qps=250.5", "--kube-api-burst=2000",
			"--zap-log-level=debug", "--zap-encoder=console", "--zap-time-encoding=rfc3339",
		},
		"m2m-tokenserver": {
			"--credentials-namespace=m2m-credentials", "--issuer=https://auth.example.com",
			"--tls-secret=m2m-tokenserver-tls", "--default-token-ttl=10m", "--max-token-ttl=12h",
			"--jwks-max-age=2m", "--rate-limit=50", "--rate-burst=200", "--auth-failure-rate=0.5",
			"--auth-failure-burst=5", "--max-in-flight=4096", "--max-body-bytes=1048576",
			"--max-assertion-lifetime=30m", "--drain-delay=10s", "--dpop-proof-window=2m", "--dpop-nonce",
			"--zap-log-level=debug", "--zap-encoder=console", "--shutdown-timeout=20s",
		},
		"m2m-authz": {
			"authz", "--issuer=https://auth.example.com", "--issuer-ca-file=/etc/m2m/tokenserver-ca/ca.crt",
			"--addr=:8081", "--grpc-addr=:9002", "--audience-header=x-m2m-audience",
			"--host-audience=billing.example.com=billing.billing", "--host-audience=orders.example.com=https://orders.example.com",
			"--zap-log-level=debug", "--zap-encoder=console", "--shutdown-timeout=15s",
		},
	}
	for deployment, flags := range want {
		args := containerArgs(t, objs, deployment)
		for _, f := range flags {
			if !slices.Contains(args, f) {
				t.Errorf("%s: no %s in %q", deployment, f, args)
			}
		}
		// The controller runs `m2m controller`; the token server its own binary, m2m-tokenserver.
		heading, flags := "m2m "+args[0], args[1:]
		if cmd := containerCommand(t, objs, deployment); slices.Equal(cmd, []string{"/m2m-tokenserver"}) {
			heading, flags = "m2m-tokenserver", args
		}
		declared := declaredFlags(t, heading)
		for _, a := range flags {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !declared[name] {
				t.Errorf("%s passes %s, which `%s` does not declare (docs/flags.md)", deployment, a, heading)
			}
		}
	}

	for _, name := range []string{"m2m-controller", "m2m-tokenserver", "m2m-authz"} {
		d := find(t, objs, "Deployment", name)
		pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
		c := pod["containers"].([]any)[0].(map[string]any)
		if got, want := c["image"], "registry.example.com/m2m-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; got != want {
			t.Errorf("%s: image %v, want %s (the digest wins over the tag)", name, got, want)
		}
		if c["imagePullPolicy"] != "IfNotPresent" {
			t.Errorf("%s: imagePullPolicy %v", name, c["imagePullPolicy"])
		}
		for _, field := range []string{"imagePullSecrets", "tolerations", "priorityClassName", "nodeSelector", "securityContext"} {
			if pod[field] == nil {
				t.Errorf("%s: no %s in the pod spec", name, field)
			}
		}
		if d.GetLabels()["team"] != "platform" || d.GetAnnotations()["owner"] != "platform@example.com" {
			t.Errorf("%s: commonLabels/commonAnnotations not applied: %v %v", name, d.GetLabels(), d.GetAnnotations())
		}
		podLabels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		if podLabels["sidecar.istio.io/inject"] != "false" {
			t.Errorf("%s: podLabels not applied: %v", name, podLabels)
		}
	}
	ctrl := find(t, objs, "Deployment", "m2m-controller")
	if r, _, _ := unstructured.NestedInt64(ctrl.Object, "spec", "replicas"); r != 3 {
		t.Errorf("controller replicas %d, want 3", r)
	}
	// With the HPA, the token server's Deployment has no replicas: the HPA owns its size.
	if _, found, _ := unstructured.NestedFieldNoCopy(find(t, objs, "Deployment", "m2m-tokenserver").Object, "spec", "replicas"); found {
		t.Error("the token server's Deployment sets replicas although the HPA owns its size")
	}
	hpa := find(t, objs, "HorizontalPodAutoscaler", "m2m-tokenserver")
	if minR, _, _ := unstructured.NestedInt64(hpa.Object, "spec", "minReplicas"); minR != 4 {
		t.Errorf("HPA minReplicas %d, want 4", minR)
	}
	if r, _, _ := unstructured.NestedInt64(find(t, objs, "Deployment", "m2m-authz").Object, "spec", "replicas"); r != 3 {
		t.Errorf("authz replicas %d, want 3", r)
	}
	authzContainers, _, _ := unstructured.NestedSlice(find(t, objs, "Deployment", "m2m-authz").Object, "spec", "template", "spec", "containers")
	if mem, _, _ := unstructured.NestedString(authzContainers[0].(map[string]any), "resources", "limits", "memory"); mem != "512Mi" {
		t.Errorf("authz memory limit %q, want 512Mi", mem)
	}
	svcPorts, _, _ := unstructured.NestedSlice(find(t, objs, "Service", "m2m-authz").Object, "spec", "ports")
	if len(svcPorts) != 2 || svcPorts[0].(map[string]any)["port"] != int64(8081) || svcPorts[1].(map[string]any)["port"] != int64(9002) {
		t.Errorf("authz Service ports %v, want 8081 and 9002", svcPorts)
	}
	if mu, _, _ := unstructured.NestedString(find(t, objs, "PodDisruptionBudget", "m2m-authz").Object, "spec", "maxUnavailable"); mu != "50%" {
		t.Errorf("authz PDB maxUnavailable %q, want 50%%", mu)
	}
	pdb := find(t, objs, "PodDisruptionBudget", "m2m-controller")
	if mu, _, _ := unstructured.NestedString(pdb.Object, "spec", "maxUnavailable"); mu != "50%" {
		t.Errorf("controller PDB maxUnavailable %q, want 50%%", mu)
	}
}

// TestToggles: the HPA, PDBs, NetworkPolicies and namespaces go with their values, and without
// the HPA the token server's size is the value.
func TestToggles(t *testing.T) {
	objs := template(t, "--set", "tokenServer.autoscaling.enabled=false,tokenServer.replicas=5,networkPolicy.enabled=false,"+
		"controller.podDisruptionBudget.enabled=false,tokenServer.podDisruptionBudget.enabled=false,namespaces.create=false")
	for _, kind := range []string{"HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Namespace"} {
		for _, u := range objs {
			if u.GetKind() == kind {
				t.Errorf("%s %s rendered although disabled", kind, u.GetName())
			}
		}
	}
	if r, _, _ := unstructured.NestedInt64(find(t, objs, "Deployment", "m2m-tokenserver").Object, "spec", "replicas"); r != 5 {
		t.Errorf("token server replicas %d without the HPA, want 5", r)
	}
	// Without TLS: plain HTTP, the issuer says so, the Service listens on 80, no TLS flags.
	objs = template(t, "--set", "tls.enabled=false")
	for name, gone := range map[string]string{"m2m-controller": "--tokenserver-tls", "m2m-tokenserver": "--tls-secret=m2m-tokenserver-tls"} {
		args := containerArgs(t, objs, name)
		if slices.Contains(args, gone) || !slices.Contains(args, "--issuer=http://m2m-tokenserver.m2m-system.svc") {
			t.Errorf("%s without TLS: args %q", name, args)
		}
	}
	ports, _, _ := unstructured.NestedSlice(find(t, objs, "Service", "m2m-tokenserver").Object, "spec", "ports")
	if p := ports[0].(map[string]any); p["port"] != int64(80) || p["targetPort"] != "http" {
		t.Errorf("token server Service without TLS: %v", p)
	}
}

// TestSchemaRefusesBadValues: values.schema.json refuses, with a message naming the value, what
// would otherwise reach a flag and crash the pod at start, or be silently ignored (a typo).
func TestSchemaRefusesBadValues(t *testing.T) {
	cases := map[string]struct{ set, message string }{
		"unknown algorithm":   {"signingKeys.algorithm=HS256", "at '/signingKeys/algorithm': value must be one of '', 'ES256', 'RS256', 'EdDSA'"},
		"misspelt key":        {"tokenserver.replicas=3", "additional properties 'tokenserver' not allowed"},
		"misspelt nested key": {"tokenServer.rateLimits.rate=5", "at '/tokenServer': additional properties 'rateLimits' not allowed"},
		"not a duration":      {"tokens.maxTTL=15 minutes", "at '/tokens/maxTTL': '15 minutes' does not match pattern"},
		"wrong type":          {"controller.replicas=two", "at '/controller/replicas': got string, want integer"},
		"bad pull policy":     {"image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"},
		"negative rate":       {"tokenServer.rateLimit.rate=-1", "at '/tokenServer/rateLimit/rate'"},
		"not a URL":           {"issuer=auth.example.com", "at '/issuer': 'auth.example.com' does not match pattern"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := helm(t, nil, "template", releaseName, chartDir(), "--set", c.set)
			if err == nil {
				t.Fatalf("--set %s was accepted", c.set)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), c.message) {
				t.Errorf("--set %s: the error does not say %q:\n%v", c.set, c.message, err)
			}
		})
	}
}

// TestChartLint runs `helm lint --strict` (a warning fails) with the defaults and with every
// value set, as `make helm-lint` does.
func TestChartLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", allValues}} {
		out, err := helm(t, nil, append([]string{"lint", "--strict", chartDir()}, args...)...)
		if err != nil {
			t.Errorf("helm lint --strict %q: %v\n%s", args, err, out)
		}
	}
}

// TestMonitoring: with the toggles on, the PrometheusRule carries the groups of files/alerts.yaml,
// the dashboard ConfigMap the JSON of files/dashboard.json with the Grafana sidecar's label, and
// each ServiceMonitor selects a metrics Service by a port it has.
func TestMonitoring(t *testing.T) {
	objs := template(t, "-f", allValues)
	var alerts map[string]any
	data, err := os.ReadFile(filepath.Join(chartDir(), "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &alerts); err != nil {
		t.Fatal(err)
	}
	rule := find(t, objs, "PrometheusRule", "m2m-operator")
	groups, _, _ := unstructured.NestedFieldCopy(rule.Object, "spec", "groups")
	if !sameJSON(t, alerts["groups"], groups) {
		t.Errorf("the PrometheusRule's groups differ from files/alerts.yaml: %v", groups)
	}
	if rule.GetLabels()["release"] != "prometheus" {
		t.Errorf("prometheusRule.labels not applied: %v", rule.GetLabels())
	}

	cm := find(t, objs, "ConfigMap", "m2m-operator-dashboard")
	dashboard, err := os.ReadFile(filepath.Join(chartDir(), "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "m2m-operator.json"); got != strings.TrimRight(string(dashboard), "\n") {
		t.Errorf("the dashboard ConfigMap does not hold files/dashboard.json: %q", got)
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetNamespace() != "monitoring" {
		t.Errorf("dashboard ConfigMap: labels %v, namespace %s", cm.GetLabels(), cm.GetNamespace())
	}

	for _, component := range []string{"controller", "tokenserver"} {
		sm := find(t, objs, "ServiceMonitor", "m2m-"+component)
		selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		port := endpoints[0].(map[string]any)["port"]
		matched := 0
		for _, svc := range objs {
			if svc.GetKind() != "Service" || !labelsMatch(svc.GetLabels(), selector) {
				continue
			}
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			for _, p := range ports {
				if p.(map[string]any)["name"] == port {
					matched++
				}
			}
		}
		if matched != 1 {
			t.Errorf("ServiceMonitor m2m-%s selects %d Service ports named %v, want 1", component, matched, port)
		}
	}
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// sameJSON reports whether a and b encode to the same JSON (maps by sorted keys; a number the
// same whether decoded as int64 or float64).
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestChartCopiesAreFresh: what the chart copies from config/ (hack/chart-sync.sh, run by `make
// generate`) is identical to its source. CI's freshness check catches a stale copy too; this
// says which file and how to fix it.
func TestChartCopiesAreFresh(t *testing.T) {
	root := testenv.RepoRoot()
	pairs := map[string]string{
		"config/rbac/role.yaml":                 "files/rbac/controller.yaml",
		"config/rbac/leader_election_role.yaml": "files/rbac/leader-election.yaml",
		"config/rbac/tokenserver/role.yaml":     "files/rbac/tokenserver.yaml",
		"config/authz/role.yaml":                "files/rbac/authz.yaml",
	}
	for _, f := range []string{"alerts.yaml", "dashboard.json"} {
		if _, err := os.Stat(filepath.Join(root, "config", "monitoring", f)); err == nil {
			pairs["config/monitoring/"+f] = "files/" + f
		}
	}
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds {
		pairs["config/crd/bases/"+filepath.Base(c)] = "crds/" + filepath.Base(c)
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir(), "crds", "*"))
	if len(copies) != len(crds) {
		t.Errorf("charts/m2m-operator/crds has %d files, config/crd/bases %d: run make generate", len(copies), len(crds))
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartDir(), dst))
		if err != nil || string(a) != string(b) {
			t.Errorf("charts/m2m-operator/%s is not a copy of %s: run make generate", dst, src)
		}
	}
}
