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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// recordNow reads the client's current record (no wait for it to exist).
func recordNow(g Gomega, c *authv1alpha1.M2MClient) *credential.Record {
	_, rec := record(c)
	return rec
}

func annotateRevoke(c *authv1alpha1.M2MClient, value string) {
	update(c, func(c *authv1alpha1.M2MClient) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[authv1alpha1.AnnotationRevokeTokens] = value
	})
}

var _ = Describe("Token revocation", func() {
	var apiNS, clientNS string
	BeforeEach(func() {
		apiNS, clientNS = newNamespace(nil), newNamespace(nil)
		Expect(k8sClient.Create(ctx, &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}}},
			},
		})).To(Succeed())
	})
	granted := func(c *authv1alpha1.M2MClient) {
		Eventually(func(g Gomega) {
			g.Expect(recordNow(g, c).Grants).To(HaveLen(1))
			g.Expect(get(c).Status.Audiences).To(ConsistOf("api." + apiNS))
		}).Should(Succeed())
	}

	It("revokes every token issued so far on a new revoke-tokens value, once, at a stable time", func() {
		c := newClient(clientNS, "worker")
		granted(c)
		Expect(recordNow(Default, c).TokensNotBefore).To(BeZero())

		before := clock.Now().Unix()
		annotateRevoke(c, "2026-12-01")
		var first int64
		Eventually(func(g Gomega) {
			first = recordNow(g, c).TokensNotBefore
			g.Expect(first).To(Equal(before + 1))
			st := get(c).Status
			g.Expect(st.RevokeTokensHandled).To(Equal("2026-12-01"))
			g.Expect(st.TokensRevokedAt).NotTo(BeNil())
			g.Expect(st.TokensRevokedAt.Unix()).To(Equal(first))
		}).Should(Succeed())
		Expect(first).To(BeNumerically("<=", clock.Now().Unix()+1))

		touch(c) // more reconciles: the time stays
		Consistently(func(g Gomega) {
			g.Expect(recordNow(g, c).TokensNotBefore).To(Equal(first))
		}, "2s", "200ms").Should(Succeed())

		clock.Step(2 * time.Second)
		annotateRevoke(c, "again") // a new value revokes again, later
		Eventually(func(g Gomega) {
			g.Expect(recordNow(g, c).TokensNotBefore).To(BeNumerically(">", first))
		}, "5s").Should(Succeed())
	})

	It("revokes a client's tokens when it is disabled, and keeps them revoked when it is enabled again", func() {
		c := newClient(clientNS, "worker")
		granted(c)
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true })
		var disabledAt int64
		Eventually(func(g Gomega) {
			rec := recordNow(g, c)
			g.Expect(rec.Disabled).To(BeTrue())
			disabledAt = rec.TokensNotBefore
			g.Expect(disabledAt).NotTo(BeZero())
		}).Should(Succeed())
		clock.Step(2 * time.Second)
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = false })
		Eventually(func(g Gomega) {
			rec := recordNow(g, c)
			g.Expect(rec.Disabled).To(BeFalse())
			g.Expect(rec.TokensNotBefore).To(BeNumerically(">", disabledAt))
		}).Should(Succeed())
	})

	It("revokes a client's tokens for an audience whose grant is removed, and only for it", func() {
		c := newClient(clientNS, "worker")
		granted(c)
		aud := "api." + apiNS
		policy := &authv1alpha1.ScopePolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: apiNS, Name: "api"}, policy)).To(Succeed())
		policy.Spec.Grants = nil
		Expect(k8sClient.Update(ctx, policy)).To(Succeed())
		Eventually(func(g Gomega) {
			rec := recordNow(g, c)
			g.Expect(rec.Grants).To(BeEmpty())
			g.Expect(rec.TokensNotBefore).To(BeZero())
			g.Expect(rec.AudienceNotBefore).To(HaveLen(1))
			g.Expect(rec.AudienceNotBefore[0].Audience).To(Equal(aud))
		}).Should(Succeed())
	})

	It("lets a tenant revoke its own clients' tokens only", func() {
		tenantNS := newNamespace(nil)
		tenant, err := testenv.Tenant(ctx, k8sClient, cfg, tenantNS, "mallory")
		Expect(err).NotTo(HaveOccurred())
		victim := newClient(clientNS, "worker")
		granted(victim)

		// Annotating another team's client is refused by RBAC.
		cur := get(victim)
		cur.Annotations = map[string]string{authv1alpha1.AnnotationRevokeTokens: "x"}
		Expect(apierrors.IsForbidden(tenant.Update(ctx, cur))).To(BeTrue())
		// So is writing its status (or its own client's: the status says what was applied).
		Expect(apierrors.IsForbidden(tenant.Status().Update(ctx, cur))).To(BeTrue())

		// The tenant's own client of the same name is revoked; the victim is not.
		own := &authv1alpha1.M2MClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "worker",
				Annotations: map[string]string{authv1alpha1.AnnotationRevokeTokens: "x"}},
			Spec: authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"}},
		}
		Expect(tenant.Create(ctx, own)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(recordNow(g, own).TokensNotBefore).NotTo(BeZero())
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			rec := recordNow(g, victim)
			g.Expect(rec.TokensNotBefore).To(BeZero())
			g.Expect(rec.AudienceNotBefore).To(BeEmpty())
		}, "1s", "200ms").Should(Succeed())
	})
})
