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

package config_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/install"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The namespaces config/default installs: the system namespace holds both components, the
// controller's Lease and the CA; the credentials namespace holds exactly what the token server
// reads (records, signing keys, its TLS Secret) and its Role.
const (
	systemNamespace      = "m2m-system"
	credentialsNamespace = "m2m-credentials"
)

// fieldOwner is the server-side apply field manager of these tests.
const fieldOwner = client.FieldOwner("m2m-install-test")

var (
	// cfg is the admin config of the envtest API server.
	cfg *rest.Config
	// admin is a client with every permission.
	admin client.Client
	// rendered is config/default, rendered once.
	rendered []*unstructured.Unstructured
)

// TestMain starts one control plane for every test of this package, renders config/default and
// installs what the rest of the install needs to exist for real: the CRDs and the namespace.
// The API server runs with OwnerReferencesPermissionEnforcement on (as OpenShift and hardened
// clusters do), so that RBAC needed only by that admission plugin is exercised too.
func TestMain(m *testing.M) {
	// Informers stream their initial list as a watch (WatchList) where the API server supports
	// it, and fall back to list+watch where it does not. Turn streaming off, so that the RBAC
	// tests see the requests every supported cluster may receive: list and watch.
	if err := os.Setenv("KUBE_FEATURE_WatchListClient", "false"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	flag.Parse()
	// The controllers' logs only with -v: they are noise when everything passes.
	logs := io.Discard
	if testing.Verbose() {
		logs = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	env, err := testenv.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The CRDs come from the rendered install, not from config/crd/bases directly.
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := run(m)
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	var err error
	if admin, err = client.New(cfg, client.Options{Scheme: testScheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if rendered, err = render(filepath.Join(testenv.RepoRoot(), "config", "default"), ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := installFoundations(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// testScheme is the project's scheme plus CustomResourceDefinition, which these tests read.
func testScheme() *runtime.Scheme {
	s := testenv.Scheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// render builds a kustomization exactly as `kubectl kustomize` does (and as `make deploy` does,
// through the same function) and returns its objects in order.
func render(dir, image string) ([]*unstructured.Unstructured, error) {
	return install.Objects(dir, image)
}

// installFoundations creates the CRDs and the Namespace for real, and waits until the CRDs are
// served: every other object is then checked against them.
func installFoundations(ctx context.Context) error {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, u := range rendered {
		switch u.GetKind() {
		case "CustomResourceDefinition":
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, crd); err != nil {
				return fmt.Errorf("decoding CRD %s: %w", u.GetName(), err)
			}
			crds = append(crds, crd)
		case "Namespace":
		default:
			continue
		}
		if err := apply(ctx, admin, u); err != nil {
			return err
		}
	}
	return waitEstablished(ctx, crds)
}

func waitEstablished(ctx context.Context, crds []*apiextensionsv1.CustomResourceDefinition) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, want := range crds {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := admin.Get(ctx, client.ObjectKeyFromObject(want), crd); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		return true, nil
	})
}

// apply server-side applies u, as `kubectl apply --server-side -k config/default` does.
func apply(ctx context.Context, c client.Client, u *unstructured.Unstructured, opts ...client.ApplyOption) error {
	opts = append([]client.ApplyOption{fieldOwner, client.ForceOwnership}, opts...)
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), opts...); err != nil {
		return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// objects returns the rendered objects of kind.
func objects(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range rendered {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// object returns the rendered object of kind and name, failing the test when it is absent.
func object(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objects(kind) {
		if u.GetName() == name {
			return u
		}
	}
	t.Fatalf("config/default renders no %s %q", kind, name)
	return nil
}

// typed converts a rendered object into its Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("decoding %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}
