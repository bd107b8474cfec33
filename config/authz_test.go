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
	"flag"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

const authzName = "m2m-authz"

// authzGrants is exactly what config/authz/role.yaml (generated from the markers in
// internal/authz) grants: reads of the two kinds its informers watch.
var authzGrants = slices.Concat(
	grants("auth.m2m.dev", "scopepolicies", v("list", "watch"), exercised, "m2m authz: the informer of the route table"),
	grants("auth.m2m.dev", "audiencebindings", v("list", "watch"), exercised, "m2m authz: which namespace holds an audience"),
	grants("auth.m2m.dev", "scopepolicies", v("get"), cachedRead, "never sent: the table is compiled from the informers' caches"),
	grants("auth.m2m.dev", "audiencebindings", v("get"), cachedRead, "never sent: the table is compiled from the informers' caches"),
)

// renderAuthz renders the optional component config/authz.
func renderAuthz(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(filepath.Join(testenv.RepoRoot(), "config", "authz"), "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("config/authz renders no %s %q", kind, name)
	return nil
}

// TestAuthzBundle checks config/authz: its objects, all in the system namespace and none in
// config/default, pass a server-side dry run without a warning (schema, Pod Security
// "restricted", RBAC escalation checks), and the Deployment's args are flags of `m2m authz`
// that trust the CA ConfigMap the controller publishes, mounted where --issuer-ca-file reads.
func TestAuthzBundle(t *testing.T) {
	objs := renderAuthz(t)
	var got []string
	for _, u := range objs {
		got = append(got, u.GetKind()+"/"+u.GetName())
		if ns := u.GetNamespace(); ns != "" && ns != systemNamespace {
			t.Errorf("%s %s is in namespace %q, want %q", u.GetKind(), u.GetName(), ns, systemNamespace)
		}
		if u.GetLabels()["app.kubernetes.io/part-of"] != "m2m-operator" {
			t.Errorf("%s %s lacks the part-of label", u.GetKind(), u.GetName())
		}
	}
	want := []string{"ServiceAccount/" + authzName, "ClusterRole/" + authzName, "ClusterRoleBinding/" + authzName,
		"Deployment/" + authzName, "Service/" + authzName, "PodDisruptionBudget/" + authzName, "NetworkPolicy/" + authzName}
	if !sameSet(got, want) {
		t.Errorf("config/authz renders %v, want %v", got, want)
	}
	for _, u := range rendered {
		if strings.Contains(u.GetName(), "authz") {
			t.Errorf("config/default renders %s %s: m2m authz is an optional component", u.GetKind(), u.GetName())
		}
	}

	c, w := dryRunClient(t)
	for _, u := range objs {
		if err := apply(context.Background(), c, u, client.DryRunAll); err != nil {
			t.Error(err)
		}
		if ws := w.Take(); len(ws) > 0 {
			t.Errorf("%s %s: the API server warned: %s", u.GetKind(), u.GetName(), strings.Join(ws, "; "))
		}
	}

	dep := typed[appsv1.Deployment](t, find(t, objs, "Deployment", authzName))
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != authzName {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, authzName)
	}
	ctr := pod.Containers[0]
	if len(ctr.Args) == 0 || ctr.Args[0] != "authz" {
		t.Fatalf("args %q do not run m2m authz", ctr.Args)
	}
	fs := flag.NewFlagSet("authz", flag.ContinueOnError)
	opts := authz.DefaultOptions()
	opts.BindFlags(fs)
	if err := fs.Parse(ctr.Args[1:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("args %q are not flags of m2m authz: %v", ctr.Args[1:], err)
	}
	if opts.Issuer != issuer {
		t.Errorf("--issuer=%q, want the token server's %q", opts.Issuer, issuer)
	}
	if path.Base(opts.IssuerCAFile) != tlscontroller.CACertKey {
		t.Errorf("--issuer-ca-file=%q does not read %s", opts.IssuerCAFile, tlscontroller.CACertKey)
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		for _, vol := range pod.Volumes {
			if vol.Name == m.Name && m.MountPath == path.Dir(opts.IssuerCAFile) && vol.ConfigMap != nil && vol.ConfigMap.Name == tlscontroller.CAConfigMapName {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("--issuer-ca-file=%q is not in a mount of ConfigMap %s (volumes %+v)", opts.IssuerCAFile, tlscontroller.CAConfigMapName, pod.Volumes)
	}
	ports := map[string]bool{}
	for _, p := range typed[corev1.Service](t, find(t, objs, "Service", authzName)).Spec.Ports {
		ports[p.TargetPort.String()] = true
	}
	if !ports["http"] || !ports["grpc"] || len(ports) != 2 {
		t.Errorf("the Service exposes %v, want the forward-auth (http) and ext_authz (grpc) ports only", ports)
	}
}

// TestAuthzWorksWithOnlyItsRBAC installs the bundle's ServiceAccount, ClusterRole and binding
// for real and runs m2m authz's informers as that ServiceAccount: they sync, every request is
// explained by authzGrants, and it can read no Secret or ConfigMap and write no ScopePolicy
// (it mounts the CA ConfigMap, so it needs no API right for it).
func TestAuthzWorksWithOnlyItsRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	objs := renderAuthz(t)
	if extra, missing := diffPerms(expand(typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", authzName)).Rules), perms(authzGrants)); len(extra)+len(missing) > 0 {
		t.Errorf("the ClusterRole grants %v that m2m authz does not need; lacks %v", extra, missing)
	}
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		if err := apply(ctx, admin, find(t, objs, kind, authzName)); err != nil {
			t.Fatal(err)
		}
	}

	rec := &recorder{}
	c := serviceAccountConfig(authzName)
	c.Wrap(rec.wrap)
	pol, err := authz.NewPolicies(c, authz.NewDecider(nil, nil), logr.Discard())
	g.Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pol.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the informers: %v", err)
		}
	}()
	select {
	case <-pol.Synced():
	case err := <-done:
		t.Fatalf("the informers stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the informers did not sync with the bundle's RBAC")
	}
	// Synced follows the lists; each watch starts right after its list.
	g.Eventually(func(g Gomega) {
		for _, gr := range authzGrants {
			if gr.proof == exercised {
				g.Expect(rec.made(gr.perm)).To(BeTrue(), "no request used %s (%s)", gr.perm, gr.why)
			}
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	for _, rq := range rec.requests() {
		if rq.code == 403 || !slices.ContainsFunc(authzGrants, func(gr grant) bool { return covers(gr.perm, rq.perm) }) {
			t.Errorf("request %s (code %d) is not explained by the ClusterRole", rq.perm, rq.code)
		}
	}

	sa, err := client.New(serviceAccountConfig(authzName), client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: want Forbidden, got %v", what, err)
		}
	}
	for _, ns := range []string{systemNamespace, credentialsNamespace} {
		forbidden("get Secret "+ns+"/"+tlscontroller.CASecretName, sa.Get(ctx, client.ObjectKey{Namespace: ns, Name: tlscontroller.CASecretName}, &corev1.Secret{}))
		forbidden("list Secrets in "+ns, sa.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)))
		forbidden("list ConfigMaps in "+ns, sa.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(ns)))
	}
	forbidden("get the CA ConfigMap", sa.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: tlscontroller.CAConfigMapName}, &corev1.ConfigMap{}))
	policy := &authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: "authz-may-not-write"},
		Spec:       authv1alpha1.ScopePolicySpec{Audience: "authz.example", Scopes: []authv1alpha1.ScopeDefinition{{Name: "x"}}},
	}
	forbidden("create a ScopePolicy", sa.Create(ctx, policy, client.DryRunAll))
	g.Expect(sa.List(ctx, &authv1alpha1.ScopePolicyList{})).To(Succeed(), "list ScopePolicies in every namespace")
	g.Expect(sa.List(ctx, &authv1alpha1.AudienceBindingList{})).To(Succeed(), "list AudienceBindings in every namespace")
}
