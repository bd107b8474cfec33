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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/controllers"
	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// leaseName is the controller's LeaderElectionID (internal/cli/controller.go).
const leaseName = "m2m-controller.auth.m2m.dev"

// perm is one permission: a verb on a resource (with "/subresource") of a group, optionally
// limited to one object name.
type perm struct {
	group, resource, verb, name string
}

func (p perm) String() string {
	s := fmt.Sprintf("%s %s.%s", p.verb, p.resource, p.group)
	if p.name != "" {
		s += "/" + p.name
	}
	return s
}

// How a grant is shown to be needed.
type proof int

const (
	// exercised: the scenario of TestControllerWorksWithOnlyItsRBAC makes this request, so
	// removing the grant breaks it.
	exercised proof = iota
	// admission: no request carries this verb; an admission plugin checks it
	// (TestFinalizersRuleIsNeeded shows it).
	admission
	// maybe: needed, but only on a path a short run does not reliably take (an Event
	// repeating within minutes is patched into a series).
	maybe
	// cachedRead: "get" next to list/watch on a type the manager caches. The reconcilers'
	// reads are served by the cache, so the API server never sees a get; kept by kubebuilder
	// convention (a read past the cache would need it).
	cachedRead
	// unused: nothing in the code uses it. The marker that grants it should drop it; then
	// drop it here too.
	unused
)

// grant is an expected permission and why the code needs it.
type grant struct {
	perm
	proof proof
	why   string
}

func grants(group, resource string, verbs []string, pr proof, why string) []grant {
	var out []grant
	for _, v := range verbs {
		out = append(out, grant{perm: perm{group: group, resource: resource, verb: v}, proof: pr, why: why})
	}
	return out
}

func v(verbs ...string) []string { return verbs }

// controllerGrants is exactly what config/rbac/role.yaml (generated from the markers in
// controllers/) must grant, rule by rule, and why.
var controllerGrants = slices.Concat(
	grants("", "namespaces", v("list", "watch"), exercised, "M2MClient controller: caches Namespaces to resolve grants by namespaceSelector and re-resolve on label changes"),
	grants("", "namespaces", v("get"), cachedRead, "M2MClient controller: r.Get(Namespace), served by the cache"),
	grants("", "serviceaccounts", v("list", "watch"), exercised, "M2MClient controller: a metadata-only cache of ServiceAccounts, to report a ServiceAccount-method client whose ServiceAccount is missing and heal it when it appears"),
	grants("", "serviceaccounts", v("get"), cachedRead, "M2MClient controller: r.Get(ServiceAccount metadata), served by the cache"),
	grants("", "configmaps", v("list", "watch"), exercised, "M2MClient controller: the JWKS cache watches ConfigMaps labelled auth.m2m.dev/jwks=true (spec.authentication.jwksFrom); it never reads one past the cache"),
	grants("", "secrets", v("list", "watch"), exercised, "manager cache: managed Secrets in every namespace (credential Secrets, records, signing keys, TLS); the JWKS cache: Secrets labelled auth.m2m.dev/jwks=true"),
	grants("", "secrets", v("get"), exercised, "reads past the label-filtered cache (APIReader): credential Secrets, signing keys, TLS Secrets"),
	grants("", "secrets", v("create"), exercised, "credential Secret, credential record, signing keys, CA and serving Secrets"),
	grants("", "secrets", v("update"), exercised, "rotation rewrites the credential Secret and record; TLS renewals and label restores"),
	grants("", "secrets", v("patch"), exercised, "signing-key controller: restores a removed managed-by label with a merge patch"),
	grants("", "secrets", v("delete"), exercised, "M2MClient finalizer: deletes the credential Secret and record"),
	grants("auth.m2m.dev", "m2mclients", v("list", "watch"), exercised, "M2MClient controller: watches its primary resource"),
	grants("auth.m2m.dev", "m2mclients", v("get"), cachedRead, "M2MClient controller: r.Get(M2MClient), served by the cache"),
	grants("auth.m2m.dev", "m2mclients", v("patch"), exercised, "M2MClient controller: adds and removes the finalizer with a merge patch of metadata.finalizers (never an Update, which would rewrite the spec)"),
	grants("auth.m2m.dev", "m2mclients/status", v("patch"), exercised, "M2MClient controller: patchStatus"),
	grants("auth.m2m.dev", "m2mclients/finalizers", v("update"), admission, "OwnerReferencesPermissionEnforcement: blockOwnerDeletion on the credential Secret's owner reference"),
	grants("auth.m2m.dev", "scopepolicies", v("list", "watch"), exercised, "both controllers watch ScopePolicies"),
	grants("auth.m2m.dev", "scopepolicies", v("get"), cachedRead, "ScopePolicy controller: r.Get(ScopePolicy), served by the cache"),
	grants("auth.m2m.dev", "scopepolicies/status", v("patch"), exercised, "ScopePolicy controller: status patch"),
	grants("auth.m2m.dev", "audiencebindings", v("list", "watch"), exercised, "both controllers watch AudienceBindings: they decide which namespace may hold an audience"),
	grants("auth.m2m.dev", "audiencebindings", v("get"), cachedRead, "both controllers list AudienceBindings from the cache"),
	grants("events.k8s.io", "events", v("create"), exercised, "Events on M2MClients, ScopePolicies and the Secrets of the system namespace"),
	grants("events.k8s.io", "events", v("patch"), maybe, "the event broadcaster patches a repeated Event into a series"),
)

// controllerSystemGrants is exactly what the Role of config/rbac/role.yaml (generated from the
// markers with namespace=system) grants, in the system namespace only.
var controllerSystemGrants = slices.Concat(
	grants("", "configmaps", v("get"), exercised, "TLS controller: reads the CA ConfigMap past the label-filtered cache (absent, or its label removed)"),
	grants("", "configmaps", v("create", "update"), exercised, "TLS controller: publishes the CA bundle in ConfigMap m2m-tokenserver-ca, and rewrites it when edited"),
)

// leaderElectionGrants is exactly what config/rbac/leader_election_role.yaml grants, in the
// system namespace only.
var leaderElectionGrants = []grant{
	{perm: perm{group: "coordination.k8s.io", resource: "leases", verb: "create"}, proof: exercised, why: "leader election: the first replica creates the Lease"},
	{perm: perm{group: "coordination.k8s.io", resource: "leases", verb: "get", name: leaseName}, proof: exercised, why: "leader election: reads the Lease before acquiring it"},
	{perm: perm{group: "coordination.k8s.io", resource: "leases", verb: "update", name: leaseName}, proof: exercised, why: "leader election: acquires and renews the Lease"},
	{perm: perm{group: "", resource: "events", verb: "create"}, proof: exercised, why: "client-go's leader elector records core/v1 Events on the Lease (\"became leader\")"},
	{perm: perm{group: "", resource: "events", verb: "patch"}, proof: maybe, why: "the core/v1 event broadcaster patches a repeated Event"},
}

// tokenServerGrants is exactly what the Role of config/rbac/tokenserver/role.yaml grants, in
// the credentials namespace only (TestTokenServerWorksWithOnlyItsRBAC).
var tokenServerGrants = slices.Concat(
	grants("", "secrets", v("list", "watch"), exercised,
		"token server: a reflector on credential records, informers on the signing-key Secret and its TLS Secret"),
	grants("", "secrets", v("get"), cachedRead,
		"token server: never sent (informers list and watch); it reads nothing list does not already return"),
)

// tokenServerClusterGrants is exactly what the ClusterRole of config/rbac/tokenserver/role.yaml
// grants: nothing but TokenReviews. The service-account issuer discovery documents it also
// reads come from the default system:service-account-issuer-discovery binding.
var tokenServerClusterGrants = grants("authentication.k8s.io", "tokenreviews", v("create"), exercised,
	"token server: confirms ServiceAccount tokens of the ServiceAccount method (tokenserver/integration_test.go)")

// expand flattens rules into permissions.
func expand(rules []rbacv1.PolicyRule) []perm {
	var out []perm
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, verb := range r.Verbs {
					for _, n := range names {
						out = append(out, perm{group: g, resource: res, verb: verb, name: n})
					}
				}
			}
		}
	}
	return out
}

func perms(gs []grant) []perm {
	out := make([]perm, len(gs))
	for i, g := range gs {
		out[i] = g.perm
	}
	return out
}

func equalRules(a, b []rbacv1.PolicyRule) bool { return samePerms(expand(a), expand(b)) }

func samePerms(a, b []perm) bool {
	key := func(p perm) string { return p.String() }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i] = key(a[i])
	}
	for i := range b {
		kb[i] = key(b[i])
	}
	return sameSet(ka, kb)
}

func diffPerms(got, want []perm) (extra, missing []string) {
	in := func(p perm, ps []perm) bool { return slices.Contains(ps, p) }
	for _, p := range got {
		if !in(p, want) {
			extra = append(extra, p.String())
		}
	}
	for _, p := range want {
		if !in(p, got) {
			missing = append(missing, p.String())
		}
	}
	return extra, missing
}

// readRules reads the rules of the one Role or ClusterRole (kind) in a file of config/rbac.
func readRules(t *testing.T, file, kind string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var found []rbacv1.PolicyRule
	n := 0
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if meta.Kind != kind {
			continue
		}
		role := &rbacv1.ClusterRole{}
		if err := yaml.UnmarshalStrict(trimDocStart([]byte(doc)), role); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		found, n = role.Rules, n+1
	}
	if n != 1 {
		t.Fatalf("%s holds %d objects of kind %s, want 1", file, n, kind)
	}
	return found
}

func trimDocStart(data []byte) []byte {
	s := strings.TrimSpace(string(data))
	return []byte(strings.TrimPrefix(s, "---"))
}

// TestRolesGrantExactlyWhatTheCodeNeeds compares each component's RBAC, as checked in and as
// rendered, with the permissions the code needs, listed above with the reason for each.
func TestRolesGrantExactlyWhatTheCodeNeeds(t *testing.T) {
	for _, tc := range []struct {
		file, kind, name string
		want             []grant
	}{
		{"role.yaml", "ClusterRole", controllerName, controllerGrants},
		{"role.yaml", "Role", controllerName, controllerSystemGrants},
		{"leader_election_role.yaml", "Role", "m2m-leader-election", leaderElectionGrants},
		{"tokenserver/role.yaml", "Role", tokenServerName, tokenServerGrants},
		{"tokenserver/role.yaml", "ClusterRole", tokenServerName, tokenServerClusterGrants},
	} {
		t.Run(tc.file+"/"+tc.kind, func(t *testing.T) {
			for name, rules := range map[string][]rbacv1.PolicyRule{
				"config/rbac/" + tc.file: readRules(t, tc.file, tc.kind),
				"rendered":               typed[rbacv1.ClusterRole](t, object(t, tc.kind, tc.name)).Rules,
			} {
				if extra, missing := diffPerms(expand(rules), perms(tc.want)); len(extra)+len(missing) > 0 {
					t.Errorf("%s: grants %v that the code does not need (or that this test does not explain); lacks %v", name, extra, missing)
				}
			}
			for _, g := range tc.want {
				if g.proof == unused {
					t.Logf("excess grant, to remove from its marker: %s (%s)", g.perm, g.why)
				}
			}
		})
	}
}

// request is one API request the controller made, as RBAC sees it.
type request struct {
	perm
	namespace string
	code      int
}

// recorder records every resource request of the transports it wraps.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

// wrap is a rest.Config transport wrapper; every client built from the config gets its own.
func (r *recorder) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil {
			if rq, ok := parseRequest(req.Method, req.URL); ok {
				rq.code = resp.StatusCode
				r.mu.Lock()
				r.reqs = append(r.reqs, rq)
				r.mu.Unlock()
			}
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// made reports whether a request needing p got past authorization. Any answer but 401 or 403
// did: the API server authorizes before it looks the object up (a 404 still needed the grant).
func (r *recorder) made(p perm) bool {
	return slices.ContainsFunc(r.requests(), func(rq request) bool {
		return rq.code != http.StatusForbidden && rq.code != http.StatusUnauthorized && covers(p, rq.perm)
	})
}

// covers reports whether grant g allows request p.
func covers(g, p perm) bool {
	return g.group == p.group && g.resource == p.resource && g.verb == p.verb && (g.name == "" || g.name == p.name)
}

// parseRequest maps a request to the RBAC verb, group, resource and name the API server
// authorizes, like the API server's RequestInfoFactory. Discovery and other non-resource
// requests are skipped.
func parseRequest(method string, u *url.URL) (request, bool) {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return request{}, false
	}
	var rq request
	if len(parts) >= 3 && parts[0] == "namespaces" {
		rq.namespace, parts = parts[1], parts[2:]
	}
	rq.group, rq.resource = group, parts[0]
	if len(parts) > 1 {
		rq.name = parts[1]
	}
	if len(parts) > 2 {
		rq.resource += "/" + parts[2]
	}
	switch method {
	case http.MethodGet:
		switch {
		case rq.name != "":
			rq.verb = "get"
		case u.Query().Get("watch") == "true" || u.Query().Get("watch") == "1":
			rq.verb = "watch"
		default:
			rq.verb = "list"
		}
	case http.MethodPost:
		rq.verb = "create"
	case http.MethodPut:
		rq.verb = "update"
	case http.MethodPatch:
		rq.verb = "patch"
	case http.MethodDelete:
		rq.verb = "delete"
		if rq.name == "" {
			rq.verb = "deletecollection"
		}
	default:
		return request{}, false
	}
	return rq, true
}

// serviceAccountConfig is cfg impersonating a ServiceAccount of the system namespace, exactly as
// its pods authenticate.
func serviceAccountConfig(name string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: serviceAccountUser(name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"},
	}
	return c
}

func serviceAccountUser(name string) string {
	return "system:serviceaccount:" + systemNamespace + ":" + name
}

// installRBAC applies the rendered ServiceAccounts, roles and bindings for real.
func installRBAC(t *testing.T) {
	t.Helper()
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		for _, u := range objects(kind) {
			if err := apply(context.Background(), admin, u); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// startImpersonatedController runs every reconciler of `m2m controller`, wired as in
// internal/cli/controller.go (label-filtered Secret cache, leader election in the system
// namespace, the in-cluster flags), as the controller's ServiceAccount, and records its
// requests. The stop function waits for the manager to stop.
func startImpersonatedController(t *testing.T) (*recorder, func()) {
	t.Helper()
	rec := &recorder{}
	c := serviceAccountConfig(controllerName)
	c.Wrap(rec.wrap)
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	skip := true
	mgr, err := ctrl.NewManager(c, ctrl.Options{
		Scheme:                  testenv.Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        leaseName,
		LeaderElectionNamespace: systemNamespace,
		// Short periods so that the Lease is renewed (updated) within the test.
		LeaseDuration: ptr(3 * time.Second),
		RenewDeadline: ptr(2 * time.Second),
		RetryPeriod:   ptr(250 * time.Millisecond),
		Cache:         cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}, &corev1.ConfigMap{}: {Label: managed}}},
		Controller:    ctrlcfg.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	// CABundle as `m2m controller --tokenserver-tls` sets it: credential Secrets carry ca.crt.
	opts := controllers.Options{SystemNamespace: systemNamespace, CredentialsNamespace: credentialsNamespace, Issuer: issuer, CABundle: true}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	keys := &skctrl.Reconciler{Namespace: credentialsNamespace, Name: signingkey.DefaultSecretName, Policy: signingkey.Policy{
		Algorithm: signingkey.ES256, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 24*time.Hour + 5*time.Minute,
	}}
	if err := keys.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	tlsNamespaces := tlscontroller.Namespaces{System: systemNamespace, Credentials: credentialsNamespace}
	if err := tlscontroller.SetupWithManager(mgr, tlscontroller.Options{Enabled: true, ServiceName: tokenServerName}, tlsNamespaces); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return rec, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestControllerWorksWithOnlyItsRBAC runs the whole controller as its ServiceAccount, bound only
// to the rendered RBAC, through a client's life: a policy grants it a scope, it gets its
// credentials, is rotated, and is deleted. Every request must be allowed, every request must be
// explained by controllerGrants or leaderElectionGrants, and every grant marked "exercised" must
// have been used: removing any of them would break a request the controller made.
func TestControllerWorksWithOnlyItsRBAC(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx := context.Background()
	installRBAC(t)
	// A fresh start, as on a new install: the first replica creates the Lease.
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: leaseName}}
	g.Expect(client.IgnoreNotFound(admin.Delete(ctx, lease))).To(Succeed())
	rec, stop := startImpersonatedController(t)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "payments", Labels: map[string]string{"team": "payments"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "billing"}},
	} {
		g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, ns))).To(Succeed())
	}
	policy := &authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "billing"},
		Spec: authv1alpha1.ScopePolicySpec{
			Audience: "billing.billing",
			Scopes:   []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
			Grants: []authv1alpha1.Grant{{
				Scopes:  []authv1alpha1.GrantScope{"invoices:read"},
				Clients: authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}},
			}},
		},
	}
	g.Expect(admin.Create(ctx, policy)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(ctx, policy) })
	m2mc := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"}},
	}
	g.Expect(admin.Create(ctx, m2mc)).To(Succeed())

	t.Log("the client becomes Ready with a credential Secret and a record")
	credKey := types.NamespacedName{Namespace: "payments", Name: "worker-m2m"}
	var firstSecret []byte
	g.Eventually(func(g Gomega) {
		c := &authv1alpha1.M2MClient{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(m2mc), c)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, authv1alpha1.ConditionReady)).To(BeTrue(), "%+v", c.Status.Conditions)
		cred := &corev1.Secret{}
		g.Expect(admin.Get(ctx, credKey, cred)).To(Succeed())
		firstSecret = cred.Data[authv1alpha1.CredentialKeyClientSecret]
		g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: credentialsNamespace, Name: string(c.UID)}, &corev1.Secret{})).To(Succeed())
		p := &authv1alpha1.ScopePolicy{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(policy), p)).To(Succeed())
		g.Expect(p.Status.Clients).To(Equal(int32(1)))
	}).Should(Succeed())

	t.Log("signing keys and the serving Secret are issued in the credentials namespace, the CA in the system namespace")
	for _, key := range []types.NamespacedName{
		{Namespace: credentialsNamespace, Name: signingkey.DefaultSecretName},
		{Namespace: credentialsNamespace, Name: tlscontroller.ServingSecretName},
		{Namespace: systemNamespace, Name: tlscontroller.CASecretName},
	} {
		g.Eventually(func() error { return admin.Get(ctx, key, &corev1.Secret{}) }).Should(Succeed(), key.String())
	}
	onlyRecordsKeysAndTLS(t, g)

	t.Log("a manual rotation rewrites the credential Secret")
	g.Expect(admin.Patch(ctx, m2mc, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"auth.m2m.dev/rotate":"1"}}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		cred := &corev1.Secret{}
		g.Expect(admin.Get(ctx, credKey, cred)).To(Succeed())
		g.Expect(cred.Data[authv1alpha1.CredentialKeyClientSecret]).NotTo(Equal(firstSecret))
	}).Should(Succeed())

	t.Log("a PrivateKeyJWT client reads its JWKS from a labelled ConfigMap")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1"}}})
	g.Expect(err).NotTo(HaveOccurred())
	keysCM := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "signer-keys", Labels: map[string]string{authv1alpha1.LabelJWKS: "true"}},
		Data:       map[string]string{"jwks.json": string(doc)},
	}
	g.Expect(admin.Create(ctx, keysCM)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(ctx, keysCM) })
	signer := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "signer"},
		Spec: authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"}, Authentication: &authv1alpha1.Authentication{
			Method:   authv1alpha1.AuthPrivateKeyJWT,
			JWKSFrom: &authv1alpha1.JWKSSource{ConfigMapKeyRef: &authv1alpha1.KeyReference{Name: keysCM.Name, Key: "jwks.json"}},
		}},
	}
	g.Expect(admin.Create(ctx, signer)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := &authv1alpha1.M2MClient{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(signer), c)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, authv1alpha1.ConditionReady)).To(BeTrue(), "%+v", c.Status.Conditions)
	}).Should(Succeed())
	g.Expect(admin.Delete(ctx, signer)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(signer), &authv1alpha1.M2MClient{}))
	}).Should(BeTrue())

	t.Log("a removed managed-by label is put back on the signing-key Secret")
	keysKey := types.NamespacedName{Namespace: credentialsNamespace, Name: signingkey.DefaultSecretName}
	g.Expect(admin.Patch(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keysKey.Namespace, Name: keysKey.Name}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}}}`)))).To(Succeed())
	// To the label-filtered cache this is a deletion: the reconciler wakes up, finds the Secret
	// past the cache and patches the label back.
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(admin.Get(ctx, keysKey, s)).To(Succeed())
		g.Expect(s.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
	}).Should(Succeed())

	t.Log("the CA bundle is published in the system namespace, and put back when edited")
	caKey := types.NamespacedName{Namespace: systemNamespace, Name: tlscontroller.CAConfigMapName}
	g.Eventually(func() error { return admin.Get(ctx, caKey, &corev1.ConfigMap{}) }).Should(Succeed())
	g.Expect(admin.Patch(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: caKey.Namespace, Name: caKey.Name}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}},"data":{"ca.crt":"edited"}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(admin.Get(ctx, caKey, cm)).To(Succeed())
		g.Expect(cm.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
		g.Expect(cm.Data[tlscontroller.CACertKey]).To(HavePrefix("-----BEGIN CERTIFICATE-----"))
	}).Should(Succeed())

	t.Log("deleting the client removes both of its Secrets, then the client")
	g.Expect(admin.Delete(ctx, m2mc)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(m2mc), &authv1alpha1.M2MClient{}))
	}).Should(BeTrue())
	g.Expect(apierrors.IsNotFound(admin.Get(ctx, credKey, &corev1.Secret{}))).To(BeTrue())

	t.Log("the Lease is held and renewed by this controller, and leader election was recorded")
	g.Eventually(func(g Gomega) {
		l := &coordinationv1.Lease{}
		g.Expect(admin.Get(ctx, types.NamespacedName{Namespace: systemNamespace, Name: leaseName}, l)).To(Succeed())
		g.Expect(l.Spec.HolderIdentity).NotTo(BeNil())
		for _, gr := range slices.Concat(controllerGrants, controllerSystemGrants, leaderElectionGrants) {
			if gr.proof == exercised {
				g.Expect(rec.made(gr.perm)).To(BeTrue(), "no request used %s (%s); requests: %v", gr.perm, gr.why, uniqueRequests(rec.requests()))
			}
		}
	}).Should(Succeed())
	stop()
	stopped = true

	checkRequests(t, rec.requests())
	if testing.Verbose() {
		for _, rq := range uniqueRequests(rec.requests()) {
			t.Log(rq)
		}
	}
}

// uniqueRequests lists the distinct requests, for reading.
func uniqueRequests(reqs []request) []string {
	var out []string
	for _, rq := range reqs {
		s := fmt.Sprintf("%d %s in %q", rq.code, rq.perm, rq.namespace)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// checkRequests asserts that no request was refused and that each is explained by a grant.
func checkRequests(t *testing.T, reqs []request) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("no request was recorded")
	}
	seen := map[string]bool{}
	for _, rq := range reqs {
		key := fmt.Sprintf("%s in %q", rq.perm, rq.namespace)
		if rq.code == http.StatusForbidden {
			t.Errorf("forbidden: %s", key)
		}
		allowed := slices.ContainsFunc(controllerGrants, func(g grant) bool { return covers(g.perm, rq.perm) }) ||
			(rq.namespace == systemNamespace && slices.ContainsFunc(slices.Concat(controllerSystemGrants, leaderElectionGrants), func(g grant) bool { return covers(g.perm, rq.perm) }))
		if !allowed && !seen[key] {
			t.Errorf("request %s is not explained by any expected grant", key)
		}
		seen[key] = true
		for _, g := range controllerGrants {
			if (g.proof == unused || g.proof == cachedRead) && covers(g.perm, rq.perm) {
				t.Errorf("%s is marked %v but the controller used it: mark it exercised", g.perm, g.proof)
			}
		}
	}
}

// TestFinalizersRuleIsNeeded shows the one controller grant no request carries: with
// OwnerReferencesPermissionEnforcement on, creating the credential Secret with
// blockOwnerDeletion on its owner reference needs update on m2mclients/finalizers.
func TestFinalizersRuleIsNeeded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installRBAC(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finalizers-proof"}}
	g.Expect(client.IgnoreAlreadyExists(admin.Create(ctx, ns))).To(Succeed())
	owner := &authv1alpha1.M2MClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "owner"}}
	g.Expect(admin.Create(ctx, owner)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(ctx, owner) })
	sa, err := client.New(serviceAccountConfig(controllerName), client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	owned := func() error {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "owned", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: authv1alpha1.GroupVersion.String(), Kind: "M2MClient", Name: owner.Name, UID: owner.UID,
			Controller: ptr(true), BlockOwnerDeletion: ptr(true),
		}}}}
		return sa.Create(ctx, s, client.DryRunAll)
	}
	g.Expect(owned()).To(Succeed(), "with the generated role")

	role := &rbacv1.ClusterRole{}
	g.Expect(admin.Get(ctx, types.NamespacedName{Name: controllerName}, role)).To(Succeed())
	original := role.DeepCopy()
	t.Cleanup(func() {
		restored := &rbacv1.ClusterRole{}
		if err := admin.Get(ctx, types.NamespacedName{Name: controllerName}, restored); err == nil {
			restored.Rules = original.Rules
			if err := admin.Update(ctx, restored); err != nil {
				t.Errorf("restoring the ClusterRole: %v", err)
			}
		}
	})
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "m2mclients/finalizers") })
	g.Expect(role.Rules).To(HaveLen(len(original.Rules) - 1))
	g.Expect(admin.Update(ctx, role)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := owned()
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "without update on m2mclients/finalizers the owned Secret must be refused; got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("blockOwnerDeletion"))
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
}
