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

// The token server's least privilege, proven against the real API server under the rendered
// RBAC: it may read the Secrets of the credentials namespace (records, signing keys, its TLS
// Secret) and create TokenReviews, and nothing else any other ServiceAccount may not; it cannot
// read the CA key.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// tenantNamespace is a namespace of clients, whose Secrets are none of the token server's
// business.
const tenantNamespace = "payments"

// onlyRecordsKeysAndTLS asserts that the credentials namespace holds nothing but what the token
// server needs: credential records, the signing-key Secret and its serving Secret. Whatever else
// were there, the token server could read it.
func onlyRecordsKeysAndTLS(t *testing.T, g *WithT) {
	t.Helper()
	list := &corev1.SecretList{}
	g.Expect(admin.List(context.Background(), list, client.InNamespace(credentialsNamespace))).To(Succeed())
	for _, s := range list.Items {
		_, labelled := s.Labels[authv1alpha1.LabelClientID]
		switch {
		case s.Type == authv1alpha1.SecretTypeCredentialRecord && labelled:
		case s.Name == signingkey.DefaultSecretName && s.Type == signingkey.SecretType:
		case s.Name == tlscontroller.ServingSecretName && s.Type == corev1.SecretTypeTLS:
			g.Expect(s.Data).NotTo(HaveKey(tlscontroller.CAKeyKey), "the serving Secret holds the CA key")
		default:
			t.Errorf("Secret %s (type %s) is in the credentials namespace, which the token server reads", s.Name, s.Type)
		}
	}
}

// serviceAccountGroups are the groups of a ServiceAccount of the system namespace.
func serviceAccountGroups() []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"}
}

// access is one request's attributes, as the authorizer sees them.
type access struct {
	namespace, group, resource, subresource, name, verb string
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += "/" + a.name
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return a.verb + " " + r + " " + where
}

// allowed asks the API server's authorizer whether user (a ServiceAccount of the system
// namespace) may do a.
func allowed(t *testing.T, c client.Client, user string, a access) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: serviceAccountGroups(),
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Group: a.group, Resource: a.resource, Subresource: a.subresource, Name: a.name, Verb: a.verb,
		},
	}}
	if err := c.Create(context.Background(), sar); err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return sar.Status.Allowed
}

// everyAccess lists every verb on every resource and subresource the API server serves (from
// discovery, plus the verbs discovery does not list: impersonate, bind, escalate, approve, sign),
// in every namespace that matters and across all namespaces.
func everyAccess(t *testing.T) []access {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var out []access
	for _, list := range lists {
		gv, err := schemaGroup(list.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.APIResources {
			resource, sub, _ := strings.Cut(r.Name, "/")
			scopes := []string{""}
			if r.Namespaced {
				scopes = append(scopes, credentialsNamespace, systemNamespace, tenantNamespace)
			}
			for _, verb := range r.Verbs {
				for _, ns := range scopes {
					out = append(out, access{namespace: ns, group: gv, resource: resource, subresource: sub, verb: verb})
				}
			}
		}
	}
	out = append(out, []access{
		{resource: "users", verb: "impersonate"},
		{resource: "groups", verb: "impersonate"},
		{resource: "serviceaccounts", verb: "impersonate"},
		{resource: "serviceaccounts", verb: "impersonate", namespace: credentialsNamespace},
		{group: "authentication.k8s.io", resource: "uids", verb: "impersonate"},
		{group: "authentication.k8s.io", resource: "userextras", subresource: "scopes", verb: "impersonate"},
		{group: "rbac.authorization.k8s.io", resource: "roles", verb: "bind", namespace: credentialsNamespace},
		{group: "rbac.authorization.k8s.io", resource: "roles", verb: "escalate", namespace: credentialsNamespace},
		{group: "rbac.authorization.k8s.io", resource: "clusterroles", verb: "bind"},
		{group: "rbac.authorization.k8s.io", resource: "clusterroles", verb: "escalate"},
		{group: "certificates.k8s.io", resource: "signers", verb: "approve"},
		{group: "certificates.k8s.io", resource: "signers", verb: "sign"},
	}...)
	return out
}

func schemaGroup(groupVersion string) (string, error) {
	group, _, found := strings.Cut(groupVersion, "/")
	if !found {
		return "", nil // the core group: "v1"
	}
	if group == "" {
		return "", fmt.Errorf("malformed group version %q", groupVersion)
	}
	return group, nil
}

// sarClient is an admin client without client-side rate limiting, for thousands of reviews.
func sarClient(t *testing.T) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 5000, 10000
	cl, err := client.New(c, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestTokenServerMayOnlyReadTheCredentialsNamespace asks the API server's authorizer, for every
// verb on every resource it serves, in the credentials, system and a tenant namespace and across
// all namespaces, whether the token server's ServiceAccount may do it under the rendered RBAC,
// and compares with another ServiceAccount of the same namespace (what every ServiceAccount
// gets from the cluster's default bindings: discovery, self reviews). The difference must be
// exactly: read Secrets in the credentials namespace, and create TokenReviews.
func TestTokenServerMayOnlyReadTheCredentialsNamespace(t *testing.T) {
	installRBAC(t)
	c := sarClient(t)
	ts, other := serviceAccountUser(tokenServerName), serviceAccountUser("someone-else")
	var beyond []string
	checked := 0
	for _, a := range everyAccess(t) {
		checked++
		if allowed(t, c, ts, a) && !allowed(t, c, other, a) {
			beyond = append(beyond, a.String())
		}
	}
	want := []string{
		access{namespace: credentialsNamespace, resource: "secrets", verb: "get"}.String(),
		access{namespace: credentialsNamespace, resource: "secrets", verb: "list"}.String(),
		access{namespace: credentialsNamespace, resource: "secrets", verb: "watch"}.String(),
		access{group: "authentication.k8s.io", resource: "tokenreviews", verb: "create"}.String(),
	}
	if !sameSet(beyond, want) {
		t.Errorf("beyond what any ServiceAccount may do, the token server may %q; want exactly %q", beyond, want)
	}
	if checked < 500 {
		t.Fatalf("only %d accesses checked: discovery returned too little", checked)
	}
	t.Logf("%d accesses checked", checked)

	// By name, for the record: the CA key and the controller's Lease.
	for _, a := range []access{
		{namespace: systemNamespace, resource: "secrets", name: tlscontroller.CASecretName, verb: "get"},
		{namespace: systemNamespace, resource: "secrets", name: tlscontroller.CASecretName, verb: "watch"},
		{namespace: systemNamespace, group: "coordination.k8s.io", resource: "leases", name: leaseName, verb: "update"},
	} {
		if allowed(t, c, ts, a) {
			t.Errorf("the token server may %s", a)
		}
	}
	// The ServiceAccount method also reads the service-account issuer discovery documents,
	// through the default system:service-account-issuer-discovery binding, not its own roles.
	for _, path := range []string{"/.well-known/openid-configuration", "/openid/v1/jwks"} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: ts, Groups: serviceAccountGroups(),
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"},
		}}
		if err := c.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		if !sar.Status.Allowed {
			t.Errorf("token server get %s: refused; the ServiceAccount method needs it (default system:service-account-issuer-discovery binding)", path)
		}
	}
}

// TestTokenServerRequestsAsItsServiceAccount makes real requests as the token server's
// ServiceAccount (impersonated, exactly as its pods authenticate): it reads and watches the
// Secrets of the credentials namespace and creates TokenReviews; the CA Secret, the system
// namespace's and a tenant's Secrets are refused, and so is every write.
func TestTokenServerRequestsAsItsServiceAccount(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installRBAC(t)
	for _, ns := range []string{tenantNamespace} {
		g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))).To(Succeed())
	}
	// What the token server must and must not see. The CA Secret may exist already (the
	// controller tests issue one); its content does not matter here.
	probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: "rbac-probe"}, StringData: map[string]string{"k": "v"}}
	tenant := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "tenant-secret"}, StringData: map[string]string{"k": "v"}}
	for _, s := range []*corev1.Secret{probe, tenant} {
		g.Expect(admin.Create(ctx, s)).To(Succeed())
		t.Cleanup(func() { _ = admin.Delete(ctx, s) })
	}
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: tlscontroller.CASecretName}, StringData: map[string]string{"k": "v"}}
	g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, ca))).To(Succeed())

	sa := serviceAccountConfig(tokenServerName)
	ts, err := client.New(sa, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	cs, err := kubernetes.NewForConfig(sa)
	g.Expect(err).NotTo(HaveOccurred())

	t.Log("allowed: read and watch the credentials namespace, create TokenReviews")
	list := &corev1.SecretList{}
	g.Expect(ts.List(ctx, list, client.InNamespace(credentialsNamespace))).To(Succeed())
	g.Expect(list.Items).To(ContainElement(HaveField("Name", probe.Name)))
	g.Expect(ts.Get(ctx, client.ObjectKeyFromObject(probe), &corev1.Secret{})).To(Succeed())
	w, err := cs.CoreV1().Secrets(credentialsNamespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + probe.Name})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(w.ResultChan()).WithTimeout(10 * time.Second).Should(Receive(HaveField("Type", watch.Added)))
	w.Stop()
	review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(review.Status.Authenticated).To(BeFalse())

	t.Log("refused: the CA key, other namespaces' Secrets, every write")
	dry := client.DryRunAll
	refused := map[string]func() error{
		"get the CA Secret":         func() error { return ts.Get(ctx, client.ObjectKeyFromObject(ca), &corev1.Secret{}) },
		"list the system namespace": func() error { return ts.List(ctx, &corev1.SecretList{}, client.InNamespace(systemNamespace)) },
		"get a tenant's Secret":     func() error { return ts.Get(ctx, client.ObjectKeyFromObject(tenant), &corev1.Secret{}) },
		"list a tenant's Secrets":   func() error { return ts.List(ctx, &corev1.SecretList{}, client.InNamespace(tenantNamespace)) },
		"list Secrets everywhere":   func() error { return ts.List(ctx, &corev1.SecretList{}) },
		"watch the system namespace": func() error {
			_, err := cs.CoreV1().Secrets(systemNamespace).Watch(ctx, metav1.ListOptions{})
			return err
		},
		"list ConfigMaps of its namespace": func() error {
			return ts.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(credentialsNamespace))
		},
		"create a Secret in the credentials namespace": func() error {
			return ts.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: "forged"}}, dry)
		},
		"update a Secret in the credentials namespace": func() error {
			s := probe.DeepCopy()
			s.StringData = map[string]string{"k": "forged"}
			return ts.Update(ctx, s, dry)
		},
		"patch a Secret in the credentials namespace": func() error {
			return ts.Patch(ctx, probe.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"data":{"k":"Zm9yZ2Vk"}}`)), dry)
		},
		"delete a Secret in the credentials namespace": func() error { return ts.Delete(ctx, probe.DeepCopy(), dry) },
		"delete every Secret of the credentials namespace": func() error {
			return ts.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(credentialsNamespace), dry)
		},
		"create a Secret in the system namespace": func() error {
			return ts.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: "forged"}}, dry)
		},
		"grant itself a Role": func() error {
			return ts.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: "forged"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: tokenServerName, Namespace: systemNamespace}},
			}, dry)
		},
		"write an M2MClient": func() error {
			return ts.Create(ctx, &authv1alpha1.M2MClient{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "forged"}}, dry)
		},
	}
	for what, f := range refused {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want Forbidden", what, err)
		}
	}
}

// TestTokenServerWorksWithOnlyItsRBAC runs the controller and the token server, each as its
// own ServiceAccount under the rendered RBAC and wired as in the install (the token server
// reads the credentials namespace and serves HTTPS with the controller's certificate), and
// gets a token over TLS verified against the ca.crt of the client's credential Secret. Every
// request the token server made must be allowed and explained by its grants, and the list and
// watch it is granted must have been used.
func TestTokenServerWorksWithOnlyItsRBAC(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx := context.Background()
	installRBAC(t)
	_, stopController := startImpersonatedController(t)
	defer stopController()
	for _, ns := range []string{tenantNamespace, "billing"} {
		g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))).To(Succeed())
	}
	policy := &authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "tokens"},
		Spec: authv1alpha1.ScopePolicySpec{
			Audience: "tokens.billing",
			Scopes:   []authv1alpha1.ScopeDefinition{{Name: "tokens:read"}},
			Grants: []authv1alpha1.Grant{{
				Scopes:  []authv1alpha1.GrantScope{"tokens:read"},
				Clients: authv1alpha1.ClientMatcher{Namespaces: []string{tenantNamespace}},
			}},
		},
	}
	g.Expect(admin.Create(ctx, policy)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(ctx, policy) })
	m2mc := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "token-getter"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"tokens:read"}},
	}
	g.Expect(admin.Create(ctx, m2mc)).To(Succeed())

	cred := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: tenantNamespace, Name: "token-getter-m2m"}, cred)).To(Succeed())
		g.Expect(cred.Data).To(HaveKey(authv1alpha1.CredentialKeyClientSecret))
		g.Expect(cred.Data).To(HaveKey(authv1alpha1.CredentialKeyCACert))
	}).Should(Succeed())
	onlyRecordsKeysAndTLS(t, g)

	rec := &recorder{}
	addr, stop := tokenServerUnderRBAC(t, g, rec)
	defer stop()

	t.Log("a token over HTTPS, verified against the credential Secret's ca.crt for the Service's name")
	hc := httpsTo(g, cred.Data[authv1alpha1.CredentialKeyCACert])
	g.Eventually(func(g Gomega) {
		form := url.Values{"grant_type": {"client_credentials"}}
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+tokenserver.TokenPath, strings.NewReader(form.Encode()))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(string(cred.Data[authv1alpha1.CredentialKeyClientID]), string(cred.Data[authv1alpha1.CredentialKeyClientSecret]))
		resp, err := hc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		var body struct {
			AccessToken string `json:"access_token"`
		}
		g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
		g.Expect(body.AccessToken).NotTo(BeEmpty())
	}).Should(Succeed())
	stop()
	// While the controller still runs, so that its finalizer lets the client go.
	g.Expect(admin.Delete(ctx, m2mc)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(m2mc), &authv1alpha1.M2MClient{}))
	}).Should(BeTrue())

	reqs := rec.requests()
	if len(reqs) == 0 {
		t.Fatal("the token server made no request")
	}
	for _, rq := range uniqueTokenServerRequests(reqs) {
		explained := (rq.namespace == credentialsNamespace && slices.ContainsFunc(tokenServerGrants, func(gr grant) bool { return covers(gr.perm, rq.perm) })) ||
			(rq.namespace == "" && slices.ContainsFunc(tokenServerClusterGrants, func(gr grant) bool { return covers(gr.perm, rq.perm) }))
		if rq.code == http.StatusForbidden || !explained {
			t.Errorf("token server request %s in %q (%d) is refused or not explained by its grants", rq.perm, rq.namespace, rq.code)
		}
	}
	for _, gr := range tokenServerGrants {
		used := rec.made(gr.perm)
		if gr.proof == exercised && !used {
			t.Errorf("no request used %s (%s)", gr.perm, gr.why)
		}
		if gr.proof != exercised && used {
			t.Errorf("%s is marked %v but the token server used it: mark it exercised", gr.perm, gr.proof)
		}
	}
}

// uniqueTokenServerRequests drops repeated requests (informers relist and rewatch).
func uniqueTokenServerRequests(reqs []request) []request {
	var out []request
	for _, rq := range reqs {
		if !slices.Contains(out, rq) {
			out = append(out, rq)
		}
	}
	return out
}
