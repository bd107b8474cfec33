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
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The API server of the install tests, started on first use.
var (
	envOnce    sync.Once
	env        *envtest.Environment
	envErr     error
	admin      client.Client
	kubeconfig string // a kubeconfig file for Helm, as a user has one
	workDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	if workDir != "" {
		_ = os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// apiServer starts a kube-apiserver and etcd without the CRDs (Helm installs them from crds/) and
// writes a kubeconfig for it.
func apiServer(t *testing.T) {
	t.Helper()
	envOnce.Do(func() { envErr = startAPIServer() })
	if envErr != nil {
		t.Fatal(envErr)
	}
}

func startAPIServer() error {
	e, err := testenv.New()
	if err != nil {
		return err
	}
	e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing = nil, false
	if _, err := e.Start(); err != nil {
		return fmt.Errorf("starting envtest: %w", err)
	}
	env = e
	user, err := e.AddUser(envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if workDir, err = os.MkdirTemp("", "m2m-chart-"); err != nil {
		return err
	}
	// 0600: Helm warns about a kubeconfig others can read.
	kubeconfig = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return err
	}
	s := testenv.Scheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return err
	}
	admin, err = client.New(user.Config(), client.Options{Scheme: s})
	return err
}

// helmKube runs Helm against the test API server.
func helmKube(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(t, []string{"KUBECONFIG=" + kubeconfig}, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHelmInstall installs the chart with the real Helm into a real API server, as the README
// says: every object is accepted by the real schema and admission (Pod Security "restricted" of
// the namespaces the chart creates); NOTES tell the next command; the non-default values pass a
// server-side dry run too; an upgrade changes a flag; an uninstall removes the workloads and
// keeps the CRDs and namespaces (they hold every credential), and a reinstall adopts them.
func TestHelmInstall(t *testing.T) {
	apiServer(t)
	ctx := context.Background()
	chart := chartDir()

	out := helmKube(t, "install", releaseName, chart, "--namespace", "default", "--wait=false")
	for _, want := range []string{"STATUS: deployed", "The issuer is https://m2m-tokenserver.m2m-system.svc", "kubectl apply -f config/samples/", "/.well-known/jwks.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install printed no %q:\n%s", want, out)
		}
	}
	installed := template(t)
	for _, u := range installed {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(u.GroupVersionKind())
		if err := admin.Get(ctx, client.ObjectKeyFromObject(u), live); err != nil {
			t.Errorf("%s: %v", key(u), err)
			continue
		}
		if u.GetKind() != "CustomResourceDefinition" && live.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s is not labelled as managed by Helm: %v", key(u), live.GetLabels())
		}
	}
	if err := waitEstablished(ctx, installed); err != nil {
		t.Fatal(err)
	}

	t.Run("every value passes a server-side dry run", func(t *testing.T) {
		dryRunAllValues(t, ctx)
	})

	t.Run("upgrade", func(t *testing.T) {
		helmKube(t, "upgrade", releaseName, chart, "--namespace", "default", "--wait=false", "--set", "tokenServer.rateLimit.rate=50")
		d := &unstructured.Unstructured{}
		d.SetAPIVersion("apps/v1")
		d.SetKind("Deployment")
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "m2m-system", Name: "m2m-tokenserver"}, d); err != nil {
			t.Fatal(err)
		}
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		if !slices.Contains(args, "--rate-limit=50") {
			t.Errorf("after helm upgrade --set tokenServer.rateLimit.rate=50 the token server runs %q", args)
		}
	})

	t.Run("uninstall keeps the foundation, a reinstall adopts it", func(t *testing.T) {
		out := helmKube(t, "uninstall", releaseName, "--namespace", "default")
		if !strings.Contains(out, "kept due to the resource policy") {
			t.Errorf("helm uninstall did not say it kept the namespaces:\n%s", out)
		}
		for _, u := range installed {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(u.GroupVersionKind())
			err := admin.Get(ctx, client.ObjectKeyFromObject(u), live)
			switch u.GetKind() {
			case "CustomResourceDefinition", "Namespace":
				if err != nil || live.GetDeletionTimestamp() != nil {
					t.Errorf("%s did not survive helm uninstall: %v", key(u), err)
				}
			default:
				// Deleted (the Namespace survives; envtest runs no garbage collector, and
				// nothing here has an owner).
				if !apierrors.IsNotFound(err) {
					t.Errorf("%s is still there after helm uninstall: %v", key(u), err)
				}
			}
		}
		helmKube(t, "install", releaseName, chart, "--namespace", "default", "--wait=false")
		ns := &corev1.Namespace{}
		if err := admin.Get(ctx, client.ObjectKey{Name: "m2m-credentials"}, ns); err != nil {
			t.Fatal(err)
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("m2m-credentials after a reinstall: labels %v", ns.Labels)
		}
	})
}

// dryRunAllValues applies the chart rendered with every value set, server-side and dry-run:
// schema, validation, admission; a warning fails. The Prometheus Operator's kinds are left out
// (their CRDs are not installed here).
func dryRunAllValues(t *testing.T, ctx context.Context) {
	w := &testenv.Warnings{}
	c := rest.CopyConfig(env.Config)
	c.WarningHandler = w
	cl, err := client.New(c, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	monitoring := &corev1.Namespace{}
	monitoring.Name = "monitoring"
	if err := client.IgnoreAlreadyExists(admin.Create(ctx, monitoring)); err != nil {
		t.Fatal(err)
	}
	for _, u := range template(t, "-f", allValues) {
		if u.GroupVersionKind().Group == "monitoring.coreos.com" {
			continue
		}
		err := cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("m2m-chart-test"), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("%s: %v", key(u), err)
		}
		if ws := w.Take(); len(ws) > 0 {
			t.Errorf("%s: the API server warned: %s", key(u), strings.Join(ws, "; "))
		}
	}
}

// waitEstablished waits until the CRDs among objs are served.
func waitEstablished(ctx context.Context, objs []*unstructured.Unstructured) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, u := range objs {
			if u.GetKind() != "CustomResourceDefinition" {
				continue
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := admin.Get(ctx, client.ObjectKey{Name: u.GetName()}, crd); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if !slices.ContainsFunc(crd.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
				return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
			}) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return errors.New("the chart's CRDs were not established within 30s")
	}
	return nil
}
