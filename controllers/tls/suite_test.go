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
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	suite   *testenv.Suite
	k8s     client.Client
	clock   *clocktesting.FakeClock
	stopMgr func() error
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
	// Secrets only: no CRDs, so these tests do not depend on config/crd.
	suite, err = testenv.StartSuite(context.Background(), testenv.SuiteOptions{
		WithoutCRDs: true, Namespaces: []string{systemNamespace, credentialsNamespace}})
	Expect(err).NotTo(HaveOccurred())
	k8s = suite.Client
	clock = clocktesting.NewFakeClock(t0)
	startManager()
})

var _ = AfterSuite(func() {
	if stopMgr != nil {
		Expect(stopMgr()).To(Succeed())
	}
	Expect(suite.Stop()).To(Succeed())
})

// startManager runs the controller as `m2m controller` does: a Secret cache that holds only
// managed Secrets, so the "label removed" path is exercised for real.
func startManager() {
	mgr, err := ctrl.NewManager(suite.Config, testenv.ManagerOptions())
	Expect(err).NotTo(HaveOccurred())
	opts := tlscontroller.Options{Enabled: true, Clock: clock}
	Expect(tlscontroller.SetupWithManager(mgr, opts, managed)).To(Succeed())
	stopMgr = testenv.RunManager(context.Background(), mgr)
}
