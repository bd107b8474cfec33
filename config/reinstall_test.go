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

package config_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// keepAnnotations stop Argo CD, Flux and Helm from deleting or pruning the foundation.
var keepAnnotations = map[string]string{
	"argocd.argoproj.io/sync-options":   "Delete=false,Prune=false",
	"kustomize.toolkit.fluxcd.io/prune": "disabled",
	"helm.sh/resource-policy":           "keep",
}

func renderUnit(t *testing.T, unit string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(filepath.Join(testenv.RepoRoot(), "config", unit), "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func ids(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, u := range objs {
		out = append(out, u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName())
	}
	slices.Sort(out)
	return out
}

// TestInstallIsTwoUnits: the foundation holds exactly the CRDs and the namespaces, each kept on
// uninstall and prune; the workloads hold everything else; config/default is both.
func TestInstallIsTwoUnits(t *testing.T) {
	foundation, workloads := renderUnit(t, "foundation"), renderUnit(t, "workloads")
	for _, u := range foundation {
		if k := u.GetKind(); k != "CustomResourceDefinition" && k != "Namespace" {
			t.Errorf("the foundation holds %s %s: it must hold only CRDs and namespaces", k, u.GetName())
		}
		for k, v := range keepAnnotations {
			if u.GetAnnotations()[k] != v {
				t.Errorf("%s %s lacks %s: %s", u.GetKind(), u.GetName(), k, v)
			}
		}
	}
	for _, u := range workloads {
		if k := u.GetKind(); k == "CustomResourceDefinition" || k == "Namespace" {
			t.Errorf("the workloads hold %s %s: uninstalling them would delete every credential", k, u.GetName())
		}
	}
	if got, want := ids(rendered), ids(append(foundation, workloads...)); !slices.Equal(got, want) {
		t.Errorf("config/default is not foundation + workloads:\n got %v\nwant %v", got, want)
	}
}

// tokenServerUnderRBAC runs `m2m tokenserver` as its ServiceAccount (its API client's requests
// seen by rec, when given) and returns its address and a stop function that may be called twice.
func tokenServerUnderRBAC(t *testing.T, g *WithT, rec ...*recorder) (string, func()) {
	t.Helper()
	sa := serviceAccountConfig(tokenServerName)
	for _, r := range rec {
		sa.Wrap(r.wrap)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts := tokenserver.Options{Issuer: issuer, Namespace: credentialsNamespace, TLSSecret: tlscontroller.ServingSecretName, AuditLog: io.Discard}
	go func() { done <- tokenserver.RunOn(ctx, sa, opts, ln, metricsLn) }()
	var once sync.Once
	return ln.Addr().String(), func() {
		once.Do(func() {
			cancel()
			g.Eventually(done).Should(Receive(BeNil()))
		})
	}
}

// httpsTo trusts the CA bundle for the token server's Service name.
func httpsTo(g Gomega, caBundle []byte) *http.Client {
	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(caBundle)).To(BeTrue())
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: tokenServerName + "." + systemNamespace + ".svc", MinVersion: tls.VersionTLS12}}}
}

// tokenAndKids fetches a token with the credential Secret's client secret and the JWKS's key ids.
func tokenAndKids(g Gomega, addr string, cred *corev1.Secret) []string {
	hc := httpsTo(g, cred.Data[authv1alpha1.CredentialKeyCACert])
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+tokenserver.TokenPath, strings.NewReader(form.Encode()))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(string(cred.Data[authv1alpha1.CredentialKeyClientID]), string(cred.Data[authv1alpha1.CredentialKeyClientSecret]))
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "a token with the client's secret")

	resp, err = hc.Get("https://" + addr + tokenserver.JWKSPath)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&jwks)).To(Succeed())
	var kids []string
	for _, k := range jwks.Keys {
		kids = append(kids, k.KID)
	}
	slices.Sort(kids)
	return kids
}

// TestReinstallKeepsEveryCredential: uninstalling the workloads (make undeploy, a deleted Argo CD
// Application) and installing them again keeps every client's secret, the signing keys and the
// CA: tokens are verifiable with the same JWKS and clients authenticate with the same secrets.
func TestReinstallKeepsEveryCredential(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx := context.Background()
	installRBAC(t)
	const ns = "reinstall"
	g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))).To(Succeed())

	_, stopController := startImpersonatedController(t)
	policy := &authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: authv1alpha1.ScopePolicySpec{
			Scopes: []authv1alpha1.ScopeDefinition{{Name: "things:read"}},
			Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"things:read"}, Clients: authv1alpha1.ClientMatcher{Namespaces: []string{ns}}}},
		},
	}
	m2mc := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"things:read"}},
	}
	g.Expect(admin.Create(ctx, policy)).To(Succeed())
	g.Expect(admin.Create(ctx, m2mc)).To(Succeed())
	cred := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "worker-m2m"}, cred)).To(Succeed())
		g.Expect(cred.Data).To(HaveKey(authv1alpha1.CredentialKeyCACert))
		g.Expect(string(cred.Data[authv1alpha1.CredentialKeyScope])).To(Equal("things:read"))
	}).Should(Succeed())
	addr, stopTokenServer := tokenServerUnderRBAC(t, g)
	var kids []string
	g.Eventually(func(g Gomega) { kids = tokenAndKids(g, addr, cred) }).Should(Succeed())
	stopTokenServer()
	stopController()

	t.Log("make undeploy: every workload object deleted")
	workloads := renderUnit(t, "workloads")
	for _, u := range workloads {
		g.Expect(client.IgnoreNotFound(admin.Delete(ctx, u.DeepCopy()))).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
	}
	for _, u := range workloads {
		g.Eventually(func() bool { return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(u), u.DeepCopy())) }).
			Should(BeTrue(), "%s %s", u.GetKind(), u.GetName())
	}
	for _, key := range []types.NamespacedName{
		{Namespace: credentialsNamespace, Name: signingkey.DefaultSecretName},
		{Namespace: credentialsNamespace, Name: tlscontroller.ServingSecretName},
		{Namespace: systemNamespace, Name: tlscontroller.CASecretName},
		{Namespace: ns, Name: "worker-m2m"},
	} {
		g.Expect(admin.Get(ctx, key, &corev1.Secret{})).To(Succeed(), "%s survives the uninstall", key)
	}
	g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(m2mc), &authv1alpha1.M2MClient{})).To(Succeed())

	t.Log("make deploy again: the same secrets, keys and CA")
	for _, u := range workloads {
		g.Expect(apply(ctx, admin, u)).To(Succeed())
	}
	_, stopController = startImpersonatedController(t)
	defer stopController()
	addr, stopTokenServer = tokenServerUnderRBAC(t, g)
	defer stopTokenServer()
	after := &corev1.Secret{}
	g.Consistently(func(g Gomega) {
		g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "worker-m2m"}, after)).To(Succeed())
		g.Expect(after.Data[authv1alpha1.CredentialKeyClientSecret]).To(Equal(cred.Data[authv1alpha1.CredentialKeyClientSecret]), "the client secret is kept")
		g.Expect(after.Data[authv1alpha1.CredentialKeyCACert]).To(Equal(cred.Data[authv1alpha1.CredentialKeyCACert]), "the CA is kept")
	}).WithTimeout(time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(tokenAndKids(g, addr, cred)).To(Equal(kids), "the same signing keys")
	}).Should(Succeed())

	// While the controller runs, so that its finalizer lets the client go.
	g.Expect(admin.Delete(ctx, m2mc)).To(Succeed())
	g.Expect(admin.Delete(ctx, policy)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(m2mc), &authv1alpha1.M2MClient{}))
	}).Should(BeTrue())
}
