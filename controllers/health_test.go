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
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// kstatusOf computes what Flux's health checks (kstatus) report for the object now.
func kstatusOf(g Gomega, o client.Object) status.Status {
	cur := o.DeepCopyObject().(client.Object)
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), cur)).To(Succeed())
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

var _ = Describe("Health as GitOps tools read it (kstatus)", func() {
	var apiNS, ns string
	var policy *authv1alpha1.ScopePolicy
	BeforeEach(func() {
		apiNS, ns = newNamespace(nil), newNamespace(nil)
		policy = &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{ns}}}},
			},
		}
		Expect(k8sClient.Create(ctx, policy)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, policy))).To(Succeed()) })
	})
	kstatus := func(o client.Object) func(Gomega) status.Status {
		return func(g Gomega) status.Status { return kstatusOf(g, o) }
	}

	It("is Current when ready, and when disabled as Git declares", func() {
		c := newClient(ns, "worker")
		Eventually(kstatus(c)).Should(Equal(status.CurrentStatus))
		Eventually(kstatus(policy)).Should(Equal(status.CurrentStatus))
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true })
		Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonDisabled))
		Eventually(kstatus(c)).Should(Equal(status.CurrentStatus))
	})

	It("is Failed (Stalled) for what waiting will not cure", func() {
		ungranted := newClient(ns, "ungranted", func(c *authv1alpha1.M2MClient) {
			c.Spec.Scopes = []authv1alpha1.ScopeToken{"payroll:admin"}
		})
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}})).To(Succeed())
		conflict := newClient(ns, "conflict", func(c *authv1alpha1.M2MClient) { c.Spec.SecretName = "taken" })
		badKeys := newClient(ns, "badkeys", func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT, JWKS: `{"keys":[]}`}
		})
		for _, c := range []*authv1alpha1.M2MClient{ungranted, conflict, badKeys} {
			Eventually(kstatus(c)).Should(Equal(status.FailedStatus), "%s: conditions %+v", c.Name, get(c).Status.Conditions)
		}

		unbound := &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "unbound"},
			Spec:       authv1alpha1.ScopePolicySpec{Audience: "https://unbound.example.com"},
		}
		Expect(k8sClient.Create(ctx, unbound)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, unbound)).To(Succeed()) })
		contested := &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "second"},
			Spec:       authv1alpha1.ScopePolicySpec{Audience: authv1alpha1.Audience("api." + apiNS)},
		}
		Expect(k8sClient.Create(ctx, contested)).To(Succeed())
		DeferCleanup(func() { Expect(k8sClient.Delete(ctx, contested)).To(Succeed()) })
		Eventually(kstatus(unbound)).Should(Equal(status.FailedStatus))
		Eventually(kstatus(contested)).Should(Equal(status.FailedStatus))
		Eventually(kstatus(policy)).Should(Equal(status.CurrentStatus))
	})

	It("reports a missing ServiceAccount, and heals when it is created", func() {
		c := newClient(ns, "robot", func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthServiceAccount, ServiceAccountName: "robot"}
		})
		Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonServiceAccountNotFound))
		Expect(condition(c, authv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		Eventually(kstatus(c)).Should(Equal(status.FailedStatus))

		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})).To(Succeed())
		Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonReady))
		Eventually(kstatus(c)).Should(Equal(status.CurrentStatus))
	})
})
