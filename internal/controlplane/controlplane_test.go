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

package controlplane

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDirExplainsAWrongKubebuilderAssets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		present map[string]os.FileMode // binary -> mode
		missing []string
	}{
		{"empty", nil, []string{"kube-apiserver", "etcd"}},
		{"no etcd", map[string]os.FileMode{"kube-apiserver": 0o755}, []string{"etcd"}},
		{"not executable", map[string]os.FileMode{"kube-apiserver": 0o755, "etcd": 0o644}, []string{"etcd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for b, mode := range tc.present {
				if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), mode); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("KUBEBUILDER_ASSETS", dir)
			_, err := Dir()
			if err == nil {
				t.Fatal("Dir accepted a directory without the binaries")
			}
			msg := err.Error()
			for _, want := range []string{"KUBEBUILDER_ASSETS=" + dir, "unset KUBEBUILDER_ASSETS", "make envtest"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			for _, b := range Binaries {
				named := strings.Contains(msg, filepath.Join(dir, b))
				want := slices.Contains(tc.missing, b)
				if named != want {
					t.Errorf("message %q: names %s: %v, want %v", msg, b, named, want)
				}
			}
		})
	}
}

func TestDirAcceptsACompleteDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, b := range Binaries {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	got, err := Dir()
	if err != nil || got != dir {
		t.Fatalf("Dir() = %q, %v; want %q", got, err, dir)
	}
}

func TestDirWithoutCacheSaysHowToBuildIt(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", "")
	t.Setenv("M2M_ENVTEST_CACHE", t.TempDir())
	_, err := Dir()
	if err == nil || !strings.Contains(err.Error(), "make envtest") || !strings.Contains(err.Error(), CacheDir()) {
		t.Fatalf("Dir() error = %v; want one naming %s and `make envtest`", err, CacheDir())
	}
}
