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

// Package skew runs the previous release's binary beside this one against one API server with
// this release's CRDs: the previous controller's records and keys served by this token server,
// and this controller's served by the previous token server. That is the version skew of a
// rolling upgrade and of a rollback.
package skew

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
	"github.com/m2m-dev/m2m-operator/verify"
)

// previousRelease is the commit of the last release that landed before this one.
const previousRelease = "35c90cc44d865dc3b1c075a517519dd37b588da8"

// build compiles the m2m binary of the working tree (rev == "") or of a commit.
func build(t *testing.T, rev, out string) {
	t.Helper()
	root := testenv.RepoRoot()
	src := root
	if rev != "" {
		if err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").Run(); err != nil {
			t.Skipf("the previous release %s is not in this clone's history (a shallow clone?): %v", rev, err)
		}
		src = filepath.Join(t.TempDir(), "previous")
		if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", src, rev).CombinedOutput(); err != nil {
			t.Fatalf("checking out %s: %v\n%s", rev, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run() })
	}
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building m2m at %q: %v\n%s", rev, err, b)
	}
}

func start(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.SyncBuffer{}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, out.String())
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPreviousReleaseInterop: in both directions of the skew, a client the controller set up
// gets a token from the other release's token server, and verify accepts it.
func TestPreviousReleaseInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two releases")
	}
	bin := t.TempDir()
	previous, current := filepath.Join(bin, "m2m-previous"), filepath.Join(bin, "m2m-current")
	build(t, previousRelease, previous)
	build(t, "", current)

	logf.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := writeKubeconfig(t, env)
	k8s, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name                   string
		controller, tokenServe func(ns string) []string
	}{
		{
			name: "previous controller, this token server",
			controller: func(ns string) []string {
				return []string{previous, "controller", "--kubeconfig", kubeconfig, "--namespace", ns, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
			},
			tokenServe: func(ns string) []string {
				return []string{current, "tokenserver", "--kubeconfig", kubeconfig, "--credentials-namespace", ns, "--metrics-addr", freeAddr(t)}
			},
		},
		{
			name: "this controller, previous token server",
			controller: func(ns string) []string {
				return []string{current, "controller", "--kubeconfig", kubeconfig, "--namespace", ns, "--credentials-namespace", ns, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
			},
			tokenServe: func(ns string) []string {
				return []string{previous, "tokenserver", "--kubeconfig", kubeconfig, "--namespace", ns}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.SetDefaultEventuallyTimeout(60 * time.Second)
			g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
			ctx := context.Background()
			sys := "skew-" + strings.Fields(tt.name)[0] // skew-previous, skew-this
			apps := sys + "-apps"
			for _, ns := range []string{sys, apps} {
				g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
			}
			addr := freeAddr(t)
			issuer := "http://" + addr
			start(t, "controller", tt.controller(sys)[0], append(tt.controller(sys)[1:], "--issuer", issuer)...)
			start(t, "token server", tt.tokenServe(sys)[0], append(tt.tokenServe(sys)[1:], "--addr", addr, "--issuer", issuer)...)

			g.Expect(k8s.Create(ctx, &authv1alpha1.ScopePolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: "api"},
				Spec: authv1alpha1.ScopePolicySpec{
					Scopes: []authv1alpha1.ScopeDefinition{{Name: "things:read"}},
					Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"things:read"}, Clients: authv1alpha1.ClientMatcher{Namespaces: []string{apps}}}},
				},
			})).To(Succeed())
			g.Expect(k8s.Create(ctx, &authv1alpha1.M2MClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: "worker"},
				Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"things:read"}, Claims: map[string]string{"team": "skew"}},
			})).To(Succeed())
			cred := &corev1.Secret{}
			g.Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: apps, Name: "worker-m2m"}, cred)).To(Succeed())
				g.Expect(string(cred.Data["scope"])).To(Equal("things:read"))
			}).Should(Succeed())

			var token string
			g.Eventually(func(g Gomega) {
				token = fetchToken(g, issuer, cred)
			}).Should(Succeed())
			v, err := verify.New(ctx, issuer, "api."+apps)
			g.Expect(err).NotTo(HaveOccurred())
			claims, err := v.Verify(ctx, token)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(claims.ClientID).To(Equal(string(cred.Data["client_id"])))
			g.Expect(claims.Scopes).To(ConsistOf("things:read"))
		})
	}
}

func fetchToken(g Gomega, issuer string, cred *corev1.Secret) string {
	req, err := http.NewRequest(http.MethodPost, issuer+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(string(cred.Data["client_id"]), string(cred.Data["client_secret"]))
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var body struct {
		AccessToken string `json:"access_token"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
	return body.AccessToken
}

// writeKubeconfig writes an admin kubeconfig of the envtest API server for the subprocesses.
func writeKubeconfig(t *testing.T, env *envtest.Environment) string {
	t.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "skew-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
