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

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/config"
)

// lastAppliedAnnotation is where client-side `kubectl apply` keeps the configuration it applied
// last (corev1.LastAppliedConfigAnnotation).
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// applySamples creates every object of the samples (namespaces first), leaving existing ones.
// Each carries the last-applied annotation that `kubectl apply` would have written, so the
// documented `kubectl apply -f config/samples/` finds them unchanged instead of warning that
// they were not created by apply.
func applySamples(ctx context.Context, c client.Client, dir string, say func(string, ...any)) error {
	var fsys fs.FS = config.Samples
	root := "samples"
	if dir != "" {
		fsys, root = os.DirFS(dir), "."
	}
	objs, err := readObjects(fsys, root)
	if err != nil {
		return err
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].GetKind() == "Namespace" && objs[j].GetKind() != "Namespace" })
	for _, o := range objs {
		if err := setLastApplied(o); err != nil {
			return fmt.Errorf("applying %s %s: %w", o.GetKind(), key(o), err)
		}
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("applying %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		say("applied %s %s", strings.ToLower(o.GetKind()), key(o))
	}
	return nil
}

// setLastApplied sets the annotation to what kubectl writes: the object as read from its file,
// its annotations without that one (an empty map when none: kubectl writes "annotations":{}),
// encoded as JSON with a final newline (kubectl's util.GetModifiedConfiguration). kubectl's
// three-way merge then finds the object unchanged.
func setLastApplied(o *unstructured.Unstructured) error {
	annotations := o.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	delete(annotations, lastAppliedAnnotation)
	if err := unstructured.SetNestedStringMap(o.Object, annotations, "metadata", "annotations"); err != nil {
		return fmt.Errorf("setting annotations: %w", err)
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(o.Object); err != nil {
		return fmt.Errorf("encoding the last-applied configuration: %w", err)
	}
	annotations[lastAppliedAnnotation] = b.String()
	o.SetAnnotations(annotations)
	return nil
}

func key(o client.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// readObjects parses every YAML document of every *.yaml file under root.
func readObjects(fsys fs.FS, root string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := fs.WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", path, err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("parsing %s: %w", path, err)
			}
			if len(u.Object) == 0 || u.GetKind() == "" || u.GetKind() == "Kustomization" {
				continue // empty documents and kustomization.yaml are not objects
			}
			out = append(out, u)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading samples: %w", err)
	}
	return out, nil
}
