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

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

var _ = Describe("M2MClient with spec.authentication.jwksFrom", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace(nil) })

	jwksLabel := map[string]string{authv1alpha1.LabelJWKS: "true"}

	fromConfigMap := func(name, key string) func(*authv1alpha1.M2MClient) {
		return func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT,
				JWKSFrom: &authv1alpha1.JWKSSource{ConfigMapKeyRef: &authv1alpha1.KeyReference{Name: name, Key: key}}}
		}
	}
	fromSecret := func(name, key string) func(*authv1alpha1.M2MClient) {
		return func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT,
				JWKSFrom: &authv1alpha1.JWKSSource{SecretKeyRef: &authv1alpha1.KeyReference{Name: name, Key: key}}}
		}
	}
	// expectRecordKIDs waits until the record's JWKS holds exactly the given kids.
	expectRecordKIDs := func(c *authv1alpha1.M2MClient, kids ...string) {
		EventuallyWithOffset(1, func(g Gomega) {
			_, rec := record(c)
			keys, err := credential.ParseClientJWKS(rec.JWKS)
			g.Expect(err).NotTo(HaveOccurred())
			var got []string
			for _, k := range keys {
				got = append(got, k.KID)
			}
			g.Expect(got).To(ConsistOf(kids))
		}).Should(Succeed())
	}
	expectCredentials := func(c *authv1alpha1.M2MClient, want string, msg ...string) {
		EventuallyWithOffset(1, func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(want))
			for _, m := range msg {
				g.Expect(cond.Message).To(ContainSubstring(m))
			}
			if want != "CredentialsIssued" {
				g.Expect(reason(c, authv1alpha1.ConditionReady)).To(Equal(want))
			}
		}).Should(Succeed())
	}

	It("reads the JWKS from a labelled ConfigMap, and a change to the ConfigMap reaches the record", func() {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signer-keys", Labels: jwksLabel},
			Data:       map[string]string{"jwks.json": publicJWKS(ecKey().Public(), "k1")},
		}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		c := newClient(ns, "signer", fromConfigMap("signer-keys", "jwks.json"))
		expectRecordKIDs(c, "k1")
		expectCredentials(c, "CredentialsIssued", "ConfigMap "+ns+"/signer-keys")
		_, rec := record(c)
		Expect(rec.Method).To(Equal("PrivateKeyJWT"))
		Expect(rec.Secrets).To(BeEmpty())

		By("a key rotation in the ConfigMap reaches the record")
		cm.Data["jwks.json"] = publicJWKS(ecKey().Public(), "k2")
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		expectRecordKIDs(c, "k2")

		By("a private key pasted into the ConfigMap is refused: InvalidJWKS, and the record keeps no key")
		priv := ecKey()
		cm.Data["jwks.json"] = publicJWKS(priv, "leaked")
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		expectCredentials(c, "InvalidJWKS", "private key material", "ConfigMap "+ns+"/signer-keys")
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, recordKey(c), s)).To(Succeed())
			rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rec.JWKS).To(BeEmpty())
		}).Should(Succeed())

		By("fixing it makes the client's credentials ready again")
		cm.Data["jwks.json"] = publicJWKS(priv.Public(), "k3")
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		expectRecordKIDs(c, "k3")
		expectCredentials(c, "CredentialsIssued")

		By("deleting the ConfigMap leaves the client without keys: JWKSNotFound")
		Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
		expectCredentials(c, "JWKSNotFound", "ConfigMap "+ns+"/signer-keys", authv1alpha1.LabelJWKS)
	})

	It("reads the JWKS from a labelled Secret", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signer-keys", Labels: jwksLabel},
			Data:       map[string][]byte{"jwks": []byte(publicJWKS(ecKey().Public(), "s1"))},
		})).To(Succeed())
		c := newClient(ns, "signer", fromSecret("signer-keys", "jwks"))
		expectRecordKIDs(c, "s1")
		expectCredentials(c, "CredentialsIssued", "Secret "+ns+"/signer-keys")
		Expect(keysOf(credSecret(c).Data)).To(ConsistOf("client_id", "token_url", "issuer", "scope", "audience", "ca.crt"))
	})

	It("reports JWKSNotFound naming the missing object or key, and becomes ready once it is there", func() {
		c := newClient(ns, "early", fromSecret("later-keys", "jwks.json"))
		expectCredentials(c, "JWKSNotFound", "Secret "+ns+"/later-keys was not found", authv1alpha1.LabelJWKS+"=true")
		_, rec := record(c)
		Expect(rec.JWKS).To(BeEmpty())

		By("an unlabelled Secret is invisible to the controller, as its message says")
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later-keys"},
			Data:       map[string][]byte{"other": []byte(publicJWKS(ecKey().Public(), "x"))},
		}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		touch(c)
		expectCredentials(c, "JWKSNotFound", "was not found")

		By("labelling it makes it visible, but the key is still missing")
		s.Labels = jwksLabel
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		expectCredentials(c, "JWKSNotFound", "Secret "+ns+"/later-keys has no key \"jwks.json\"")

		By("adding the key makes the client's credentials ready")
		s.Data["jwks.json"] = []byte(publicJWKS(ecKey().Public(), "late"))
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		expectRecordKIDs(c, "late")
		expectCredentials(c, "CredentialsIssued")
	})

	It("serves several clients from one object, each from its own key", func() {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared", Labels: jwksLabel},
			Data:       map[string]string{"a": publicJWKS(ecKey().Public(), "a1"), "b": publicJWKS(ecKey().Public(), "b1")},
		}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		a := newClient(ns, "a", fromConfigMap("shared", "a"))
		b := newClient(ns, "b", fromConfigMap("shared", "b"))
		expectRecordKIDs(a, "a1")
		expectRecordKIDs(b, "b1")
		cm.Data["b"] = publicJWKS(ecKey().Public(), "b2")
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		expectRecordKIDs(b, "b2")
		expectRecordKIDs(a, "a1")
	})
})
