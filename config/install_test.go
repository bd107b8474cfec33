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
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The names the components use for each other; the install must agree with them.
const (
	controllerName  = "m2m-controller"
	tokenServerName = "m2m-tokenserver"
	issuer          = "https://m2m-tokenserver.m2m-system.svc"
)

// dryRunClient returns a client whose API warnings (PodSecurity, deprecations) are collected.
func dryRunClient(t *testing.T) (client.Client, *testenv.Warnings) {
	t.Helper()
	w := &testenv.Warnings{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = w
	cl, err := client.New(c, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl, w
}

// TestInstallPassesAPIValidation applies every rendered object to a real API server, server-side
// and dry-run: schema, defaulting, validation, admission (Pod Security "restricted" of the
// namespace) and RBAC escalation checks all run, nothing is persisted. A warning counts as a
// failure: it is what a user would see on `kubectl apply`.
func TestInstallPassesAPIValidation(t *testing.T) {
	c, w := dryRunClient(t)
	ctx := context.Background()
	for _, u := range rendered {
		t.Run(u.GetKind()+"/"+u.GetName(), func(t *testing.T) {
			if err := apply(ctx, c, u, client.DryRunAll); err != nil {
				t.Fatal(err)
			}
			if ws := w.Take(); len(ws) > 0 {
				t.Errorf("the API server warned: %s", strings.Join(ws, "; "))
			}
		})
	}
}

// TestInstallValidationHasTeeth shows that the dry run above would catch the mistakes it is
// there for: an unknown field, and a container that breaks Pod Security "restricted".
func TestInstallValidationHasTeeth(t *testing.T) {
	c, w := dryRunClient(t)
	ctx := context.Background()
	base := object(t, "Deployment", tokenServerName)

	typo := base.DeepCopy()
	containers, _, _ := unstructured.NestedSlice(typo.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["readinessProbes"] = map[string]any{}
	if err := unstructured.SetNestedSlice(typo.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, c, typo, client.DryRunAll); err == nil {
		t.Error("an unknown field passed the dry run")
	}

	privileged := base.DeepCopy()
	containers, _, _ = unstructured.NestedSlice(privileged.Object, "spec", "template", "spec", "containers")
	sc := containers[0].(map[string]any)["securityContext"].(map[string]any)
	sc["allowPrivilegeEscalation"] = true
	if err := unstructured.SetNestedSlice(privileged.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	w.Take()
	if err := apply(ctx, c, privileged, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if ws := w.Take(); !slices.ContainsFunc(ws, func(s string) bool { return strings.Contains(s, "PodSecurity") }) {
		t.Errorf("no PodSecurity warning for allowPrivilegeEscalation: true (warnings: %q)", ws)
	}
}

func TestInstallIsComplete(t *testing.T) {
	want := map[string][]string{
		"Namespace":                {systemNamespace, credentialsNamespace},
		"CustomResourceDefinition": {"audiencebindings.auth.m2m.dev", "m2mclients.auth.m2m.dev", "scopepolicies.auth.m2m.dev"},
		"ServiceAccount":           {controllerName, tokenServerName},
		"ClusterRole":              {controllerName, tokenServerName},
		"ClusterRoleBinding":       {controllerName, tokenServerName},
		"Role":                     {controllerName, "m2m-leader-election", tokenServerName},
		"RoleBinding":              {controllerName, "m2m-leader-election", tokenServerName},
		"Deployment":               {controllerName, tokenServerName},
		"Service":                  {"m2m-controller-metrics", tokenServerName, "m2m-tokenserver-metrics"},
		"PodDisruptionBudget":      {controllerName, tokenServerName},
		"HorizontalPodAutoscaler":  {tokenServerName},
		"NetworkPolicy":            {controllerName, tokenServerName},
	}
	// Nothing but the token server's Role and RoleBinding goes to the credentials namespace:
	// whatever is there, the token server can read.
	inCredentials := map[string]bool{"Role/" + tokenServerName: true, "RoleBinding/" + tokenServerName: true}
	got := map[string][]string{}
	for _, u := range rendered {
		got[u.GetKind()] = append(got[u.GetKind()], u.GetName())
		wantNS := systemNamespace
		if inCredentials[u.GetKind()+"/"+u.GetName()] {
			wantNS = credentialsNamespace
		}
		if u.GetNamespace() != "" && u.GetNamespace() != wantNS {
			t.Errorf("%s %s is in namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), wantNS)
		}
		if u.GetLabels()["app.kubernetes.io/part-of"] != "m2m-operator" {
			t.Errorf("%s %s lacks the part-of label", u.GetKind(), u.GetName())
		}
	}
	for kind, names := range want {
		if !sameSet(got[kind], names) {
			t.Errorf("%s: rendered %v, want %v", kind, got[kind], names)
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok {
			t.Errorf("unexpected kind %s rendered: %v", kind, got[kind])
		}
	}
	for _, name := range []string{systemNamespace, credentialsNamespace} {
		ns := typed[corev1.Namespace](t, object(t, "Namespace", name))
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace %s does not enforce Pod Security restricted: %v", name, ns.Labels)
		}
	}
}

// TestEveryContainerIsLockedDown checks the restricted posture of every container of every
// workload, from the rendered objects themselves (independently of the PodSecurity admission).
func TestEveryContainerIsLockedDown(t *testing.T) {
	for _, u := range objects("Deployment") {
		d := typed[appsv1.Deployment](t, u)
		pod := d.Spec.Template.Spec
		if pod.HostNetwork || pod.HostPID || pod.HostIPC {
			t.Errorf("%s shares a host namespace", d.Name)
		}
		if pod.ServiceAccountName == "" || pod.ServiceAccountName == "default" {
			t.Errorf("%s runs as the default ServiceAccount", d.Name)
		}
		if pod.NodeSelector["kubernetes.io/os"] != "linux" {
			t.Errorf("%s may be scheduled on a node that is not Linux (the image is Linux only)", d.Name)
		}
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if problems := containerProblems(pod.SecurityContext, c); len(problems) > 0 {
				t.Errorf("%s/%s: %s", d.Name, c.Name, strings.Join(problems, "; "))
			}
		}
	}
}

// containerProblems lists how c (with its pod's security context) falls short of the restricted
// posture, resource settings and probes.
func containerProblems(pod *corev1.PodSecurityContext, c corev1.Container) []string {
	var p []string
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if !isTrue(sc.RunAsNonRoot) && !(sc.RunAsNonRoot == nil && isTrue(pod.RunAsNonRoot)) {
		p = append(p, "runAsNonRoot is not true")
	}
	if uid := cmp.Or(sc.RunAsUser, pod.RunAsUser); uid != nil && *uid == 0 {
		p = append(p, "runs as UID 0")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		p = append(p, "readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p = append(p, "allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		p = append(p, "privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		p = append(p, "capabilities do not drop ALL (or add some)")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p = append(p, "seccomp profile is not RuntimeDefault")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			p = append(p, "no "+string(r)+" request")
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		p = append(p, "no memory limit")
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		p = append(p, "liveness or readiness probe missing")
	}
	return p
}

func isTrue(b *bool) bool { return b != nil && *b }

func args(t *testing.T, name string) []string {
	t.Helper()
	d := typed[appsv1.Deployment](t, object(t, "Deployment", name))
	return d.Spec.Template.Spec.Containers[0].Args
}

// TestComponentsAreWiredTogether checks the names and flags the components use to find each
// other, and the availability settings.
func TestComponentsAreWiredTogether(t *testing.T) {
	ctl := typed[appsv1.Deployment](t, object(t, "Deployment", controllerName))
	ts := typed[appsv1.Deployment](t, object(t, "Deployment", tokenServerName))
	if ctl.Spec.Replicas == nil || *ctl.Spec.Replicas != 2 {
		t.Errorf("controller replicas = %v, want 2", ctl.Spec.Replicas)
	}
	// The HPA owns the token server's size: a replicas field would be re-applied on every
	// deploy and fight it. The HPA's minReplicas (checked below) gives the 3 replicas.
	if ts.Spec.Replicas != nil {
		t.Errorf("token server replicas = %d: leave it to the HorizontalPodAutoscaler", *ts.Spec.Replicas)
	}
	for _, want := range []string{"controller", "--leader-elect", "--tokenserver-tls", "--issuer=" + issuer, "--tls-service-name=" + tokenServerName,
		"--namespace=$(POD_NAMESPACE)", "--credentials-namespace=" + credentialsNamespace} {
		if !slices.Contains(args(t, controllerName), want) {
			t.Errorf("controller args %v lack %s", args(t, controllerName), want)
		}
	}
	if cmd := ts.Spec.Template.Spec.Containers[0].Command; !slices.Equal(cmd, []string{"/m2m-tokenserver"}) {
		t.Errorf("token server command = %v, want [/m2m-tokenserver] (the image's token-server-only binary)", cmd)
	}
	for _, want := range []string{"--issuer=" + issuer, "--tls-secret=m2m-tokenserver-tls", "--addr=:8443", "--metrics-addr=:9090", "--credentials-namespace=" + credentialsNamespace} {
		if !slices.Contains(args(t, tokenServerName), want) {
			t.Errorf("token server args %v lack %s", args(t, tokenServerName), want)
		}
	}
	// The token server's Role is in the credentials namespace: that is all it may read, so it
	// must not be pointed anywhere else (its own namespace holds the CA).
	if slices.ContainsFunc(args(t, tokenServerName), func(a string) bool { return strings.HasPrefix(a, "--namespace") }) {
		t.Errorf("token server args %v name another namespace", args(t, tokenServerName))
	}
	if len(ts.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
		t.Error("the token server has no topology spread constraints")
	}
	if ts.Spec.Template.Spec.ServiceAccountName != tokenServerName || ctl.Spec.Template.Spec.ServiceAccountName != controllerName {
		t.Error("a Deployment does not run as its own ServiceAccount")
	}
	for _, d := range []*appsv1.Deployment{ctl, ts} {
		img := d.Spec.Template.Spec.Containers[0].Image
		if img != ctl.Spec.Template.Spec.Containers[0].Image || strings.HasPrefix(img, "controller:") {
			t.Errorf("%s runs image %q: both components must run the one image set in config/default", d.Name, img)
		}
	}
	checkService(t, tokenServerName, ts, 443, "https")
	checkService(t, "m2m-tokenserver-metrics", ts, 9090, "metrics")
	checkTokenServerPorts(t, ts)
	checkService(t, "m2m-controller-metrics", ctl, 8443, "metrics")

	hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, object(t, "HorizontalPodAutoscaler", tokenServerName))
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != tokenServerName {
		t.Errorf("the HPA scales %s %s", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 3 {
		t.Errorf("the HPA may scale the token server below 3 replicas")
	}
	for _, d := range []*appsv1.Deployment{ctl, ts} {
		pdb := typed[policyv1.PodDisruptionBudget](t, object(t, "PodDisruptionBudget", d.Name))
		if !selects(t, pdb.Spec.Selector, d) {
			t.Errorf("PodDisruptionBudget %s does not select the pods of %s", pdb.Name, d.Name)
		}
	}
	for _, u := range objects("NetworkPolicy") {
		sel, _, _ := unstructured.NestedMap(u.Object, "spec", "podSelector", "matchLabels")
		if !labels.SelectorFromSet(toStrings(sel)).Matches(labels.Set(deploymentNamed(t, u.GetName()).Spec.Template.Labels)) {
			t.Errorf("NetworkPolicy %s does not select the pods of its Deployment", u.GetName())
		}
	}
}

// TestDeploySetsTheImage renders the install as `make deploy IMG=...` does and checks that both
// components run that image, whatever its form (registry with a port, tag, digest).
func TestDeploySetsTheImage(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "default")
	for _, img := range []string{
		"registry.example.com:5000/team/m2m-operator:v1.2.3",
		"ghcr.io/m2m-dev/m2m-operator@sha256:" + strings.Repeat("0a", 32),
		"m2m:latest",
	} {
		objs, err := render(dir, img)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, u := range objs {
			if u.GetKind() != "Deployment" {
				continue
			}
			n++
			d := typed[appsv1.Deployment](t, u)
			if got := d.Spec.Template.Spec.Containers[0].Image; got != img {
				t.Errorf("IMG=%s: %s runs %q", img, d.Name, got)
			}
		}
		if n != 2 {
			t.Errorf("IMG=%s: rendered %d Deployments, want 2", img, n)
		}
	}
}

func deploymentNamed(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, object(t, "Deployment", name))
}

func toStrings(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func selects(t *testing.T, sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
}

// checkService asserts that the Service selects exactly the pods of d and that port reaches the
// container port named targetPort.
func checkService(t *testing.T, name string, d *appsv1.Deployment, port int32, targetPort string) {
	t.Helper()
	svc := typed[corev1.Service](t, object(t, "Service", name))
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the pods of %s", name, d.Name)
	}
	for _, other := range objects("Deployment") {
		if o := deploymentNamed(t, other.GetName()); o.Name != d.Name && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(o.Spec.Template.Labels)) {
			t.Errorf("Service %s also selects the pods of %s", name, o.Name)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != port || svc.Spec.Ports[0].TargetPort.String() != targetPort {
		t.Fatalf("Service %s ports = %+v, want %d → %s", name, svc.Spec.Ports, port, targetPort)
	}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == targetPort {
			return
		}
	}
	t.Errorf("Service %s targets port %q, which %s does not declare", name, targetPort, d.Name)
}

// TestNoRoleGrantsWildcards: no Role or ClusterRole may use "*" for groups, resources or verbs.
func TestNoRoleGrantsWildcards(t *testing.T) {
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, u := range objects(kind) {
			for _, r := range typed[rbacv1.ClusterRole](t, u).Rules {
				if slices.Contains(r.APIGroups, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") || len(r.NonResourceURLs) > 0 {
					t.Errorf("%s %s grants %+v", kind, u.GetName(), r)
				}
			}
		}
	}
}

// TestTokenServerOnlyReadsSecretsInTheCredentialsNamespace: the token server's Role reads
// Secrets in the credentials namespace (not the system namespace, which holds the CA); its one
// cluster-wide rule creates TokenReviews (the ServiceAccount method); nothing else is bound to
// it.
func TestTokenServerOnlyReadsSecretsInTheCredentialsNamespace(t *testing.T) {
	role := typed[rbacv1.Role](t, object(t, "Role", tokenServerName))
	if role.Namespace != credentialsNamespace {
		t.Errorf("the token server's Role is in %q, want %q", role.Namespace, credentialsNamespace)
	}
	if b := typed[rbacv1.RoleBinding](t, object(t, "RoleBinding", tokenServerName)); b.Namespace != credentialsNamespace {
		t.Errorf("the token server's RoleBinding is in %q, want %q", b.Namespace, credentialsNamespace)
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}}
	if !equalRules(role.Rules, want) {
		t.Errorf("the token server's Role grants %+v, want %+v", role.Rules, want)
	}
	cluster := typed[rbacv1.ClusterRole](t, object(t, "ClusterRole", tokenServerName))
	wantCluster := []rbacv1.PolicyRule{{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}}
	if !equalRules(cluster.Rules, wantCluster) {
		t.Errorf("the token server's ClusterRole grants %+v, want %+v", cluster.Rules, wantCluster)
	}
	bound := map[string]bool{}
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, u := range objects(kind) {
			b := typed[rbacv1.RoleBinding](t, u)
			if !bindsServiceAccount(b.Subjects, tokenServerName) {
				continue
			}
			wantRef := map[string]string{"RoleBinding": "Role", "ClusterRoleBinding": "ClusterRole"}[kind]
			if b.Name != tokenServerName || b.RoleRef.Kind != wantRef || b.RoleRef.Name != tokenServerName || len(b.Subjects) != 1 {
				t.Errorf("%s %s binds the token server to %s %s", kind, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			bound[kind] = true
		}
	}
	if !bound["RoleBinding"] || !bound["ClusterRoleBinding"] {
		t.Errorf("the token server is bound by %v, want one RoleBinding and one ClusterRoleBinding", bound)
	}
}

func bindsServiceAccount(subjects []rbacv1.Subject, name string) bool {
	return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == name && s.Namespace == systemNamespace
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkTokenServerPorts: the probes use the plain-HTTP metrics port (never the token port), and
// the NetworkPolicy admits the token port from every namespace but the metrics port only from
// the namespaces labelled as metrics scrapers.
func checkTokenServerPorts(t *testing.T, ts *appsv1.Deployment) {
	t.Helper()
	c := ts.Spec.Template.Spec.Containers[0]
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "metrics" || p.HTTPGet.Scheme != corev1.URISchemeHTTP {
			t.Errorf("the token server's %s probe is not an HTTP GET on the metrics port: %+v", name, p)
		}
	}
	np := typed[networkingv1.NetworkPolicy](t, object(t, "NetworkPolicy", tokenServerName))
	admitted := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			admitted[p.Port.IntVal] = append(admitted[p.Port.IntVal], rule.From...)
		}
	}
	everyNamespace := func(peers []networkingv1.NetworkPolicyPeer) bool {
		return slices.ContainsFunc(peers, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.PodSelector == nil && p.IPBlock == nil && p.NamespaceSelector != nil && len(p.NamespaceSelector.MatchLabels) == 0 && len(p.NamespaceSelector.MatchExpressions) == 0
		})
	}
	if from, ok := admitted[8443]; !ok || !everyNamespace(from) {
		t.Errorf("the token port is not admitted from every namespace: %+v", from)
	}
	onlyScrapers(t, tokenServerName, admitted[9090])
	controllerPorts := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range typed[networkingv1.NetworkPolicy](t, object(t, "NetworkPolicy", controllerName)).Spec.Ingress {
		for _, p := range rule.Ports {
			controllerPorts[p.Port.IntVal] = append(controllerPorts[p.Port.IntVal], rule.From...)
		}
	}
	onlyScrapers(t, controllerName, controllerPorts[8443])
}

// onlyScrapers: a metrics port is admitted from the namespaces labelled as metrics scrapers only.
func onlyScrapers(t *testing.T, component string, from []networkingv1.NetworkPolicyPeer) {
	t.Helper()
	if len(from) == 0 {
		t.Errorf("%s: the metrics port must be admitted from labelled namespaces only, not from everywhere", component)
	}
	for _, p := range from {
		if p.NamespaceSelector == nil || p.NamespaceSelector.MatchLabels["auth.m2m.dev/metrics-scraper"] != "true" {
			t.Errorf("%s: the metrics port admits %+v", component, p)
		}
	}
}
