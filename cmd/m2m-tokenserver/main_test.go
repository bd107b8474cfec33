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

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoController: the point of this binary is what it leaves out. Were a package of the
// controller side imported again (through internal/cli, say), every token server replica would
// map and touch it again (about 18 MiB of resident memory, docs/performance.md).
func TestLinksNoController(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/m2m-dev/m2m-operator/controllers",
		"github.com/m2m-dev/m2m-operator/internal/cli",
		"github.com/m2m-dev/m2m-operator/internal/controlplane",
		"sigs.k8s.io/controller-runtime/pkg/manager",
		"sigs.k8s.io/controller-runtime/pkg/envtest",
		"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f {
				t.Errorf("m2m-tokenserver links %s", pkg)
			}
		}
	}
}
