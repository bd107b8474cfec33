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
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/m2m-dev/m2m-operator/internal/install"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// helmLabels are the labels the chart adds to every object and config/ does not: Helm's own.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// imagePlaceholder stands for both components' image, which the values choose.
const imagePlaceholder = "IMAGE"

// kustomizeObjects renders config/default as `make render` does.
func kustomizeObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := install.Objects(filepath.Join(testenv.RepoRoot(), "config", "default"), "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestChartMatchesKustomize is the one-source-of-truth check: `helm template` with the default
// values renders the same objects as `make render` (config/default), each object whole: every
// flag, port, probe, security context, RBAC rule, Service port and NetworkPolicy rule. The only
// differences allowed are Helm's labels and the image (a value); the CRDs are compared on their
// spec (crds/ holds config/crd/bases as generated; kustomize adds the foundation's labels).
func TestChartMatchesKustomize(t *testing.T) {
	want := kustomizeObjects(t)
	got := template(t)
	for _, d := range compareInstalls(want, got) {
		t.Error(d)
	}
}

// TestParityCheckHasTeeth shows that the comparison above catches what it is there for: a flag
// the chart passes and config/ does not, a missing RBAC verb, a NetworkPolicy port, an object
// only one side has.
func TestParityCheckHasTeeth(t *testing.T) {
	want := kustomizeObjects(t)
	cases := map[string]struct {
		args   []string
		mutate func([]*unstructured.Unstructured)
		in     string
	}{
		"a flag":         {args: []string{"--set", "tokenServer.rateLimit.rate=5"}, in: "apps/Deployment m2m-system/m2m-tokenserver: spec.template.spec.containers[0].args"},
		"an object":      {args: []string{"--set", "networkPolicy.enabled=false"}, in: "networking.k8s.io/NetworkPolicy m2m-system/m2m-controller: rendered by config/default only"},
		"a Service port": {args: []string{"--set", "tls.enabled=false"}, in: "/Service m2m-system/m2m-tokenserver: spec.ports[0]"},
		"an RBAC verb": {mutate: func(objs []*unstructured.Unstructured) {
			for _, u := range objs {
				if u.GetKind() == "ClusterRole" && u.GetName() == "m2m-controller" {
					rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
					rule := rules[len(rules)-1].(map[string]any)
					verbs := rule["verbs"].([]any)
					rule["verbs"] = verbs[:len(verbs)-1]
					_ = unstructured.SetNestedSlice(u.Object, rules, "rules")
				}
			}
		}, in: "rbac.authorization.k8s.io/ClusterRole /m2m-controller: rules["},
		"a NetworkPolicy rule": {args: []string{"--set", "networkPolicy.metricsNamespaceSelector.matchLabels.team=monitoring"}, in: "networking.k8s.io/NetworkPolicy m2m-system/m2m-tokenserver: spec.ingress[1].from[0].namespaceSelector.matchLabels"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := template(t, c.args...)
			if c.mutate != nil {
				c.mutate(got)
			}
			diffs := compareInstalls(want, got)
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, c.in) }) {
				t.Errorf("no difference reported at %q; reported: %q", c.in, diffs)
			}
		})
	}
}

// authzObjects returns the objects of m2m authz (config/authz names every one m2m-authz).
func authzObjects(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetName() == "m2m-authz" {
			out = append(out, u)
		}
	}
	return out
}

// TestAuthzChartMatchesKustomize: with authz.enabled=true the chart renders exactly the objects
// of the optional component config/authz (as `kubectl apply -k config/authz` installs them),
// each whole, and nothing of m2m authz without it (TestChartMatchesKustomize then holds).
func TestAuthzChartMatchesKustomize(t *testing.T) {
	want, err := install.Objects(filepath.Join(testenv.RepoRoot(), "config", "authz"), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("config/authz renders nothing")
	}
	for _, d := range compareInstalls(want, authzObjects(template(t, "--set", "authz.enabled=true"))) {
		t.Error(d)
	}
	if objs := authzObjects(template(t)); len(objs) > 0 {
		t.Errorf("the default values render %d objects of m2m authz; it is off by default", len(objs))
	}
	// The comparison has teeth: a flag, a port, an RBAC rule that differ are reported.
	for args, in := range map[string]string{
		"authz.audienceHeader=x-aud":  "apps/Deployment m2m-system/m2m-authz: spec.template.spec.containers[0].args",
		"authz.ports.grpc=9100":       "/Service m2m-system/m2m-authz: spec.ports[1].port",
		"networkPolicy.enabled=false": "networking.k8s.io/NetworkPolicy m2m-system/m2m-authz: rendered by config/default only",
	} {
		diffs := compareInstalls(want, authzObjects(template(t, "--set", "authz.enabled=true", "--set", args)))
		if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, in) }) {
			t.Errorf("--set %s: no difference reported at %q; reported: %q", args, in, diffs)
		}
	}
}

// compareInstalls returns every difference between the objects of config/default (want) and
// of the chart (got), after normalising what may differ.
func compareInstalls(want, got []*unstructured.Unstructured) []string {
	w, g := index(want), index(got)
	var diffs []string
	for _, k := range sortedKeys(w) {
		if _, ok := g[k]; !ok {
			diffs = append(diffs, k+": rendered by config/default only")
			continue
		}
		for _, d := range diff("", normalise(w[k]), normalise(g[k])) {
			diffs = append(diffs, k+": "+d)
		}
	}
	for _, k := range sortedKeys(g) {
		if _, ok := w[k]; !ok {
			diffs = append(diffs, k+": rendered by the chart only")
		}
	}
	return diffs
}

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := make(map[string]*unstructured.Unstructured, len(objs))
	for _, u := range objs {
		out[key(u)] = u
	}
	return out
}

func sortedKeys(m map[string]*unstructured.Unstructured) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// normalise returns the parts of u that must agree: Helm's labels removed, the image replaced by
// a placeholder; of a CRD, its name and spec.
func normalise(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	if c.GetKind() == "CustomResourceDefinition" {
		return map[string]any{"name": c.GetName(), "spec": c.Object["spec"]}
	}
	if labels := c.GetLabels(); labels != nil {
		for _, l := range helmLabels {
			delete(labels, l)
		}
		c.SetLabels(labels)
	}
	containers, found, _ := unstructured.NestedSlice(c.Object, "spec", "template", "spec", "containers")
	if found {
		for _, ctr := range containers {
			ctr.(map[string]any)["image"] = imagePlaceholder
		}
		_ = unstructured.SetNestedSlice(c.Object, containers, "spec", "template", "spec", "containers")
	}
	return c.Object
}

// diff lists the paths at which a and b differ, with both values.
func diff(path string, a, b any) []string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		var out []string
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			out = append(out, diff(join(path, k), av[k], bv[k])...)
		}
		return out
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			break
		}
		var out []string
		for i := range av {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	return []string{fmt.Sprintf("%s: config/default has %v, the chart %v", path, show(a), show(b))}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func show(v any) string {
	if v == nil {
		return "nothing"
	}
	return fmt.Sprintf("%v", v)
}
