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

// Command render prints the install (config/default by default) as YAML, the way
// `kubectl kustomize` does, with the image set: `make deploy IMG=...` pipes it to
// `kubectl apply --server-side`, and it is what to commit to a GitOps repository.
//
//	go run ./hack/render --image registry.example.com/m2m-operator:v0.1.0 [dir]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/m2m-dev/m2m-operator/internal/install"
)

func main() {
	image := flag.String("image", "", "image for both components (default: the one in config/default)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./hack/render [--image IMAGE] [DIR]\n\nRenders DIR (default config/default) as YAML.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	dir := "config/default"
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	if err := render(dir, *image); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func render(dir, image string) error {
	m, err := install.Render(dir, image)
	if err != nil {
		return err
	}
	out, err := m.AsYaml()
	if err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	_, err = os.Stdout.Write(out)
	return err
}
