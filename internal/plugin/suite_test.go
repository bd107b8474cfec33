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

package plugin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/cli"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// sys is the whole system (control plane, controller, token server), started as `m2m dev`
// starts it, so that the plugin's answers can be compared with the token server's.
var sys *cli.DevSystem

func TestPlugin(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	EnforceDefaultTimeoutsWhenUsingContexts()
	RunSpecs(t, "kubectl m2m")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir, err := testenv.AssetsDir()
		Expect(err).NotTo(HaveOccurred())
		Expect(os.Setenv("KUBEBUILDER_ASSETS", dir)).To(Succeed())
	}
	var err error
	sys, err = cli.StartDev(ctx, cli.DevConfig{
		Addr: "127.0.0.1:0", Dir: GinkgoT().TempDir(), Namespace: "m2m-system", AuditLog: io.Discard,
		Say: func(format string, a ...any) { GinkgoWriter.Printf("m2m dev: "+format+"\n", a...) },
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(sys.Stop)
	Eventually(func(g Gomega) {
		resp, err := http.Get(sys.MetricsURL + "/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "token server not ready")
	}).Should(Succeed())
}, NodeTimeout(3*time.Minute))

// jwsShape matches a JWS compact serialization (an access token or assertion).
var jwsShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

// result is one run of the plugin.
type result struct {
	out, errOut string
	err         error
}

// kubectlM2M runs `kubectl m2m ARGS` in this process against the dev system's kubeconfig.
func kubectlM2M(ctx context.Context, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", sys.Kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	// The log shows what a reader sees, tokens masked (tests print no credential either).
	GinkgoWriter.Printf("kubectl m2m %s\n%s%s", jwsShape.ReplaceAllString(strings.Join(args, " "), "<token>"),
		jwsShape.ReplaceAllString(out.String(), "<token>"), errOut.String())
	return result{out: out.String(), errOut: errOut.String(), err: err}
}
