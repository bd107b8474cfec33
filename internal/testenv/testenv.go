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

// Package testenv starts a real control plane (kube-apiserver + etcd via envtest) with this
// project's CRDs installed, for tests in every package.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/m2m-dev/m2m-operator/internal/controlplane"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Scheme returns a scheme with the built-in types and this project's API.
func Scheme() *runtime.Scheme { return scheme.New() }

// AssetsDir finds kube-apiserver and etcd: KUBEBUILDER_ASSETS (which must hold both: the error
// says what is missing and how to fix it), else hack/setup-envtest.sh (which uses its cache, or
// builds them once).
func AssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, controlplane.CheckEnv(d)
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "setup-envtest.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/setup-envtest.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Kubectl returns a kubectl for the tests that run the documented commands: $M2M_KUBECTL, else
// the one `hack/setup-envtest.sh kubectl` builds once into the envtest cache, of the control
// plane's version, so that no kubectl need be installed.
func Kubectl() (string, error) {
	if p := os.Getenv("M2M_KUBECTL"); p != "" {
		return p, nil
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "setup-envtest.sh"), "kubectl")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/setup-envtest.sh kubectl: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Helm returns the path of the Helm binary the tests run: $M2M_HELM (make test and make
// test-e2e set it), else the one `make helm` builds once into the tool cache, built now if absent
// (as Kubectl builds kubectl).
func Helm() (string, error) {
	if p := os.Getenv("M2M_HELM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("M2M_HELM: %w", err)
		}
		return p, nil
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", RepoRoot(), "helm-path")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("make helm-path: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// New returns an envtest environment with the CRDs from config/crd/bases.
func New() (*envtest.Environment, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: dir,
		Scheme:                Scheme(),
	}, nil
}

// Start starts a new environment and returns it with its rest config.
func Start() (*envtest.Environment, *rest.Config, error) {
	env, err := New()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting envtest control plane: %w", err)
	}
	return env, cfg, nil
}
