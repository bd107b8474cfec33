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

package tlscontroller_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The manager-driven controller keeps the CA in systemNamespace and the serving Secret in
// credentialsNamespace, as an install does; tests that call Reconcile directly use namespaces
// of their own.
const (
	systemNamespace      = "m2m-system"
	credentialsNamespace = "m2m-credentials"
)

// managed are the namespaces of the manager-driven controller.
var managed = tlscontroller.Namespaces{System: systemNamespace, Credentials: credentialsNamespace}

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	clock   *clocktesting.FakeClock
	stopMgr context.CancelFunc
)

func TestTLSController(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(25 * time.Millisecond)
	RunSpecs(t, "TLS controller")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	// Secrets only: no CRDs, so these tests do not depend on config/crd.
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{systemNamespace, credentialsNamespace} {
		Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	clock = clocktesting.NewFakeClock(t0)
	startManager()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startManager runs the controller as `m2m controller` does: a Secret cache that holds only
// managed Secrets, so the "label removed" path is exercised for real.
func startManager() {
	managedBy := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testenv.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlcfg.Controller{SkipNameValidation: ptr(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: managedBy},
		}},
	})
	Expect(err).NotTo(HaveOccurred())
	opts := tlscontroller.Options{Enabled: true, Clock: clock}
	Expect(tlscontroller.SetupWithManager(mgr, opts, managed)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	stopMgr = cancel
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
}

func ptr[T any](v T) *T { return &v }
