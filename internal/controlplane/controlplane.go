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

// Package controlplane finds the kube-apiserver and etcd binaries of the envtest control plane
// that `m2m dev` and the tests run, and says in one message what is missing, where it looked and
// how to fix it, before envtest would retry starting a binary that is not there.
package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KubernetesVersion is the version of the control plane hack/setup-envtest.sh provides.
const KubernetesVersion = "1.37.2"

// Binaries are the programs a control plane directory must hold.
var Binaries = []string{"kube-apiserver", "etcd"}

// CacheDir is where hack/setup-envtest.sh caches the binaries: $M2M_ENVTEST_CACHE/<version>,
// else $XDG_CACHE_HOME (or ~/.cache)/m2m-operator/envtest/<version>.
func CacheDir() string {
	if root := os.Getenv("M2M_ENVTEST_CACHE"); root != "" {
		return filepath.Join(root, KubernetesVersion)
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "m2m-operator", "envtest", KubernetesVersion)
}

// Dir returns the directory to run the control plane from: $KUBEBUILDER_ASSETS when it is set,
// else the cache. Either must hold every binary; the error says which are missing and how to fix
// it.
func Dir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, CheckEnv(d)
	}
	d := CacheDir()
	if missing := Missing(d); len(missing) > 0 {
		return "", fmt.Errorf("%s: run `make envtest` (it builds kube-apiserver and etcd once, several minutes), or set KUBEBUILDER_ASSETS to a directory holding both",
			describe(d, missing))
	}
	return d, nil
}

// CheckEnv checks the directory named by KUBEBUILDER_ASSETS.
func CheckEnv(dir string) error {
	missing := Missing(dir)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("KUBEBUILDER_ASSETS=%s: %s: unset KUBEBUILDER_ASSETS to use the cache %s instead (`make envtest` fills it once and prints it)",
		dir, describe(dir, missing), CacheDir())
}

// Missing lists the binaries that dir does not hold as executable files.
func Missing(dir string) []string {
	var out []string
	for _, b := range Binaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			out = append(out, b)
		}
	}
	return out
}

func describe(dir string, missing []string) string {
	paths := make([]string, len(missing))
	for i, b := range missing {
		paths[i] = filepath.Join(dir, b)
	}
	return fmt.Sprintf("no %s (looked for %s)", strings.Join(missing, " and no "), strings.Join(paths, ", "))
}
