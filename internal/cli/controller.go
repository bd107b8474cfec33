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
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/controllers"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
)

// controllerFlags are the flags of `m2m controller` (and the controller half of `m2m dev`).
type controllerFlags struct {
	kubeconfig  string
	metricsAddr string
	probeAddr   string
	leaderElect bool
	apiQPS      float64
	apiBurst    int
	clients     controllers.Options
	signingKeys *signingKeyFlags
	tls         tlscontroller.Options
	// manyPerProcess lets one process build more than one manager, as `m2m dev` may when the
	// tests start several systems: controller names are then not unique in the process.
	manyPerProcess bool
}

func bindControllerFlags(fs *flag.FlagSet) *controllerFlags {
	f := &controllerFlags{}
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to a kubeconfig; default: in-cluster config or $KUBECONFIG")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8443", "address of the metrics endpoint; 0 disables it")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles")
	fs.Float64Var(&f.apiQPS, "kube-api-qps", controllers.DefaultAPIQPS, "queries per second to the API server")
	fs.IntVar(&f.apiBurst, "kube-api-burst", controllers.DefaultAPIBurst, "burst of queries to the API server")
	f.clients.BindFlags(fs)
	f.signingKeys = bindSigningKeyFlags(fs)
	f.tls.BindFlags(fs)
	return f
}

// controllerFlagSet is the flag set of `m2m controller`.
func controllerFlagSet() (*flag.FlagSet, *controllerFlags, *zap.Options) {
	fs := newFlagSet("controller", "Reconciles M2MClients and ScopePolicies, writes credential Secrets and records, and manages signing keys.")
	f := bindControllerFlags(fs)
	return fs, f, logFlags(fs)
}

func runController(ctx context.Context, args []string) error {
	fs, f, zopts := controllerFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zopts)))
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := newControllerManager(cfg, f)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// newControllerManager builds the manager with every reconciler. The Secret and ConfigMap caches
// hold only objects this controller wrote (by label), so memory does not grow with the cluster's.
func newControllerManager(cfg *rest.Config, f *controllerFlags) (ctrl.Manager, error) {
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(f.apiQPS), f.apiBurst
	f.clients.CABundle = f.tls.Enabled
	f.clients.RevocationRetention = f.signingKeys.maxTokenTTL + f.signingKeys.leeway
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.probeAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "m2m-controller.auth.m2m.dev",
		LeaderElectionNamespace: f.clients.SystemNamespace,
		GracefulShutdownTimeout: ptrDuration(10 * time.Second),
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: managed},
			&corev1.ConfigMap{}: {Label: managed},
		}},
		Controller: ctrlconfig.Controller{SkipNameValidation: &f.manyPerProcess},
	})
	if err != nil {
		return nil, fmt.Errorf("creating controller manager: %w", err)
	}
	// go_build_info names the version running; registering twice (tests, m2m dev) is harmless.
	if err := ctrlmetrics.Registry.Register(collectors.NewBuildInfoCollector()); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil, fmt.Errorf("registering the build-info metric: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, f.clients); err != nil {
		return nil, err
	}
	if err := setupSigningKeys(mgr, f.signingKeys, f.clients.CredentialsNamespace); err != nil {
		return nil, fmt.Errorf("setting up signing keys: %w", err)
	}
	tlsNamespaces := tlscontroller.Namespaces{System: f.clients.SystemNamespace, Credentials: f.clients.CredentialsNamespace}
	if err := tlscontroller.SetupWithManager(mgr, f.tls, tlsNamespaces); err != nil {
		return nil, fmt.Errorf("setting up TLS: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding ready check: %w", err)
	}
	return mgr, nil
}

func ptrDuration(d time.Duration) *time.Duration { return &d }
