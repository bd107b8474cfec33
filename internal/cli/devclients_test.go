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
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/config"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// TestStartDevExplainsMissingControlPlaneBinaries: a wrong KUBEBUILDER_ASSETS is one error that
// says what is missing, where, and how to fix it, at once: envtest is not even tried (it would
// retry five times, logging a stack trace each time).
func TestStartDevExplainsMissingControlPlaneBinaries(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	var said testenv.SyncBuffer
	start := time.Now()
	_, err := StartDev(context.Background(), DevConfig{Addr: "127.0.0.1:0", Dir: t.TempDir(), Namespace: "m2m-system",
		Say: func(f string, a ...any) { _, _ = said.Write([]byte(f + "\n")) }})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(SatisfyAll(
		ContainSubstring("KUBEBUILDER_ASSETS="+dir),
		ContainSubstring(filepath.Join(dir, "kube-apiserver")),
		ContainSubstring(filepath.Join(dir, "etcd")),
		ContainSubstring("unset KUBEBUILDER_ASSETS"),
		ContainSubstring("make envtest"),
	))
	g.Expect(err.Error()).NotTo(ContainSubstring("retried"))
	g.Expect(said.String()).To(BeEmpty(), "nothing was started")
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second), "no retries")
}

var tokenLine = regexp.MustCompile(`(?m)^m2m dev: token for (\S+) \(([^)]*)\):$`)

// TestDevReportsSettledGrantsAndMirrorsCredentials runs the system as `m2m dev` does, samples
// included: each sample client's token line names the scopes it is granted once the policy
// (applied after the clients) is resolved, never the empty list seen before; every sample
// object carries kubectl's last-applied annotation; and the credential files follow the
// Secret, through a rotation.
func TestDevReportsSettledGrantsAndMirrorsCredentials(t *testing.T) {
	g := NewWithT(t)
	if _, err := testenv.AssetsDir(); err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	credDir := filepath.Join(t.TempDir(), "credentials")
	ctx := context.Background()
	sys, err := StartDev(ctx, DevConfig{Addr: "127.0.0.1:0", Dir: t.TempDir(), Namespace: "m2m-system",
		Samples: true, Out: &out, CredentialsDir: credDir})
	g.Expect(err).NotTo(HaveOccurred())
	defer sys.Stop()
	g.Expect(secondManager(sys)).To(Succeed(), "the tests may start several systems in one process")

	want := map[string]string{
		"payments/billing-worker":   "invoices:read",
		"payments/billing-admin":    "invoices:read invoices:write refunds:issue",
		"payments/billing-robot":    "invoices:read",
		"payments/billing-reporter": "invoices:read",
	}
	g.Eventually(func() int { return len(tokenLine.FindAllString(out.String(), -1)) }).
		WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(len(want)))
	got := map[string]string{}
	for _, m := range tokenLine.FindAllStringSubmatch(out.String(), -1) {
		got[m[1]] = m[2]
	}
	g.Expect(got).To(Equal(want), "the scopes each sample client is granted, as printed")

	objs, err := readObjects(config.Samples, "samples")
	g.Expect(err).NotTo(HaveOccurred())
	for _, o := range objs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(o.GroupVersionKind())
		g.Expect(sys.Client.Get(ctx, client.ObjectKeyFromObject(o), live)).To(Succeed())
		g.Expect(live.GetAnnotations()).To(HaveKeyWithValue(lastAppliedAnnotation, ContainSubstring(`"name":"`+o.GetName()+`"`)), key(o))
	}

	worker := filepath.Join(credDir, "payments", "billing-worker")
	var m authv1alpha1.M2MClient
	g.Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: "payments", Name: "billing-worker"}, &m)).To(Succeed())
	g.Eventually(func() string { return readFile(worker, "client_id") }).Should(Equal(m.Status.ClientID))
	g.Expect(readFile(worker, "scope")).To(Equal("invoices:read"))
	g.Expect(readFile(worker, "issuer")).To(Equal(sys.Issuer))
	before := readFile(worker, "client_secret")
	g.Expect(before).To(HavePrefix("m2ms_"))
	g.Expect(filepath.Join(credDir, "payments", "billing-robot", "client_secret")).NotTo(BeAnExistingFile())

	m.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "1"}
	g.Expect(sys.Client.Update(ctx, &m)).To(Succeed())
	g.Eventually(func() string { return readFile(worker, "client_secret") }).WithTimeout(10*time.Second).
		Should(SatisfyAll(HavePrefix("m2ms_"), Not(Equal(before))), "the file follows the rotated Secret")
}

func readFile(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.TrimSpace(string(b))
}

// secondManager builds (and does not start) the controller of a second system in this process,
// as the tests do: controller-runtime refuses a second controller of the same name unless told
// that this is expected.
func secondManager(sys *DevSystem) error {
	_, err := newDevControllerManager(sys.Config, DevConfig{Namespace: "m2m-system", CredentialsNamespace: DefaultCredentialsNamespace}, sys.Issuer)
	return err
}
