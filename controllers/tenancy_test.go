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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The tenancy review, as a malicious tenant would run it: a team whose only rights are
// testenv.TenantRules in its own namespace (impersonated against the real API server).
var _ = Describe("Tenancy", func() {
	var (
		apiNS, victimNS, tenantNS string
		tenant                    client.Client
	)
	BeforeEach(func() {
		apiNS = newNamespace(nil)
		victimNS = newNamespace(nil)
		tenantNS = newNamespace(nil)
		var err error
		tenant, err = testenv.Tenant(ctx, k8sClient, cfg, tenantNS, "mallory")
		Expect(err).NotTo(HaveOccurred())
	})

	// ownerPolicy is the API team's policy: the default audience api.<apiNS>, invoices:read for
	// the victim's namespace.
	ownerPolicy := func() *authv1alpha1.ScopePolicy {
		return &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}, {Name: "refunds:issue"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{victimNS}}}},
			},
		}
	}
	// squatPolicy is the tenant's policy naming the API team's audience and granting itself all.
	squatPolicy := func(aud string) *authv1alpha1.ScopePolicy {
		return &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "squat"},
			Spec: authv1alpha1.ScopePolicySpec{
				Audience: authv1alpha1.Audience(aud),
				Scopes:   []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}, {Name: "refunds:issue"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read", "refunds:issue"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{tenantNS}}}},
			},
		}
	}
	tenantClient := func(name string, mutate ...func(*authv1alpha1.M2MClient)) *authv1alpha1.M2MClient {
		c := &authv1alpha1.M2MClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: name},
			Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read", "refunds:issue"}},
		}
		for _, m := range mutate {
			m(c)
		}
		ExpectWithOffset(1, tenant.Create(ctx, c)).To(Succeed())
		return c
	}
	policyReady := func(p *authv1alpha1.ScopePolicy) *metav1.Condition {
		return policyCondition(p, authv1alpha1.ConditionReady)
	}
	// readyReason polls the policy's Ready reason, failing the poll (not panicking) while the
	// policy has no Ready condition yet.
	readyReason := func(p *authv1alpha1.ScopePolicy) func(g Gomega) string {
		return func(g Gomega) string {
			cond := policyReady(p)
			g.Expect(cond).NotTo(BeNil(), "policy %s/%s has no Ready condition yet", p.Namespace, p.Name)
			return cond.Reason
		}
	}

	It("never lets a tenant's policy hold another namespace's audience, in any create/delete/re-create order", func() {
		aud := "api." + apiNS

		// Before the owner's policy exists.
		squat := squatPolicy(aud)
		Expect(tenant.Create(ctx, squat)).To(Succeed())
		thief := tenantClient("thief")
		victim := newClient(victimNS, "worker")
		Eventually(func(g Gomega) {
			cond := policyReady(squat)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonAudienceNotBound))
			g.Expect(cond.Message).To(ContainSubstring("is not bound to namespace " + tenantNS))
			g.Expect(cond.Message).NotTo(ContainSubstring(apiNS + "/"))
		}).Should(Succeed())
		record(thief)
		Consistently(func(g Gomega) map[string][]string { return grants(g, thief) }, "300ms").Should(BeEmpty())

		// Beside the owner's policy, and after it is deleted and re-created (GitOps prune +
		// apply): the tenant's older policy never takes the audience.
		for round := 0; round < 2; round++ {
			owner := ownerPolicy()
			Expect(k8sClient.Create(ctx, owner)).To(Succeed())
			Eventually(func(g Gomega) map[string][]string { return grants(g, victim) }).WithTimeout(3*time.Second).
				Should(Equal(map[string][]string{aud: {"invoices:read"}}), "round %d: the owner's clients get their grant back within seconds", round)
			Eventually(readyReason(owner)).Should(Equal(authv1alpha1.ReasonReady))
			Expect(grants(Default, thief)).To(BeEmpty())
			Expect(get(thief).Status.GrantedScopes).To(BeEmpty())
			Expect(k8sClient.Delete(ctx, owner)).To(Succeed())
			Eventually(func(g Gomega) map[string][]string { return grants(g, victim) }).Should(BeEmpty())
			Consistently(func(g Gomega) map[string][]string { return grants(g, thief) }, "300ms").Should(BeEmpty())
		}
		Expect(policyReady(squat).Reason).To(Equal(authv1alpha1.ReasonAudienceNotBound))
	})

	It("binds other audience forms only through an AudienceBinding, which a tenant cannot write", func() {
		aud := "https://api-" + apiNS + ".example.com"
		binding := &authv1alpha1.AudienceBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "binding-" + apiNS},
			Spec:       authv1alpha1.AudienceBindingSpec{Audience: authv1alpha1.Audience(aud), Namespace: tenantNS},
		}
		err := tenant.Create(ctx, binding)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a tenant must not bind audiences: %v", err)

		owner := ownerPolicy()
		owner.Spec.Audience = authv1alpha1.Audience(aud)
		Expect(k8sClient.Create(ctx, owner)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, owner))).To(Succeed()) })
		squat := squatPolicy(aud)
		Expect(tenant.Create(ctx, squat)).To(Succeed())
		victim := newClient(victimNS, "worker")
		thief := tenantClient("thief")
		Eventually(readyReason(owner)).Should(Equal(authv1alpha1.ReasonAudienceNotBound))
		record(victim)
		Consistently(func(g Gomega) map[string][]string { return grants(g, victim) }, "200ms").Should(BeEmpty())

		// The administrator binds it to the API team's namespace.
		binding.Spec.Namespace = apiNS
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })
		Eventually(func(g Gomega) map[string][]string { return grants(g, victim) }).WithTimeout(3 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
		Eventually(readyReason(owner)).Should(Equal(authv1alpha1.ReasonReady))
		Expect(policyReady(squat).Reason).To(Equal(authv1alpha1.ReasonAudienceNotBound))
		Expect(grants(Default, thief)).To(BeEmpty())

		// A second binding elsewhere makes the audience contested: bound to none.
		contested := &authv1alpha1.AudienceBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "contested-" + apiNS},
			Spec:       authv1alpha1.AudienceBindingSpec{Audience: authv1alpha1.Audience(aud), Namespace: tenantNS},
		}
		Expect(k8sClient.Create(ctx, contested)).To(Succeed())
		Eventually(func(g Gomega) map[string][]string { return grants(g, victim) }).WithTimeout(3 * time.Second).Should(BeEmpty())
		Eventually(func() string { return policyReady(owner).Message }).Should(ContainSubstring("more than one namespace"))
		Expect(grants(Default, thief)).To(BeEmpty())
		Expect(k8sClient.Delete(ctx, contested)).To(Succeed())
		Eventually(func(g Gomega) map[string][]string { return grants(g, victim) }).WithTimeout(3 * time.Second).
			Should(Equal(map[string][]string{aud: {"invoices:read"}}))
	})

	It("refuses grants without a namespace boundary, for tenants as for everyone", func() {
		p := squatPolicy("")
		p.Spec.Grants[0].Clients = authv1alpha1.ClientMatcher{Names: []string{"worker"}}
		err := tenant.Create(ctx, p)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("must set namespaces or namespaceSelector"))
	})

	It("refuses reserved claim names in any letter case", func() {
		for _, claims := range []map[string]string{
			{"Sub": "m2mc_victim"}, {"Client_id": "m2mc_victim"}, {"Namespace": victimNS}, {"act": "x"}, {"AMR": "pwd"},
			{"team": "a", "Team": "b"},
		} {
			c := &authv1alpha1.M2MClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "spoof"},
				Spec:       authv1alpha1.M2MClientSpec{Claims: claims},
			}
			err := tenant.Create(ctx, c)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "claims %v: %v", claims, err)
		}
	})

	Describe("a credential Secret in any conflict state", func() {
		var (
			owner *authv1alpha1.ScopePolicy
			c     *authv1alpha1.M2MClient
		)
		BeforeEach(func() {
			owner = ownerPolicy()
			owner.Spec.Grants[0].Clients.Namespaces = []string{tenantNS}
			Expect(k8sClient.Create(ctx, owner)).To(Succeed())
			c = tenantClient("worker")
			Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).
				Should(Equal(map[string][]string{"api." + apiNS: {"invoices:read"}}))
			credSecret(c)
		})

		// revocationsStillApply: the API team's revocation and the admin's spec.disabled reach
		// the record within 1 s, though the credential Secret cannot be written.
		// It returns the hashes the record accepts then: those of the credentials delivered
		// before the conflict, and nothing new.
		revocationsStillApply := func() []string {
			Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonSecretNameConflict))
			Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonSecretNameConflict))
			recordHashes := func() []string {
				_, rec := record(c)
				out := []string{}
				for _, h := range rec.Secrets {
					out = append(out, h.SHA256)
				}
				return out
			}
			before := recordHashes()

			Eventually(func() error {
				cur := &authv1alpha1.ScopePolicy{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(owner), cur); err != nil {
					return err
				}
				cur.Spec.Grants[0].Scopes = []authv1alpha1.GrantScope{"refunds:issue"}
				return k8sClient.Update(ctx, cur)
			}).Should(Succeed())
			Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(time.Second).
				Should(Equal(map[string][]string{"api." + apiNS: {"refunds:issue"}}))
			Eventually(func() []string { return get(c).Status.GrantedScopes }).Should(Equal([]string{"refunds:issue"}))

			update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true })
			Eventually(func(g Gomega) bool {
				_, rec := record(c)
				return rec.Disabled
			}).WithTimeout(time.Second).Should(BeTrue())

			Expect(recordHashes()).To(Equal(before), "no secret is issued or revoked while the Secret is not the client's")
			return before
		}

		It("follows grants and spec.disabled when the ownerReference is removed", func() {
			sec := credSecret(c)
			hash := hashOf(sec)
			sec.OwnerReferences = nil
			Expect(tenant.Update(ctx, sec)).To(Succeed())
			Expect(revocationsStillApply()).To(Equal([]string{hash}), "the delivered secret keeps working")
		})

		It("follows grants and spec.disabled when a foreign Secret takes the name", func() {
			sec := credSecret(c)
			// The controller recreates a deleted credential Secret within milliseconds: the
			// tenant retries until its own Secret wins the name.
			Eventually(func() error {
				if err := tenant.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: sec.Namespace, Name: sec.Name}}); client.IgnoreNotFound(err) != nil {
					return err
				}
				return tenant.Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: sec.Namespace, Name: sec.Name},
					StringData: map[string]string{"client_secret": "mine"},
				})
			}).Should(Succeed())
			revocationsStillApply()
		})

		It("refuses pointing spec.secretName at another Secret the tenant owns (unset → set)", func() {
			Expect(tenant.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "team-owned"}})).To(Succeed())
			cur := get(c)
			cur.Spec.SecretName = "team-owned"
			err := tenant.Update(ctx, cur)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("spec.secretName is immutable"))
		})
	})
})

// The CA Secret is shared by every spec: these run alone.
var _ = Describe("Fail closed without the token server's CA", Serial, func() {
	It("keeps the record following grants and spec.disabled while the credential Secret waits for the CA", func() {
		apiNS, clientNS := newNamespace(nil), newNamespace(nil)
		p := &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}}},
			},
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		c := newClient(clientNS, "worker")
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).Should(HaveLen(1))
		hash := hashOf(credSecret(c))

		ca := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: tlscontroller.CASecretName}, ca)).To(Succeed())
		Expect(k8sClient.Delete(ctx, ca)).To(Succeed())
		DeferCleanup(func() {
			restored := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ca.Namespace, Name: ca.Name, Labels: ca.Labels}, Data: ca.Data}
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, restored))).To(Succeed())
		})
		touch(c)
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonWaitingForCA))

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) map[string][]string { return grants(g, c) }).WithTimeout(time.Second).Should(BeEmpty())
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true })
		Eventually(func() bool {
			_, rec := record(c)
			return rec.Disabled
		}).WithTimeout(time.Second).Should(BeTrue())
		_, rec := record(c)
		Expect(rec.Secrets).To(ConsistOf(credential.SecretHash{SHA256: hash}), "the delivered secret is carried over, nothing new issued")
	})
})
