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

package testenv

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// Suite is a running control plane with an admin client on it: what the controller packages'
// envtest suites start once (controllers, controllers/tls).
type Suite struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
}

// SuiteOptions shape a Suite.
type SuiteOptions struct {
	// WithoutCRDs starts the control plane without this project's CRDs, so that a package
	// that needs only built-in objects does not depend on the state of config/crd.
	WithoutCRDs bool
	// Namespaces are created once the control plane runs.
	Namespaces []string
}

// StartSuite starts a control plane, a client with this project's scheme, and the namespaces.
func StartSuite(ctx context.Context, opts SuiteOptions) (*Suite, error) {
	env, err := New()
	if err != nil {
		return nil, err
	}
	if opts.WithoutCRDs {
		env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest control plane: %w", err)
	}
	s := &Suite{Env: env, Config: cfg}
	if s.Client, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		return s, fmt.Errorf("creating the suite's client: %w", err)
	}
	for _, ns := range opts.Namespaces {
		if err := s.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return s, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return s, nil
}

// Stop stops the control plane (a nil Suite, or one that never started, has nothing to stop).
func (s *Suite) Stop() error {
	if s == nil || s.Env == nil {
		return nil
	}
	return s.Env.Stop()
}

// ManagerOptions are the options of `m2m controller`'s manager that tests depend on
// (internal/cli/controller.go): this project's scheme, and a Secret cache that holds only the
// Secrets with the managed-by label, so that a test sees what the controller's cache cannot.
// No metrics or probe listener, and controller names may repeat (a suite restarts its manager).
func ManagerOptions() ctrl.Options {
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	skip := true
	return ctrl.Options{
		Scheme:                 Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlcfg.Controller{SkipNameValidation: &skip},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: managed},
			&corev1.ConfigMap{}: {Label: managed},
		}},
	}
}

// RunManager starts mgr in the background. The returned stop cancels it, waits until Start has
// returned and reports Start's error.
func RunManager(ctx context.Context, mgr ctrl.Manager) (stop func() error) {
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	return func() error {
		cancel()
		return <-done
	}
}
