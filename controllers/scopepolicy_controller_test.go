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

package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// grants reads the record's grants as audience → scopes.
func grants(g Gomega, c *authv1alpha1.M2MClient) map[string][]string {
	s := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, recordKey(c), s)).To(Succeed())
	rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string][]string{}
	for _, gr := range rec.Grants {
		out[gr.Audience] = gr.Scopes
	}
	return out
}

func policyCondition(p *authv1alpha1.ScopePolicy, typ string) *metav1.Condition {
	cur := &authv1alpha1.ScopePolicy{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
	return meta.FindStatusCondition(cur.Status.Conditions, typ)
}

var _ = Describe("ScopePolicy resolution", func() {
	var (
		apiNS, clientNS string
		created         []client.Object
	)
	newPolicy := func(ns, name, audience string, mutate ...func(*authv1alpha1.ScopePolicy)) *authv1alpha1.ScopePolicy {
		p := &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: authv1alpha1.ScopePolicySpec{
				Audience: authv1alpha1.Audience(audience),
				Scopes: []authv1alpha1.ScopeDefinition{
					{Name: "invoices:read"}, {Name: "invoices:write"}, {Name: "refunds:issue"},
				},
			},
		}
		for _, m := range mutate {
			m(p)
		}
		ExpectWithOffset(1, k8sClient.Create(ctx, p)).To(Succeed())
		created = append(created, p)
		return p
	}
	updatePolicy := func(p *authv1alpha1.ScopePolicy, mutate func(*authv1alpha1.ScopePolicy)) {
		EventuallyWithOffset(1, func() error {
			cur := &authv1alpha1.ScopePolicy{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur); err != nil {
				return err
			}
			mutate(cur)
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
	}
	grantTo := func(m authv1alpha1.ClientMatcher, scopes ...authv1alpha1.GrantScope) func(*authv1alpha1.ScopePolicy) {
		return func(p *authv1alpha1.ScopePolicy) {
			p.Spec.Grants = append(p.Spec.Grants, authv1alpha1.Grant{Scopes: scopes, Clients: m})
		}
	}

	BeforeEach(func() {
		apiNS = newNamespace(nil)
		clientNS = newNamespace(map[string]string{"team": "payments"})
		created = nil
	})
	AfterEach(func() {
		for _, o := range created {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed())
		}
	})

	It("grants and revokes within 2 s when a namespace label flips", func() {
		aud := "api." + apiNS
		newPolicy(apiNS, "api", aud, grantTo(authv1alpha1.ClientMatcher{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"access": "billing"}},
		}, "invoices:read"))
		c := newClient(clientNS, "worker")
		record(c)
		Consistently(func(g Gomega) map[string][]string { return grants(g, c) }, "200ms").Should(BeEmpty())

		setLabel := func(v string) {
			Eventually(func() error {
				ns := &corev1.Namespace{}
				if err := k8sClient.Get(ctx, client.ObjectKey{Name: clientNS}, ns); err != nil {
					return err
				}
				if v == "" {
					delete(ns.Labels, "access")
				} else {
					ns.Labels["access"] = v
				}
				return k8sClient.Update(ctx, ns)
			}).Should(Succeed())
		}
		setLabel("billing")
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
		setLabel("")
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(BeEmpty())
	})

	It("re-resolves when the client's labels change (selector)", func() {
		aud := "api." + apiNS
		newPolicy(apiNS, "api", aud, grantTo(authv1alpha1.ClientMatcher{
			Namespaces: []string{clientNS},
			Selector:   &metav1.LabelSelector{MatchLabels: map[string]string{"app": "worker"}},
		}, "invoices:read"))
		c := newClient(clientNS, "worker")
		record(c)
		update(c, func(c *authv1alpha1.M2MClient) { c.Labels = map[string]string{"app": "worker"} })
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
	})

	It("carries the audience's token-binding requirement and the client's own into the record", func() {
		aud := "api." + apiNS
		p := newPolicy(apiNS, "api", aud,
			grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}, "invoices:read"),
			func(p *authv1alpha1.ScopePolicy) { p.Spec.TokenBinding = authv1alpha1.TokenBindingRequired })
		c := newClient(clientNS, "worker")
		binding := func(g Gomega) [2]string {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, recordKey(c), s)).To(Succeed())
			rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rec.Grants).To(HaveLen(1))
			return [2]string{rec.TokenBinding, rec.Grants[0].TokenBinding}
		}
		Eventually(binding).Should(Equal([2]string{"", credential.TokenBindingRequired}))
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.TokenBinding = authv1alpha1.TokenBindingDPoP })
		Eventually(binding).Should(Equal([2]string{credential.TokenBindingDPoP, credential.TokenBindingRequired}))
		// Only the policy lifts the audience's requirement; the client keeps its own.
		updatePolicy(p, func(p *authv1alpha1.ScopePolicy) { p.Spec.TokenBinding = authv1alpha1.TokenBindingOptional })
		Eventually(binding).Should(Equal([2]string{credential.TokenBindingDPoP, ""}))
		// The schema knows no other binding.
		bad := get(c)
		bad.Spec.TokenBinding = "Bearer"
		Expect(k8sClient.Update(ctx, bad)).NotTo(Succeed())
	})

	It("revokes when a policy is narrowed or deleted, and carries maxTokenTTL", func() {
		aud := "api." + apiNS
		p := newPolicy(apiNS, "api", aud,
			grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}, "invoices:*"),
			func(p *authv1alpha1.ScopePolicy) { p.Spec.MaxTokenTTL = &metav1.Duration{Duration: 5 * time.Minute} })
		c := newClient(clientNS, "worker", func(c *authv1alpha1.M2MClient) {
			c.Spec.Scopes = []authv1alpha1.ScopeToken{"invoices:read", "invoices:write"}
		})
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).
			Should(Equal(map[string][]string{aud: {"invoices:read", "invoices:write"}}))
		_, rec := record(c)
		Expect(rec.Grants[0].MaxTokenTTLSeconds).To(Equal(int64(300)))
		Expect(rec.Grants[0].PolicyNamespace).To(Equal(apiNS))
		Eventually(func() []string { return get(c).Status.GrantedScopes }).Should(ConsistOf("invoices:read", "invoices:write"))
		Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonReady))
		Eventually(func(g Gomega) int32 {
			cur := &authv1alpha1.ScopePolicy{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
			return cur.Status.Clients
		}).Should(Equal(int32(1)))
		Eventually(func(g Gomega) string {
			cred := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), cred)).To(Succeed())
			return string(cred.Data["scope"]) + "|" + string(cred.Data["audience"])
		}).Should(Equal("invoices:read invoices:write|" + aud))

		updatePolicy(p, func(p *authv1alpha1.ScopePolicy) {
			p.Spec.Grants[0].Scopes = []authv1alpha1.GrantScope{"invoices:read"}
		})
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
		Eventually(func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionScopesGranted)
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonPartiallyGranted))
			g.Expect(cond.Message).To(ContainSubstring("invoices:write"))
		}).Should(Succeed())
		// The record goes first; the credential Secret and the status follow in a second pass.
		Eventually(func(g Gomega) string {
			cred := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), cred)).To(Succeed())
			return string(cred.Data["scope"])
		}).Should(Equal("invoices:read"))
		Eventually(func() []string { return get(c).Status.GrantedScopes }).Should(ConsistOf("invoices:read"))

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(BeEmpty())
	})

	It("gives an audience to the oldest policy only, reports the conflict, and hands over on deletion", func() {
		aud := "shared." + apiNS
		holder := newPolicy(apiNS, "a-holder", aud, grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}, Names: []string{"other"}}, "invoices:read"))
		Eventually(func() *metav1.Condition { return policyCondition(holder, authv1alpha1.ConditionAudienceConflict) }).ShouldNot(BeNil())
		challenger := newPolicy(apiNS, "b-challenger", aud, grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}, Names: []string{"worker"}}, "invoices:read"))
		c := newClient(clientNS, "worker")

		Eventually(func(g Gomega) {
			cond := policyCondition(challenger, authv1alpha1.ConditionAudienceConflict)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(cond.Message).To(ContainSubstring("a-holder"))
			g.Expect(policyCondition(challenger, authv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		}).Should(Succeed())
		Expect(policyCondition(holder, authv1alpha1.ConditionAudienceConflict).Status).To(Equal(metav1.ConditionFalse))
		record(c)
		Consistently(func(g Gomega) map[string][]string { return grants(g, c) }, "300ms").Should(BeEmpty())

		Expect(k8sClient.Delete(ctx, holder)).To(Succeed())
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(2 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
		Eventually(func() metav1.ConditionStatus {
			return policyCondition(challenger, authv1alpha1.ConditionAudienceConflict).Status
		}).Should(Equal(metav1.ConditionFalse))
	})

	It("keeps the holder's client count when a second policy claims its audience, and hands the count over", func() {
		aud := "shared." + apiNS
		clients := func(p *authv1alpha1.ScopePolicy) func(Gomega) int32 {
			return func(g Gomega) int32 {
				cur := &authv1alpha1.ScopePolicy{}
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), cur)).To(Succeed())
				return cur.Status.Clients
			}
		}
		all := grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}, "invoices:read")
		holder := newPolicy(apiNS, "z-holder", aud, all)
		for _, name := range []string{"w1", "w2"} {
			newClient(clientNS, name)
		}
		Eventually(clients(holder)).WithTimeout(3 * time.Second).Should(Equal(int32(2)))
		// Created right after, often within the same second: the name sorts first, but the
		// holder came first and keeps the audience.
		challenger := newPolicy(apiNS, "a-challenger", aud, all)
		Eventually(func() *metav1.Condition { return policyCondition(challenger, authv1alpha1.ConditionAudienceConflict) }).ShouldNot(BeNil())
		Expect(policyCondition(challenger, authv1alpha1.ConditionAudienceConflict).Status).To(Equal(metav1.ConditionTrue))
		Consistently(clients(holder), "1500ms").Should(Equal(int32(2)))
		Expect(clients(challenger)(Default)).To(Equal(int32(0)))

		Expect(k8sClient.Delete(ctx, holder)).To(Succeed())
		Eventually(clients(challenger)).WithTimeout(3 * time.Second).Should(Equal(int32(2)))
		Eventually(func() string { return policyCondition(challenger, authv1alpha1.ConditionReady).Reason }).Should(Equal(authv1alpha1.ReasonReady))
	})

	It("reports a stored grant without a namespace boundary, which matches nothing", func() {
		// Stored before the schema required a boundary: the older CRD had no such rule.
		withCRD("scopepolicies.auth.m2m.dev", func(crd *apiextensionsv1.CustomResourceDefinition) {
			grant := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["grants"].Items.Schema
			clients := grant.Properties["clients"]
			clients.XValidations = nil
			grant.Properties["clients"] = clients
		})
		var p *authv1alpha1.ScopePolicy
		Eventually(func() error {
			p = &authv1alpha1.ScopePolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
				Spec: authv1alpha1.ScopePolicySpec{Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}}, Grants: []authv1alpha1.Grant{
					{Scopes: []authv1alpha1.GrantScope{"invoices:read"}, Clients: authv1alpha1.ClientMatcher{Names: []string{"worker"}}},
				}},
			}
			return k8sClient.Create(ctx, p)
		}).Should(Succeed())
		created = append(created, p)
		c := newClient(clientNS, "worker")
		Eventually(func(g Gomega) {
			cond := policyCondition(p, authv1alpha1.ConditionReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonGrantWithoutNamespace))
			g.Expect(cond.Message).To(ContainSubstring("spec.grants[0].clients"))
			g.Expect(policyCondition(p, authv1alpha1.ConditionStalled)).NotTo(BeNil())
		}).Should(Succeed())
		record(c)
		Consistently(func(g Gomega) map[string][]string { return grants(g, c) }, "300ms").Should(BeEmpty())
	})

	It("names a requested scope that no policy offers", func() {
		aud := "api." + apiNS
		newPolicy(apiNS, "api", aud, grantTo(authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}, "invoices:read"))
		c := newClient(clientNS, "greedy", func(c *authv1alpha1.M2MClient) {
			c.Spec.Scopes = []authv1alpha1.ScopeToken{"invoices:read", "payroll:admin"}
		})
		Eventually(func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionScopesGranted)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond.Message).To(ContainSubstring("payroll:admin"))
			g.Expect(get(c).Status.DeniedScopes).To(Equal([]string{"payroll:admin"}))
		}).Should(Succeed())
	})
})
