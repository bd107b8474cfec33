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

package v1alpha1_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/config"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

func samples() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	Expect(fs.WalkDir(config.Samples, "samples", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := config.Samples.ReadFile(path)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(doc, &u.Object)).To(Succeed())
			if u.GetKind() != "" && u.GetKind() != "Kustomization" {
				out = append(out, u)
			}
		}
	})).To(Succeed())
	return out
}

// obj builds an object from YAML, in namespace "validation".
func obj(doc string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	ExpectWithOffset(1, yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
	u.SetNamespace("validation")
	return u
}

func client_(name, spec string) *unstructured.Unstructured {
	return obj("apiVersion: auth.m2m.dev/v1alpha1\nkind: M2MClient\nmetadata: {name: " + name + "}\nspec:\n" + indent(spec))
}

func policy(name, spec string) *unstructured.Unstructured {
	return obj("apiVersion: auth.m2m.dev/v1alpha1\nkind: ScopePolicy\nmetadata: {name: " + name + "}\nspec:\n" + indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

var _ = Describe("CRD schema validation", func() {
	BeforeEach(func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "validation"}}
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, ns))).To(Succeed())
	})

	It("accepts every object in config/samples", func() {
		objs := samples()
		Expect(objs).NotTo(BeEmpty())
		for _, o := range objs {
			err := k8sClient.Create(ctx, o, client.DryRunAll)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			Expect(err).NotTo(HaveOccurred(), "%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
			// Namespaces must exist for the namespaced samples' dry run.
			if o.GetKind() == "Namespace" {
				Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, o.DeepCopy()))).To(Succeed())
			}
		}
	})

	It("accepts a policy with routes, and defaults unmatchedRoutes to Deny", func() {
		p := policy("routes", "scopes: [{name: a:read}, {name: a:write}]\nroutes:\n- {pathPrefix: /a, methods: [GET, HEAD], scopes: [a:read]}\n- {pathPrefix: /a, scopes: [a:read, a:write]}\n- {pathPrefix: /healthz, scopes: []}\n- {pathPrefix: /}")
		Expect(k8sClient.Create(ctx, p, client.DryRunAll)).To(Succeed())
		got, _, _ := unstructured.NestedString(p.Object, "spec", "unmatchedRoutes")
		Expect(got).To(Equal(string(authv1alpha1.UnmatchedRoutesDeny)))
		Expect(k8sClient.Create(ctx, policy("routes-open", "unmatchedRoutes: AllowAuthenticated"), client.DryRunAll)).To(Succeed())
	})

	It("accepts a minimal valid client and policy", func() {
		Expect(k8sClient.Create(ctx, client_("minimal", "scopes: [a:b]"), client.DryRunAll)).To(Succeed())
		Expect(k8sClient.Create(ctx, policy("minimal", "scopes: [{name: a:b}]\ngrants: [{scopes: ['a:*'], clients: {namespaceSelector: {}}}]"), client.DryRunAll)).To(Succeed())
	})

	DescribeTable("refuses a bad object with a message naming the field",
		func(o *unstructured.Unstructured, wantField, wantMessage string) {
			err := k8sClient.Create(ctx, o, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring(wantField))
			Expect(err.Error()).To(ContainSubstring(wantMessage))
		},
		Entry("scope with a space", client_("c1", "scopes: ['invoices read']"), "spec.scopes[0]", "RFC 6749 scope-token"),
		Entry("scope with a double quote", client_("c2", `scopes: ['a"b']`), "spec.scopes[0]", "without spaces, double quotes or backslashes"),
		Entry("scope with a backslash", client_("c3", `scopes: ['a\b']`), "spec.scopes[0]", "RFC 6749 scope-token"),
		Entry("empty scope", client_("c4", `scopes: ['']`), "spec.scopes[0]", "at least 1"),
		Entry("scope longer than 128", client_("c5", "scopes: ['"+strings.Repeat("x", 129)+"']"), "spec.scopes[0]", "128"),
		Entry("duplicate scopes", client_("c6", "scopes: [a, a]"), "spec.scopes[1]", "Duplicate value"),
		Entry("more than 64 scopes", client_("c7", "scopes: ["+manyScopes(65)+"]"), "spec.scopes", "must have at most 64 items"),
		Entry("secretName not DNS-1123", client_("c8", "secretName: Bad_Name"), "spec.secretName", "DNS-1123 subdomain"),
		Entry("tokenTTL below 1m", client_("c9", "tokenTTL: 30s"), "spec.tokenTTL", "between 1m and 24h"),
		Entry("tokenTTL above 24h", client_("c10", "tokenTTL: 25h"), "spec.tokenTTL", "between 1m and 24h"),
		Entry("rotation interval below 1h", client_("c11", "secretRotation: {interval: 30m}"), "spec.secretRotation.interval", "0 (off) or at least 1h"),
		Entry("grace period below 10s", client_("c12", "secretRotation: {gracePeriod: 5s}"), "spec.secretRotation.gracePeriod", "between 10s and 168h"),
		Entry("grace period above 7d", client_("c13", "secretRotation: {gracePeriod: 169h}"), "spec.secretRotation.gracePeriod", "between 10s and 168h"),
		Entry("reserved claim sub", client_("c14", "claims: {sub: x}"), "spec.claims", "reserved claim name"),
		Entry("reserved claim namespace", client_("c15", "claims: {namespace: x}"), "spec.claims", "reserved claim name"),
		Entry("reserved claim cnf", client_("c16", "claims: {cnf: x}"), "spec.claims", "reserved claim name"),
		Entry("reserved claim in another case", client_("c33", "claims: {Sub: victim}"), "spec.claims", "must not set a reserved claim name, in any letter case"),
		Entry("reserved claim client_id in mixed case", client_("c34", "claims: {Client_ID: victim}"), "spec.claims", "must not set a reserved claim name, in any letter case"),
		Entry("reserved claim namespace upper case", client_("c35", "claims: {NAMESPACE: payments}"), "spec.claims", "must not set a reserved claim name"),
		Entry("reserved claim act", client_("c36", "claims: {act: x}"), "spec.claims", "reserved claim name"),
		Entry("reserved claim roles", client_("c37", "claims: {Roles: admin}"), "spec.claims", "reserved claim name"),
		Entry("reserved claim with a non-ASCII lookalike", client_("c38", "claims: {\"\u017fub\": x}"), "spec.claims", "printable ASCII"),
		Entry("two claims that differ only in case", client_("c39", "claims: {team: a, Team: b}"), "spec.claims", "differ only in letter case"),
		Entry("claim name with a space", client_("c40", "claims: {'my team': a}"), "spec.claims", "printable ASCII"),
		Entry("unknown auth method", client_("c17", "authentication: {method: Password}"), "spec.authentication.method", "Unsupported value"),
		Entry("ServiceAccount without serviceAccountName", client_("c18", "authentication: {method: ServiceAccount}"), "spec.authentication", "serviceAccountName is required when method is ServiceAccount"),
		Entry("serviceAccountName with ClientSecret", client_("c19", "authentication: {method: ClientSecret, serviceAccountName: robot}"), "spec.authentication", "must be omitted for any other method"),
		Entry("PrivateKeyJWT without jwks", client_("c22", "authentication: {method: PrivateKeyJWT}"), "spec.authentication", "method PrivateKeyJWT needs the client's public keys in exactly one of spec.authentication.jwks"),
		Entry("jwks with ClientSecret", client_("c23", `authentication: {method: ClientSecret, jwks: '{"keys":[]}'}`), "spec.authentication", "only for method PrivateKeyJWT: remove them, or set method: PrivateKeyJWT"),
		Entry("both jwks and jwksFrom", client_("c25", `authentication: {method: PrivateKeyJWT, jwks: '{"keys":[]}', jwksFrom: {configMapKeyRef: {name: keys, key: jwks.json}}}`), "spec.authentication", "exactly one of spec.authentication.jwks (an inline JWKS document) or spec.authentication.jwksFrom"),
		Entry("jwksFrom with ClientSecret", client_("c26", "authentication: {jwksFrom: {secretKeyRef: {name: keys, key: jwks}}}"), "spec.authentication", "only for method PrivateKeyJWT"),
		Entry("jwksFrom with ServiceAccount", client_("c27", "authentication: {method: ServiceAccount, serviceAccountName: robot, jwksFrom: {secretKeyRef: {name: keys, key: jwks}}}"), "spec.authentication", "only for method PrivateKeyJWT"),
		Entry("jwksFrom with neither ref", client_("c28", "authentication: {method: PrivateKeyJWT, jwksFrom: {}}"), "spec.authentication.jwksFrom", "must set exactly one of secretKeyRef or configMapKeyRef"),
		Entry("jwksFrom with both refs", client_("c29", "authentication: {method: PrivateKeyJWT, jwksFrom: {secretKeyRef: {name: a, key: k}, configMapKeyRef: {name: a, key: k}}}"), "spec.authentication.jwksFrom", "must set exactly one of secretKeyRef or configMapKeyRef"),
		Entry("jwksFrom name not DNS-1123", client_("c30", "authentication: {method: PrivateKeyJWT, jwksFrom: {configMapKeyRef: {name: My_Keys, key: jwks.json}}}"), "spec.authentication.jwksFrom.configMapKeyRef.name", "DNS-1123 subdomain"),
		Entry("jwksFrom key with a slash", client_("c31", "authentication: {method: PrivateKeyJWT, jwksFrom: {secretKeyRef: {name: keys, key: a/b}}}"), "spec.authentication.jwksFrom.secretKeyRef.key", "valid Secret or ConfigMap key"),
		Entry("jwksFrom without a key", client_("c32", "authentication: {method: PrivateKeyJWT, jwksFrom: {secretKeyRef: {name: keys}}}"), "spec.authentication.jwksFrom.secretKeyRef.key", "Required value"),
		Entry("jwks that is not a JSON object", client_("c24", `authentication: {method: PrivateKeyJWT, jwks: '[{"kty":"EC"}]'}`), "spec.authentication.jwks", "must be a JWKS document"),
		Entry("displayName too long", client_("c20", "displayName: '"+strings.Repeat("d", 129)+"'"), "spec.displayName", "128"),
		Entry("client audience with a space", client_("c21", "audiences: ['billing api']"), "spec.audiences[0]", "without spaces"),
		Entry("policy audience with a space", policy("p1", "audience: 'billing api'"), "spec.audience", "without spaces"),
		Entry("grant names an undeclared scope", policy("p2", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:write], clients: {namespaces: [x]}}]"), "spec", "may only name scopes declared in spec.scopes"),
		Entry("grant with no client matcher", policy("p3", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:read], clients: {}}]"), "spec.grants[0].clients", "must set namespaces or namespaceSelector"),
		Entry("grant matching clients by name in every namespace", policy("p8", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:read], clients: {names: [billing-admin]}}]"), "spec.grants[0].clients", "must set namespaces or namespaceSelector: client names and labels are chosen by each namespace's team"),
		Entry("grant matching clients by label in every namespace", policy("p9", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:read], clients: {selector: {matchLabels: {app: x}}}}]"), "spec.grants[0].clients", "must set namespaces or namespaceSelector"),
		Entry("grant with an empty namespaces list", policy("p10", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:read], clients: {namespaces: [], names: [x]}}]"), "spec.grants[0].clients", "must set namespaces or namespaceSelector"),
		Entry("grant naming an invalid namespace", policy("p11", "scopes: [{name: a:read}]\ngrants: [{scopes: [a:read], clients: {namespaces: [Bad_NS]}}]"), "spec.grants[0].clients.namespaces[0]", "should match"),
		Entry("grant with no scopes", policy("p4", "scopes: [{name: a:read}]\ngrants: [{scopes: [], clients: {namespaces: [x]}}]"), "spec.grants[0].scopes", "at least 1"),
		Entry("declared scope with a space", policy("p5", "scopes: [{name: 'a read'}]"), "spec.scopes[0].name", "RFC 6749 scope-token"),
		Entry("duplicate declared scope", policy("p6", "scopes: [{name: a}, {name: a}]"), "spec.scopes[1]", "Duplicate value"),
		Entry("maxTokenTTL above 24h", policy("p7", "maxTokenTTL: 48h"), "spec.maxTokenTTL", "between 1m and 24h"),
		Entry("route scope not declared", policy("r1", "scopes: [{name: a:read}]\nroutes: [{pathPrefix: /a, scopes: [a:write]}]"), "spec", "spec.routes[].scopes may only name scopes declared in spec.scopes"),
		Entry("route scope with no scopes declared", policy("r2", "routes: [{pathPrefix: /a, scopes: [a:read]}]"), "spec", "may only name scopes declared in spec.scopes"),
		Entry("route pathPrefix without a leading slash", policy("r3", "routes: [{pathPrefix: invoices}]"), "spec.routes[0].pathPrefix", "pathPrefix must start with /"),
		Entry("route pathPrefix with a query", policy("r4", "routes: [{pathPrefix: '/a?b=c'}]"), "spec.routes[0].pathPrefix", "without spaces, query (?) or fragment (#)"),
		Entry("route with an unknown method", policy("r5", "routes: [{pathPrefix: /a, methods: [FETCH]}]"), "spec.routes[0].methods[0]", "Unsupported value"),
		Entry("route with a duplicate method", policy("r6", "routes: [{pathPrefix: /a, methods: [GET, GET]}]"), "spec.routes[0].methods[1]", "Duplicate value"),
		Entry("more than 64 routes", policy("r7", "routes: ["+manyRoutes(65)+"]"), "spec.routes", "must have at most 64 items"),
		Entry("unknown unmatchedRoutes", policy("r8", "unmatchedRoutes: Allow"), "spec.unmatchedRoutes", "Unsupported value"),
	)

	It("accepts a PrivateKeyJWT client with an inline JWKS", func() {
		Expect(k8sClient.Create(ctx, client_("pkjwt", `authentication: {method: PrivateKeyJWT, jwks: ' {"keys":[]} '}`), client.DryRunAll)).To(Succeed())
	})

	It("accepts a PrivateKeyJWT client with jwksFrom a Secret or a ConfigMap", func() {
		Expect(k8sClient.Create(ctx, client_("pkjwt-secret", "authentication: {method: PrivateKeyJWT, jwksFrom: {secretKeyRef: {name: keys, key: jwks.json}}}"), client.DryRunAll)).To(Succeed())
		Expect(k8sClient.Create(ctx, client_("pkjwt-cm", "authentication: {method: PrivateKeyJWT, jwksFrom: {configMapKeyRef: {name: my.keys, key: JWKS_1}}}"), client.DryRunAll)).To(Succeed())
	})

	It("refuses changing secretName", func() {
		o := client_("immutable", "secretName: first")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Expect(unstructured.SetNestedField(o.Object, "second", "spec", "secretName")).To(Succeed())
		err := k8sClient.Update(ctx, o)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.secretName is immutable"))
	})

	It("refuses setting secretName on a client that had none, and removing it", func() {
		o := client_("immutable-unset", "scopes: [a:b]")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Expect(unstructured.SetNestedField(o.Object, "team-owned-secret", "spec", "secretName")).To(Succeed())
		err := k8sClient.Update(ctx, o)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.secretName: Forbidden: spec.secretName is immutable (also from unset"))

		// Spelling out the default is no change.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
		Expect(unstructured.SetNestedField(o.Object, "immutable-unset-m2m", "spec", "secretName")).To(Succeed())
		Expect(k8sClient.Update(ctx, o)).To(Succeed())

		named := client_("immutable-named", "secretName: mine")
		Expect(k8sClient.Create(ctx, named)).To(Succeed())
		unstructured.RemoveNestedField(named.Object, "spec", "secretName")
		err = k8sClient.Update(ctx, named)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.secretName is immutable"))
	})

	It("accepts ordinary claims, and URI claim names", func() {
		Expect(k8sClient.Create(ctx, client_("claims-ok", "claims: {team: payments, 'https://example.com/claims/tier': gold, subsystem: x, scoped: z}"), client.DryRunAll)).To(Succeed())
	})

	It("accepts an AudienceBinding and refuses a bad one", func() {
		ab := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte("apiVersion: auth.m2m.dev/v1alpha1\nkind: AudienceBinding\nmetadata: {name: billing-example}\nspec: {audience: 'https://billing.example.com', namespace: billing}"), &ab.Object)).To(Succeed())
		Expect(k8sClient.Create(ctx, ab, client.DryRunAll)).To(Succeed())
		Expect(unstructured.SetNestedField(ab.Object, "Billing_NS", "spec", "namespace")).To(Succeed())
		err := k8sClient.Create(ctx, ab, client.DryRunAll)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.namespace must be a namespace name"))
		unstructured.RemoveNestedField(ab.Object, "spec", "namespace")
		err = k8sClient.Create(ctx, ab, client.DryRunAll)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.namespace: Required value"))
	})

	It("spells out exactly api/v1alpha1.ReservedClaims in the CRD rule and its message", func() {
		crd, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "auth.m2m.dev_m2mclients.yaml"))
		Expect(err).NotTo(HaveOccurred())
		text := strings.Join(strings.Fields(string(crd)), " ")
		quoted := make([]string, len(authv1alpha1.ReservedClaims))
		for i, n := range authv1alpha1.ReservedClaims {
			quoted[i] = "'" + n + "'"
		}
		Expect(text).To(ContainSubstring("k.lowerAscii() in [" + strings.Join(quoted, ",") + "]"))
		Expect(text).To(ContainSubstring("in any letter case: " + strings.Join(authv1alpha1.ReservedClaims, ", ")))
		for _, n := range authv1alpha1.ReservedClaims {
			Expect(authv1alpha1.IsReservedClaim(strings.ToUpper(n))).To(BeTrue(), n)
		}
	})
})

func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = "s" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + ":" + string(rune('a'+i/26))
	}
	return strings.Join(s, ", ")
}

// manyRoutes returns n distinct routes in YAML flow style.
func manyRoutes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("{pathPrefix: /r%d}", i)
	}
	return strings.Join(s, ", ")
}
