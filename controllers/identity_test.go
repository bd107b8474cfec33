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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

var _ = Describe("Client identity across delete and re-create", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace(nil) })

	gone := func(c *authv1alpha1.M2MClient) func() bool {
		return func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &authv1alpha1.M2MClient{}))
		}
	}

	It("keeps the client id through kubectl replace --force; the secret is new and the old one revoked", func() {
		c := newClient(ns, "worker")
		firstSecret := hashOf(credSecret(c))
		Eventually(func() string { return get(c).Status.ClientID }).Should(Equal(credential.ClientIDForName(ns, "worker")))
		firstUID := get(c).UID

		Expect(k8sClient.Delete(ctx, get(c))).To(Succeed())
		Eventually(gone(c)).Should(BeTrue())
		again := newClient(ns, "worker")
		Eventually(func() types.UID { return get(again).UID }).ShouldNot(Equal(firstUID))
		Eventually(func() string { return get(again).Status.ClientID }).Should(Equal(credential.ClientIDForName(ns, "worker")))
		Eventually(func() string { return hashOf(credSecret(again)) }).ShouldNot(Equal(firstSecret))
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, again) }).
			Should(Equal(map[string]string{hashOf(credSecret(again)): ""}), "only the new secret is accepted")
	})

	It("gives another namespace's client of the same name another id", func() {
		other := newNamespace(nil)
		a, b := newClient(ns, "worker"), newClient(other, "worker")
		Eventually(func() string { return get(a).Status.ClientID }).ShouldNot(BeEmpty())
		Eventually(func() string { return get(b).Status.ClientID }).ShouldNot(BeEmpty())
		Expect(get(a).Status.ClientID).NotTo(Equal(get(b).Status.ClientID))
	})

	It("removes the record an earlier object of the name left behind, so the id is claimed once", func() {
		c := newClient(ns, "orphaned")
		staleRecord, _ := record(c)
		staleCred := credSecret(c)
		// The object goes without its finalizer running (someone removed it by hand).
		Eventually(func() error {
			cur := get(c)
			cur.Finalizers = nil
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Expect(k8sClient.Delete(ctx, get(c))).To(Succeed())
		Eventually(gone(c)).Should(BeTrue())
		// In a cluster, garbage collection deletes the credential Secret (its owner is gone).
		Expect(k8sClient.Delete(ctx, staleCred)).To(Succeed())

		again := newClient(ns, "orphaned")
		Eventually(func() string { return reason(again, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(staleRecord), &corev1.Secret{}))
		}).Should(BeTrue())
		var records corev1.SecretList
		Expect(k8sClient.List(ctx, &records, client.InNamespace(systemNamespace),
			client.MatchingLabels{authv1alpha1.LabelClientID: credential.ClientIDForName(ns, "orphaned")})).To(Succeed())
		Expect(records.Items).To(HaveLen(1))
		Expect(records.Items[0].Name).To(Equal(string(get(again).UID)))
	})

	It("keeps the UID-derived id of a client that already has one", func() {
		c := newClient(ns, "legacy")
		credSecret(c)
		// Settled first: a reconcile still in flight would write the id it computed over ours.
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Eventually(func(g Gomega) {
			rv := get(c).ResourceVersion
			g.Consistently(func() string { return get(c).ResourceVersion }, "300ms").Should(Equal(rv))
		}).Should(Succeed())
		legacy := credential.ClientIDFor(string(get(c).UID))
		Eventually(func() error {
			cur := get(c)
			cur.Status.ClientID = legacy
			return k8sClient.Status().Update(ctx, cur)
		}).Should(Succeed())
		touch(c)
		Consistently(func() string { return get(c).Status.ClientID }, "300ms").Should(Equal(legacy))

		// Any other id in status is not trusted: the name decides.
		Eventually(func() error {
			cur := get(c)
			cur.Status.ClientID = "m2mc_chosen"
			return k8sClient.Status().Update(ctx, cur)
		}).Should(Succeed())
		touch(c)
		Eventually(func() string { return get(c).Status.ClientID }).Should(Equal(credential.ClientIDForName(ns, "legacy")))
	})
})
