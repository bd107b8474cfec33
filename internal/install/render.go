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

// Package install renders the kustomize install (config/default) the way `kubectl kustomize`
// does, with the image set, so that `make deploy IMG=...` needs no kustomize binary and changes
// no file in the repository.
package install

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/pkg/util"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ImageName is the image name both Deployments carry after config/default (its images entry
// renames the placeholder "controller" to it).
const ImageName = "m2m-operator"

// Render builds the kustomization in dir. With image != "", every container running ImageName
// runs image instead, as `kustomize edit set image m2m-operator=<image>` would do; the override
// is an overlay in a temporary directory, so the checkout is left untouched.
func Render(dir, image string) (resmap.ResMap, error) {
	if image == "" {
		return run(dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", dir, err)
	}
	overlay, err := os.MkdirTemp("", "m2m-install-")
	if err != nil {
		return nil, fmt.Errorf("creating the overlay directory: %w", err)
	}
	defer os.RemoveAll(overlay)
	if err := writeOverlay(overlay, abs, image); err != nil {
		return nil, err
	}
	return run(overlay)
}

// writeOverlay writes a kustomization that includes base and sets the image.
func writeOverlay(overlay, base, image string) error {
	rel, err := filepath.Rel(overlay, base)
	if err != nil {
		return fmt.Errorf("locating %s from %s: %w", base, overlay, err)
	}
	name, tag, digest := util.SplitImageName(image)
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{filepath.ToSlash(rel)},
		Images:    []types.Image{{Name: ImageName, NewName: name, NewTag: tag, Digest: digest}},
	}
	data, err := yaml.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding the overlay: %w", err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), data, 0o600); err != nil {
		return fmt.Errorf("writing the overlay: %w", err)
	}
	return nil
}

func run(dir string) (resmap.ResMap, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	return m, nil
}

// Objects renders dir as Render does and returns its objects in order, as unstructured objects
// whose numbers are int64 (as in objects read from the API server), for tests that compare the
// install with what a cluster holds or with another rendering (the Helm chart).
func Objects(dir, image string) ([]*unstructured.Unstructured, error) {
	m, err := Render(dir, image)
	if err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, 0, m.Size())
	for _, r := range m.Resources() {
		// Through JSON, so that numbers are int64 as in objects read from the API server.
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", r.CurId(), err)
		}
		out = append(out, u)
	}
	return out, nil
}
