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
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// releaseName is the release of every test: the names of the objects do not depend on it.
const releaseName = "m2m-operator"

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// chartDir is the chart under test.
func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "m2m-operator") }

// helmPath returns the Helm binary the tests run: $M2M_HELM (make test sets it), else the one
// `make helm` builds once into the tool cache (built now if absent, as hack/setup-envtest.sh
// builds kubectl). Only with M2M_SKIP_HELM=1 and no M2M_HELM is the test skipped instead (a
// machine without the module proxy); CI never sets it.
func helmPath(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() { helmBin, helmErr = findHelm() })
	if helmErr != nil {
		if os.Getenv("M2M_SKIP_HELM") == "1" {
			t.Skipf("no Helm binary (%v) and M2M_SKIP_HELM=1: the chart's tests did not run", helmErr)
		}
		t.Fatalf("no Helm binary: %v (run `make helm`, set M2M_HELM, or M2M_SKIP_HELM=1 to skip these tests)", helmErr)
	}
	return helmBin
}

func findHelm() (string, error) {
	if os.Getenv("M2M_HELM") == "" && os.Getenv("M2M_SKIP_HELM") == "1" {
		return "", errors.New("M2M_HELM is not set")
	}
	return testenv.Helm()
}

// helm runs Helm with its own cache, config and data directories (nothing of the user's) and
// returns its standard output; a failure carries standard error.
func helm(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmPath(t), args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// template runs `helm template` of the chart with args (values) and returns its objects.
func template(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, nil, append([]string{"template", releaseName, chartDir(), "--include-crds"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// decodeObjects decodes a YAML stream into objects, through JSON so that numbers are int64 as in
// objects read from the API server (and as install.Objects returns them).
func decodeObjects(stream string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the YAML stream: %w", err)
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("decoding %q: %w", doc, err)
		}
		if s := strings.TrimSpace(string(data)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", data, err)
		}
		out = append(out, u)
	}
}

// key names an object: group, kind, namespace, name.
func key(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return fmt.Sprintf("%s/%s %s/%s", gvk.Group, gvk.Kind, u.GetNamespace(), u.GetName())
}

// find returns the object of kind and name, failing the test when there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// containerArgs returns the args of the first container of the Deployment name.
// containerCommand returns the command of the first container of Deployment name.
func containerCommand(t *testing.T, objs []*unstructured.Unstructured, name string) []string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(find(t, objs, "Deployment", name).Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatalf("Deployment %s has no container", name)
	}
	cmd, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "command")
	return cmd
}

func containerArgs(t *testing.T, objs []*unstructured.Unstructured, name string) []string {
	t.Helper()
	d := find(t, objs, "Deployment", name)
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatalf("Deployment %s has no container", name)
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}
