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
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/controllers"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

var _ = Describe("M2MClient controller", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace(nil) })

	It("writes the credential Secret and a hash-only record within 2 s", func() {
		c := newClient(ns, "worker", func(c *authv1alpha1.M2MClient) {
			c.Spec.Claims = map[string]string{"team": "payments"}
			c.Spec.TokenTTL = &metav1.Duration{Duration: 10 * time.Minute}
		})
		var cred corev1.Secret
		Eventually(func() error { return k8sClient.Get(ctx, credSecretKey(c), &cred) }).
			WithTimeout(2 * time.Second).Should(Succeed())
		recObj := &corev1.Secret{}
		Eventually(func() error { return k8sClient.Get(ctx, recordKey(c), recObj) }).
			WithTimeout(2 * time.Second).Should(Succeed())

		secret := string(cred.Data["client_secret"])
		Expect(credential.ValidateSecret(secret)).To(Succeed())
		Expect(secret).To(HavePrefix("m2ms_"))
		Expect(string(cred.Type)).To(Equal(authv1alpha1.SecretTypeClientCredentials))
		Expect(metav1.IsControlledBy(&cred, get(c))).To(BeTrue())
		Expect(cred.Data).To(HaveKey("token_url"))
		Expect(string(cred.Data["token_url"])).To(Equal("https://m2m.test/oauth2/token"))
		Expect(string(cred.Data["issuer"])).To(Equal("https://m2m.test"))
		Expect(cred.Data).To(HaveKey("scope"))
		Expect(cred.Data).To(HaveKey("audience"))
		Expect(cred.Data["ca.crt"]).To(Equal(caBundle))

		id := string(cred.Data["client_id"])
		Expect(id).To(HavePrefix("m2mc_"))
		Eventually(func() string { return get(c).Status.ClientID }).Should(Equal(id))

		// The record: type, label, no plaintext anywhere, the hash of the mounted secret.
		Expect(string(recObj.Type)).To(Equal(authv1alpha1.SecretTypeCredentialRecord))
		Expect(recObj.Labels).To(HaveKeyWithValue(authv1alpha1.LabelClientID, id))
		for k, v := range recObj.Data {
			Expect(string(v)).NotTo(ContainSubstring(secret), "record key %s holds the plaintext", k)
		}
		rec, err := credential.DecodeRecord(recObj.Data[credential.RecordKey])
		Expect(err).NotTo(HaveOccurred())
		Expect(rec.ClientID).To(Equal(id))
		Expect(rec.Secrets).To(HaveLen(1))
		Expect(rec.Secrets[0].SHA256).To(Equal(hashOf(&cred)))
		Expect(rec.Secrets[0].NotAfter).To(BeNil())
		Expect(rec.TokenTTLSeconds).To(Equal(int64(600)))
		Expect(rec.Claims).To(HaveKeyWithValue("team", "payments"))
		Expect(rec.Method).To(Equal("ClientSecret"))

		// Status: credentials ready, nothing granted without a policy, not Ready.
		Eventually(func() string {
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			if cond == nil {
				return ""
			}
			return cond.Reason
		}).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Eventually(func(g Gomega) {
			cur := get(c)
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			g.Expect(cur.Status.SecretRotatedAt).NotTo(BeNil())
			g.Expect(cur.Status.DeniedScopes).To(ConsistOf("invoices:read"))
			g.Expect(condition(c, authv1alpha1.ConditionReady)).To(HaveField("Status", metav1.ConditionFalse))
			g.Expect(condition(c, authv1alpha1.ConditionCredentialsReady)).To(HaveField("Message", ContainSubstring("holds client_id and client_secret")))
		}).Should(Succeed())
		// A first issuance is reported by the status alone (CredentialsReady and secretRotatedAt
		// above), not by a CredentialsCreated Event: that Event was one API write per new client
		// (docs/performance.md). The rotation test below checks that none is emitted.

		// The status and events never carry the secret or its hash.
		status := get(c).Status
		for _, cond := range status.Conditions {
			Expect(cond.Message).NotTo(ContainSubstring(secret))
			Expect(cond.Message).NotTo(ContainSubstring(hashOf(&cred)))
		}
	})

	It("grants nothing without a policy: ScopesGranted False NotGranted, naming nothing about other teams", func() {
		c := newClient(ns, "lonely")
		Eventually(func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionScopesGranted)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonNotGranted))
			g.Expect(cond.Message).To(ContainSubstring("invoices:read"))
		}).Should(Succeed())
	})

	It("rotates on the annotation, accepting both secrets for the grace period, then only the new one", func() {
		c := newClient(ns, "rotor", func(c *authv1alpha1.M2MClient) {
			c.Spec.SecretRotation = &authv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: 30 * time.Minute}}
		})
		old := credSecret(c)
		oldHash := hashOf(old)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(HaveKey(oldHash))

		update(c, func(c *authv1alpha1.M2MClient) {
			c.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "2026-01-01"}
		})
		var newHash string
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), s)).To(Succeed())
			newHash = hashOf(s)
			g.Expect(newHash).NotTo(Equal(oldHash))
			g.Expect(credential.ValidateSecret(string(s.Data["client_secret"]))).To(Succeed())
		}).Should(Succeed())
		graceEnd := clock.Now().Add(30 * time.Minute).UTC().Format("2006-01-02T15:04:05Z")
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).
			Should(Equal(map[string]string{newHash: "", oldHash: graceEnd}))
		Eventually(func(g Gomega) []string { return eventReasons(g, get(c)) }).Should(ContainElement(authv1alpha1.ReasonSecretRotated))
		// The status names the request the secret answers (kubectl m2m rotate waits on it when
		// the caller may not read the Secret).
		Eventually(func() string { return get(c).Status.RotateHandled }).Should(Equal("2026-01-01"))
		// The first issuance, long before the rotation, emitted no Event.
		Expect(eventReasons(Default, get(c))).NotTo(ContainElement(authv1alpha1.ReasonCredentialsCreated))

		// Inside the grace period nothing changes.
		clock.Step(29 * time.Minute)
		touch(c)
		Consistently(func(g Gomega) map[string]string { return recordHashes(g, c) }, "300ms").
			Should(HaveLen(2))

		// After it, only the new hash remains.
		clock.Step(2 * time.Minute)
		touch(c)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).
			Should(Equal(map[string]string{newHash: ""}))

		// The same annotation value does not rotate again.
		touch(c)
		Consistently(func() string { return hashOf(credSecret(c)) }, "300ms").Should(Equal(newHash))
	})

	It("rotates on the interval and reports nextRotationAt", func() {
		c := newClient(ns, "periodic", func(c *authv1alpha1.M2MClient) {
			c.Spec.SecretRotation = &authv1alpha1.SecretRotation{
				Interval:    &metav1.Duration{Duration: time.Hour},
				GracePeriod: &metav1.Duration{Duration: 10 * time.Second},
			}
		})
		oldHash := hashOf(credSecret(c))
		issued := clock.Now()
		Eventually(func(g Gomega) {
			st := get(c).Status
			g.Expect(st.NextRotationAt).NotTo(BeNil())
			g.Expect(st.NextRotationAt.Time).To(BeTemporally("~", issued.Add(time.Hour), time.Second))
		}).Should(Succeed())

		clock.Step(time.Hour + time.Second)
		touch(c)
		var newHash string
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), s)).To(Succeed())
			newHash = hashOf(s)
			g.Expect(newHash).NotTo(Equal(oldHash))
		}).Should(Succeed())
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(HaveLen(2))
		Eventually(func(g Gomega) {
			st := get(c).Status
			g.Expect(st.NextRotationAt.Time).To(BeTemporally("~", clock.Now().Add(time.Hour), time.Second))
		}).Should(Succeed())

		clock.Step(11 * time.Second)
		touch(c)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).
			Should(Equal(map[string]string{newHash: ""}))
	})

	It("requeues for exactly the end of the grace period", func() {
		c := newClient(ns, "exact", func(c *authv1alpha1.M2MClient) {
			c.Spec.SecretRotation = &authv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: 45 * time.Minute}}
			c.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "a"}
		})
		credSecret(c)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(HaveLen(1))
		update(c, func(c *authv1alpha1.M2MClient) { c.Annotations[authv1alpha1.AnnotationRotate] = "b" })
		Eventually(func(g Gomega) {
			hashes := recordHashes(g, c)
			g.Expect(hashes).To(HaveLen(2))
			g.Expect(hashes).To(HaveKeyWithValue(hashOf(credSecret(c)), ""))
			g.Expect(get(c).Status.SecretRotatedAt.Time).To(BeTemporally("~", clock.Now(), time.Second))
		}).Should(Succeed())

		clock.Step(15 * time.Minute)
		res, err := directReconciler().Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(BeNumerically("~", 30*time.Minute, time.Second))
	})

	It("repairs a deleted credential Secret with a fresh secret and drops the old hash at once", func() {
		c := newClient(ns, "repair-deleted")
		old := credSecret(c)
		oldHash := hashOf(old)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(HaveKey(oldHash))

		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), s)).To(Succeed())
			g.Expect(s.UID).NotTo(Equal(old.UID))
			g.Expect(recordHashes(g, c)).To(Equal(map[string]string{hashOf(s): ""}))
		}).Should(Succeed())
		Expect(hashOf(credSecret(c))).NotTo(Equal(oldHash))
		Eventually(func(g Gomega) []string { return eventReasons(g, get(c)) }).Should(ContainElement(authv1alpha1.ReasonCredentialSecretRecreated))
	})

	It("repairs an edited client_secret with a fresh secret and revokes every other", func() {
		c := newClient(ns, "repair-edited")
		s := credSecret(c)
		oldHash := hashOf(s)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(HaveKey(oldHash))

		forged, err := credential.NewSecret()
		Expect(err).NotTo(HaveOccurred())
		s.Data["client_secret"] = []byte(forged)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			cur := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), cur)).To(Succeed())
			h := hashOf(cur)
			g.Expect(h).NotTo(Equal(oldHash))
			g.Expect(string(cur.Data["client_secret"])).NotTo(Equal(forged))
			g.Expect(recordHashes(g, c)).To(Equal(map[string]string{h: ""}))
		}).Should(Succeed())
		Eventually(func(g Gomega) []string { return eventReasons(g, get(c)) }).Should(ContainElement(authv1alpha1.ReasonCredentialSecretEdited))
	})

	It("rebuilds a deleted or edited record from the credential Secret without rotating", func() {
		c := newClient(ns, "repair-record")
		s := credSecret(c)
		h := hashOf(s)
		recObj, _ := record(c)

		Expect(k8sClient.Delete(ctx, recObj)).To(Succeed())
		Eventually(func(g Gomega) {
			r := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, recordKey(c), r)).To(Succeed())
			g.Expect(r.UID).NotTo(Equal(recObj.UID))
			g.Expect(recordHashes(g, c)).To(Equal(map[string]string{h: ""}))
		}).Should(Succeed())
		Expect(hashOf(credSecret(c))).To(Equal(h))

		// An edit (an extra hash planted, garbage) is undone.
		recObj, rec := record(c)
		rec.Secrets = append(rec.Secrets, credential.SecretHash{SHA256: strings.Repeat("ab", 32)})
		data, err := rec.Encode()
		Expect(err).NotTo(HaveOccurred())
		recObj.Data[credential.RecordKey] = data
		Expect(k8sClient.Update(ctx, recObj)).To(Succeed())
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(Equal(map[string]string{h: ""}))

		recObj, _ = record(c)
		recObj.Data[credential.RecordKey] = []byte("{not json")
		Expect(k8sClient.Update(ctx, recObj)).To(Succeed())
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(Equal(map[string]string{h: ""}))
		Expect(hashOf(credSecret(c))).To(Equal(h))
	})

	It("removes both Secrets and then itself on deletion", func() {
		c := newClient(ns, "doomed")
		cred := credSecret(c)
		recObj, _ := record(c)
		Expect(get(c).Finalizers).To(ContainElement(authv1alpha1.Finalizer))

		Expect(k8sClient.Delete(ctx, get(c))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &authv1alpha1.M2MClient{}))
		}).Should(BeTrue())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(cred), &corev1.Secret{}))).To(BeTrue())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(recObj), &corev1.Secret{}))).To(BeTrue())
	})

	It("causes no writes when reconciling an unchanged client ten times", func() {
		c := newClient(ns, "steady")
		credSecret(c)
		record(c)
		Eventually(func(g Gomega) {
			cur := get(c)
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			// Ready, CredentialsReady, ScopesGranted and Stalled (nothing is granted).
			g.Expect(cur.Status.Conditions).To(HaveLen(4))
		}).Should(Succeed())
		versions := func() []string {
			recObj, _ := record(c)
			return []string{get(c).ResourceVersion, credSecret(c).ResourceVersion, recObj.ResourceVersion}
		}
		before, statusBefore := versions(), get(c).Status
		r := directReconciler()
		for range 10 {
			_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c)})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(versions()).To(Equal(before), "status before: %+v\nafter: %+v", statusBefore, get(c).Status)
	})

	It("never overwrites a Secret it does not own: SecretNameConflict", func() {
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"},
			Data:       map[string][]byte{"password": []byte("hunter2")},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		c := newClient(ns, "squatted", func(c *authv1alpha1.M2MClient) { c.Spec.SecretName = "taken" })
		Eventually(func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonSecretNameConflict))
			g.Expect(cond.Message).To(ContainSubstring("taken"))
		}).Should(Succeed())
		cur := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), cur)).To(Succeed())
		Expect(cur.Data).To(Equal(foreign.Data))
		Expect(cur.OwnerReferences).To(BeEmpty())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, recordKey(c), &corev1.Secret{}))).To(BeTrue())
		Expect(reason(c, authv1alpha1.ConditionReady)).To(Equal(authv1alpha1.ReasonSecretNameConflict))

		// Deleting the foreign Secret sends the controller no event (its cache holds only the
		// Secrets it wrote); the conflict still clears on its own, without touching the client.
		Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).
			WithTimeout(15 * time.Second).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Expect(metav1.IsControlledBy(credSecret(c), get(c))).To(BeTrue())
	})

	It("reflects spec.disabled in the record and keeps the credential Secret", func() {
		c := newClient(ns, "pausable")
		cred := credSecret(c)
		record(c)
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true })
		Eventually(func(g Gomega) bool {
			r := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, recordKey(c), r)).To(Succeed())
			rec, err := credential.DecodeRecord(r.Data[credential.RecordKey])
			g.Expect(err).NotTo(HaveOccurred())
			return rec.Disabled
		}).WithTimeout(2 * time.Second).Should(BeTrue())
		Expect(hashOf(credSecret(c))).To(Equal(hashOf(cred)))
		Eventually(func() string { return reason(c, authv1alpha1.ConditionReady) }).Should(Equal(authv1alpha1.ReasonDisabled))
		Eventually(func(g Gomega) []string { return eventReasons(g, get(c)) }).Should(ContainElement(authv1alpha1.ReasonDisabled))
	})

	It("writes no secret for the ServiceAccount method", func() {
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "robot"}})).To(Succeed())
		c := newClient(ns, "secretless", func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthServiceAccount, ServiceAccountName: "robot"}
		})
		cred := credSecret(c)
		Expect(cred.Data).NotTo(HaveKey("client_secret"))
		Expect(cred.Data).To(HaveKey("client_id"))
		_, rec := record(c)
		Expect(rec.Secrets).To(BeEmpty())
		Expect(rec.Method).To(Equal("ServiceAccount"))
		Expect(rec.ServiceAccountName).To(Equal("robot"))
		Expect(keysOf(cred.Data)).To(ConsistOf("client_id", "token_url", "issuer", "scope", "audience", "ca.crt"))
		Expect(cred.Annotations).To(BeEmpty(), "no secret, so no rotation bookkeeping")
		Eventually(func(g Gomega) string {
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			return cond.Message
		}).Should(ContainSubstring("ServiceAccount robot with audience https://m2m.test"))
	})

	It("copies a PrivateKeyJWT client's public JWKS into the record, and no secret anywhere", func() {
		pub := publicJWKS(ecKey().Public(), "k1")
		c := newClient(ns, "signer", func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT, JWKS: pub}
		})
		cred := credSecret(c)
		Expect(keysOf(cred.Data)).To(ConsistOf("client_id", "token_url", "issuer", "scope", "audience", "ca.crt"))
		var rec *credential.Record
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, recordKey(c), s)).To(Succeed())
			r, err := credential.DecodeRecord(s.Data[credential.RecordKey])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r.JWKS).NotTo(BeEmpty())
			rec = r
		}).Should(Succeed())
		Expect(rec.Method).To(Equal("PrivateKeyJWT"))
		Expect(rec.Secrets).To(BeEmpty())
		keys, err := credential.ParseClientJWKS(rec.JWKS)
		Expect(err).NotTo(HaveOccurred())
		Expect(keys).To(HaveLen(1))
		Expect(keys[0].KID).To(Equal("k1"))
		Expect(keys[0].Algs).To(Equal([]string{"ES256"}))
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
	})

	It("refuses a JWKS holding a private key: InvalidJWKS, and the record keeps no key at all", func() {
		priv := ecKey()
		leaked := publicJWKS(priv, "leaked") // the private JWK, as a careless paste would have it
		c := newClient(ns, "leaky", func(c *authv1alpha1.M2MClient) {
			c.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT, JWKS: leaked}
		})
		Eventually(func(g Gomega) {
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonInvalidJWKS))
			g.Expect(cond.Message).To(ContainSubstring("private key material"))
		}).Should(Succeed())
		Expect(reason(c, authv1alpha1.ConditionReady)).To(Equal(authv1alpha1.ReasonInvalidJWKS))
		recObj, rec := record(c)
		Expect(rec.JWKS).To(BeEmpty())
		Expect(string(recObj.Data[credential.RecordKey])).NotTo(ContainSubstring(`"d":`))

		By("fixing the JWKS makes the client ready with the public key")
		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.Authentication.JWKS = publicJWKS(priv.Public(), "fixed") })
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Eventually(func(g Gomega) {
			_, rec := record(c)
			keys, err := credential.ParseClientJWKS(rec.JWKS)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys[0].KID).To(Equal("fixed"))
		}).Should(Succeed())
	})

	It("keeps secrets and client ids across a controller restart", func() {
		c := newClient(ns, "durable")
		before := credSecret(c).DeepCopy()
		Eventually(func() string { return get(c).Status.ClientID }).ShouldNot(BeEmpty())
		id := get(c).Status.ClientID

		stopMgr()
		stopMgr = startManager()

		update(c, func(c *authv1alpha1.M2MClient) { c.Spec.DisplayName = "after restart" })
		Eventually(func(g Gomega) {
			cur := get(c)
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
		}).Should(Succeed())
		after := credSecret(c)
		Expect(after.Data["client_secret"]).To(Equal(before.Data["client_secret"]))
		Expect(string(after.Data["client_id"])).To(Equal(id))
		Expect(get(c).Status.ClientID).To(Equal(id))
	})
})

// directReconciler returns a reconciler that reads straight from the API server, to call
// Reconcile synchronously.
func directReconciler() *controllers.M2MClientReconciler {
	return &controllers.M2MClientReconciler{
		Client:    k8sClient,
		APIReader: k8sClient,
		Recorder:  events.NewFakeRecorder(100),
		Options: controllers.Options{
			SystemNamespace:      systemNamespace,
			CredentialsNamespace: systemNamespace,
			Issuer:               "https://m2m.test",
			TokenURL:             "https://m2m.test/oauth2/token",
			CABundle:             true,
			Clock:                clock,
		},
	}
}

var _ = context.Background

func keysOf(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ecKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	return k
}

// publicJWKS encodes one key (public or, to test refusal, private) as a JWKS document.
func publicJWKS(key any, kid string) string {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: kid}}})
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}
