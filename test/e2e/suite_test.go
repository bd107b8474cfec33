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

// Package e2e drives the whole system as a user does: the control plane, controller and token
// server started exactly as `m2m dev` starts them, YAML applied from files, credentials read
// from the mounted Secret, tokens from golang.org/x/oauth2, and an API protected by verify.
package e2e

import (
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/cli"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

const systemNamespace = "m2m-system"

var (
	// sys is the running system, started like `m2m dev`.
	sys *cli.DevSystem
	// k8s is an admin client of its API server.
	k8s client.Client
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	// The machine may be shared with other test runs: generous deadlines, fast polling.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	// Specs pass their SpecContext to Eventually; keep the default timeout anyway, so that a
	// broken step fails in seconds rather than at the spec's node timeout.
	EnforceDefaultTimeoutsWhenUsingContexts()
	RunSpecs(t, "End to end (m2m dev)")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// Component logs only with -v (ginkgo shows GinkgoWriter for failures and with -v).
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// The same lookup as every other envtest suite of this repository.
		dir, err := testenv.AssetsDir()
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Setenv("KUBEBUILDER_ASSETS", dir)).To(Succeed())
	}
	dir, err := os.MkdirTemp("", "m2m-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	sys, err = cli.StartDev(ctx, cli.DevConfig{
		Addr:      "127.0.0.1:0",
		Dir:       dir,
		Namespace: systemNamespace,
		AuditLog:  io.Discard,
		Say:       func(format string, a ...any) { GinkgoWriter.Printf("m2m dev: "+format+"\n", a...) },
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(sys.Stop)
	k8s = sys.Client
	Eventually(func(g Gomega) {
		resp, err := http.Get(sys.MetricsURL + "/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "token server not ready")
	}).Should(Succeed())
}, NodeTimeout(3*time.Minute))

// failOnComponentError fails the running spec if the controller or token server stopped.
func failOnComponentError() {
	select {
	case err := <-sys.Err():
		Fail("a component of the system stopped: " + errString(err))
	default:
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
