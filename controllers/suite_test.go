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

package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/controllers"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/certs"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

const systemNamespace = "m2m-system"

var (
	suite     *testenv.Suite
	cfg       *rest.Config
	k8sClient client.Client
	clock     *clocktesting.FakeClock
	caBundle  []byte
	stopMgr   context.CancelFunc
	ctx       = context.Background()
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	RunSpecs(t, "Controllers (envtest)")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	suite, err = testenv.StartSuite(ctx, testenv.SuiteOptions{Namespaces: []string{systemNamespace}})
	Expect(err).NotTo(HaveOccurred())
	cfg, k8sClient = suite.Config, suite.Client
	clock = clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	ca, err := certs.NewCA("test CA", time.Now(), time.Hour)
	Expect(err).NotTo(HaveOccurred())
	caBundle = certs.EncodeCertificates(ca.Cert)
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: tlscontroller.CASecretName,
			Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue}},
		Data: map[string][]byte{tlscontroller.CACertKey: caBundle},
	})).To(Succeed())
	stopMgr = startManager()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		stopMgr()
	}
	Expect(suite.Stop()).To(Succeed())
})

// startManager starts a manager wired like `m2m controller`, after applying the mutations to
// its options, and returns its stop function, which waits until the manager has stopped.
func startManager(mutate ...func(*ctrl.Options)) context.CancelFunc {
	return startTunedManager(nil, mutate...)
}

// startTunedManager is startManager with tune applied to the API client's configuration and
// the controller's options (the scale tests compare settings), when tune is not nil.
func startTunedManager(tune func(*rest.Config, *controllers.Options), mutate ...func(*ctrl.Options)) context.CancelFunc {
	mcfg := rest.CopyConfig(cfg)
	mcfg.QPS, mcfg.Burst = controllers.DefaultAPIQPS, controllers.DefaultAPIBurst
	opts := testenv.ManagerOptions()
	for _, m := range mutate {
		m(&opts)
	}
	copts := controllers.Options{
		// One namespace for both: these tests are about clients, not the namespace split
		// (config/rbac_test.go runs the controller with the two apart).
		SystemNamespace:      systemNamespace,
		CredentialsNamespace: systemNamespace,
		Issuer:               "https://m2m.test",
		CABundle:             true,
		Clock:                clock,
	}
	if tune != nil {
		tune(mcfg, &copts)
	}
	mgr, err := ctrl.NewManager(mcfg, opts)
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.SetupWithManager(mgr, copts)).To(Succeed())
	stop := testenv.RunManager(ctx, mgr)
	return func() { Expect(stop()).To(Succeed()) }
}
