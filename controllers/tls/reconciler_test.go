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

package tlscontroller_test

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/certs"
)

var dnsNames = []string{
	"m2m-tokenserver",
	"m2m-tokenserver.m2m-system",
	"m2m-tokenserver.m2m-system.svc",
	"m2m-tokenserver.m2m-system.svc.cluster.local",
}

// tlsState is what a client of the token server sees: the CA bundle and the serving certificate.
type tlsState struct {
	ca, serving *corev1.Secret
	bundle      []*x509.Certificate
	leaf        *x509.Certificate
}

func getSecret(g Gomega, ns, name string) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	return s
}

// validState asserts that both Secrets are complete and consistent in ns, and that the serving
// certificate verifies at `at` against the CA bundle for every name in names.
func validState(g Gomega, ns tlscontroller.Namespaces, names []string, at time.Time) tlsState {
	st := tlsState{ca: getSecret(g, ns.System, tlscontroller.CASecretName), serving: getSecret(g, ns.Credentials, tlscontroller.ServingSecretName)}
	for _, s := range []*corev1.Secret{st.ca, st.serving} {
		g.Expect(s.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue), s.Name)
	}
	g.Expect(st.serving.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(st.serving.Data).To(HaveKey(tlscontroller.CACertKey))
	g.Expect(st.serving.Data[tlscontroller.CACertKey]).To(Equal(st.ca.Data[tlscontroller.CACertKey]), "the serving Secret's ca.crt is the CA bundle")
	var err error
	st.bundle, err = certs.ParseCertificates(st.ca.Data[tlscontroller.CACertKey])
	g.Expect(err).NotTo(HaveOccurred())
	_, err = certs.ParseKeyPair(st.ca.Data[tlscontroller.CACertKey], st.ca.Data[tlscontroller.CAKeyKey])
	g.Expect(err).NotTo(HaveOccurred(), "ca.key belongs to the first certificate of ca.crt")
	pair, err := certs.ParseKeyPair(st.serving.Data[corev1.TLSCertKey], st.serving.Data[corev1.TLSPrivateKeyKey])
	g.Expect(err).NotTo(HaveOccurred())
	st.leaf = pair.Cert
	roots := x509.NewCertPool()
	for _, c := range st.bundle {
		roots.AddCert(c)
	}
	for _, name := range names {
		_, err := st.leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		g.Expect(err).NotTo(HaveOccurred(), name)
	}
	return st
}

func getConfigMap(g Gomega) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: systemNamespace, Name: tlscontroller.CAConfigMapName}, cm)).To(Succeed())
	return cm
}

// expectPublished asserts that the CA ConfigMap is labelled as the controller's and holds
// exactly ca.crt of the CA Secret ca: certificates only, never a key.
func expectPublished(g Gomega, ca *corev1.Secret) *corev1.ConfigMap {
	cm := getConfigMap(g)
	g.Expect(cm.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
	g.Expect(cm.BinaryData).To(BeEmpty())
	g.Expect(cm.Data).To(HaveLen(1))
	g.Expect(cm.Data).To(HaveKeyWithValue(tlscontroller.CACertKey, string(ca.Data[tlscontroller.CACertKey])))
	g.Expect(cm.Data[tlscontroller.CACertKey]).NotTo(ContainSubstring("PRIVATE KEY"))
	g.Expect(cm.Data[tlscontroller.CACertKey]).NotTo(ContainSubstring(string(ca.Data[tlscontroller.CAKeyKey])))
	_, err := certs.ParseCertificates([]byte(cm.Data[tlscontroller.CACertKey]))
	g.Expect(err).NotTo(HaveOccurred())
	return cm
}

func eventuallyValid() tlsState {
	GinkgoHelper()
	var st tlsState
	Eventually(func(g Gomega) { st = validState(g, managed, dnsNames, clock.Now()) }).Should(Succeed())
	return st
}

// touch changes an annotation, which makes the controller reconcile.
func touch(s *corev1.Secret) {
	GinkgoHelper()
	patch := client.MergeFrom(s.DeepCopy())
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations["test.m2m.dev/touched"] = time.Now().Format(time.RFC3339Nano)
	Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
}

func corrupt(s *corev1.Secret, key string) {
	GinkgoHelper()
	patch := client.MergeFrom(s.DeepCopy())
	s.Data[key] = []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
	Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
}

// expectEvent waits for an Event with reason on the Secret name of the manager-driven
// controller (the CA in the system namespace, the serving Secret in the credentials namespace).
func expectEvent(name, eventType, reason string) {
	ns := managed.Credentials
	if name == tlscontroller.CASecretName {
		ns = managed.System
	}
	GinkgoHelper()
	Eventually(func(g Gomega) {
		list := &eventsv1.EventList{}
		g.Expect(k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason && e.Type == eventType {
				found = true
				g.Expect(e.Note).NotTo(ContainSubstring("PRIVATE KEY"))
			}
		}
		g.Expect(found).To(BeTrue(), "no %s Event %s on %s", eventType, reason, name)
	}).Should(Succeed())
}

var _ = Describe("the TLS controller under a manager", func() {
	It("issues a CA and a serving certificate valid for every DNS name of the Service", func() {
		st := eventuallyValid()
		Expect(st.leaf.DNSNames).To(ConsistOf(dnsNames))
		Expect(st.leaf.IsCA).To(BeFalse())
		Expect(st.bundle[0].IsCA).To(BeTrue())
		Expect(st.leaf.NotAfter.Sub(st.leaf.NotBefore)).To(BeNumerically("<=", certs.DefaultServingValidity+certs.Backdate))
		expectEvent(tlscontroller.CASecretName, corev1.EventTypeNormal, tlscontroller.ReasonCAIssued)
		expectEvent(tlscontroller.ServingSecretName, corev1.EventTypeNormal, tlscontroller.ReasonCertificateIssued)
	})

	It("keeps the CA key out of the credentials namespace, which the token server reads", func() {
		for _, key := range []types.NamespacedName{
			{Namespace: credentialsNamespace, Name: tlscontroller.CASecretName},
			{Namespace: systemNamespace, Name: tlscontroller.ServingSecretName},
		} {
			err := k8s.Get(context.Background(), key, &corev1.Secret{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s: %v", key, err)
		}
		st := eventuallyValid()
		Expect(st.serving.Data).NotTo(HaveKey(tlscontroller.CAKeyKey))
		Expect(st.serving.Data[corev1.TLSPrivateKeyKey]).NotTo(Equal(st.ca.Data[tlscontroller.CAKeyKey]))
	})

	It("renews the serving certificate once the clock passes two thirds of its life, and keeps the CA", func() {
		before := eventuallyValid()
		life := before.leaf.NotAfter.Sub(before.leaf.NotBefore)
		clock.SetTime(before.leaf.NotBefore.Add(life * 2 / 3))
		touch(before.serving)
		var after tlsState
		Eventually(func(g Gomega) {
			after = validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.leaf.SerialNumber).NotTo(Equal(before.leaf.SerialNumber))
		}).Should(Succeed())
		Expect(after.leaf.NotBefore).To(BeTemporally(">", before.leaf.NotBefore))
		Expect(after.ca.UID).To(Equal(before.ca.UID))
		Expect(after.ca.Data).To(Equal(before.ca.Data), "the CA is kept across serving renewals")
		expectEvent(tlscontroller.ServingSecretName, corev1.EventTypeNormal, tlscontroller.ReasonCertificateRenewed)
	})

	It("recreates the serving Secret after it is deleted, under the same CA", func() {
		before := eventuallyValid()
		Expect(k8s.Delete(context.Background(), before.serving)).To(Succeed())
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.serving.UID).NotTo(Equal(before.serving.UID))
			g.Expect(after.ca.Data).To(Equal(before.ca.Data))
		}).Should(Succeed())
	})

	It("recreates the CA after it is deleted and reissues the serving certificate under it", func() {
		before := eventuallyValid()
		Expect(k8s.Delete(context.Background(), before.ca)).To(Succeed())
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.ca.UID).NotTo(Equal(before.ca.UID))
			g.Expect(after.bundle).To(HaveLen(1))
			g.Expect(after.bundle[0].Equal(before.bundle[0])).To(BeFalse())
		}).Should(Succeed())
	})

	It("replaces a corrupt serving key and says so in a Warning", func() {
		before := eventuallyValid()
		corrupt(before.serving, corev1.TLSPrivateKeyKey)
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.leaf.SerialNumber).NotTo(Equal(before.leaf.SerialNumber))
		}).Should(Succeed())
		expectEvent(tlscontroller.ServingSecretName, corev1.EventTypeWarning, tlscontroller.ReasonCertificateReissued)
	})

	It("replaces a corrupt CA key and says so in a Warning", func() {
		before := eventuallyValid()
		corrupt(before.ca, tlscontroller.CAKeyKey)
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.bundle[0].Equal(before.bundle[0])).To(BeFalse())
		}).Should(Succeed())
		expectEvent(tlscontroller.CASecretName, corev1.EventTypeWarning, tlscontroller.ReasonCARecreated)
	})

	It("puts back a removed managed-by label without reissuing anything", func() {
		before := eventuallyValid()
		patch := client.MergeFrom(before.serving.DeepCopy())
		delete(before.serving.Labels, authv1alpha1.LabelManagedBy)
		Expect(k8s.Patch(context.Background(), before.serving, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.leaf.SerialNumber).To(Equal(before.leaf.SerialNumber))
		}).Should(Succeed())
	})

	It("publishes the CA bundle, and no key, in ConfigMap m2m-tokenserver-ca; restores it when deleted or edited", func() {
		st := eventuallyValid()
		Eventually(func(g Gomega) { expectPublished(g, st.ca) }).Should(Succeed())

		cm := getConfigMap(Default)
		Expect(k8s.Delete(context.Background(), cm)).To(Succeed())
		Eventually(func(g Gomega) {
			after := expectPublished(g, st.ca)
			g.Expect(after.UID).NotTo(Equal(cm.UID), "recreated")
		}).Should(Succeed())

		cm = getConfigMap(Default)
		patch := client.MergeFrom(cm.DeepCopy())
		cm.Data[tlscontroller.CACertKey] = "-----BEGIN CERTIFICATE-----\nbm90IGEgQ0E=\n-----END CERTIFICATE-----\n"
		cm.Data["extra"] = "x"
		delete(cm.Labels, authv1alpha1.LabelManagedBy)
		Expect(k8s.Patch(context.Background(), cm, patch)).To(Succeed())
		Eventually(func(g Gomega) { expectPublished(g, st.ca) }).Should(Succeed())
	})

	It("publishes the renewed CA bundle in the ConfigMap when the CA changes", func() {
		before := eventuallyValid()
		Eventually(func(g Gomega) { expectPublished(g, before.ca) }).Should(Succeed())
		Expect(k8s.Delete(context.Background(), before.ca)).To(Succeed())
		Eventually(func(g Gomega) {
			after := validState(g, managed, dnsNames, clock.Now())
			g.Expect(after.bundle[0].Equal(before.bundle[0])).To(BeFalse())
			expectPublished(g, after.ca)
		}).Should(Succeed())
	})

	It("gives the M2MClient controller the CA bundle, and nothing else of the CA Secret", func() {
		st := eventuallyValid()
		bundle, err := tlscontroller.CABundle(context.Background(), k8s, systemNamespace)
		Expect(err).NotTo(HaveOccurred())
		Expect(bundle).To(Equal(st.ca.Data[tlscontroller.CACertKey]))
		Expect(string(bundle)).NotTo(ContainSubstring("PRIVATE KEY"))
		_, err = tlscontroller.CABundle(context.Background(), k8s, "no-such-namespace")
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})
})

// direct runs a Reconciler without a manager, against namespaces of its own (<name> for the CA,
// <name>-credentials for the serving Secret) and its own clock.
type direct struct {
	ns    tlscontroller.Namespaces
	clock *clocktesting.FakeClock
	r     *tlscontroller.Reconciler
}

func newDirect(name string, opts tlscontroller.Options) *direct {
	GinkgoHelper()
	ns := tlscontroller.Namespaces{System: name, Credentials: name + "-credentials"}
	for _, n := range []string{ns.System, ns.Credentials} {
		Expect(k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(Succeed())
	}
	d := &direct{ns: ns, clock: clocktesting.NewFakeClock(t0)}
	opts.Clock = d.clock
	r, err := tlscontroller.New(k8s, nil, nil, ns, opts)
	Expect(err).NotTo(HaveOccurred())
	d.r = r
	return d
}

func (d *direct) reconcile() (reconcile.Result, error) {
	return d.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.ns.Credentials, Name: tlscontroller.ServingSecretName}})
}

func (d *direct) state() tlsState {
	GinkgoHelper()
	return validState(Default, d.ns, tlscontroller.DNSNames("m2m-tokenserver", d.ns.System, "cluster.local"), d.clock.Now())
}

var _ = Describe("Reconcile", func() {
	It("requeues exactly at the serving renewal point and writes nothing before it", func() {
		d := newDirect("tls-requeue", tlscontroller.Options{ServingValidity: 30 * time.Hour})
		res, err := d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		st := d.state()
		renewAt := st.leaf.NotBefore.Add(st.leaf.NotAfter.Sub(st.leaf.NotBefore) * 2 / 3)
		Expect(res.RequeueAfter).To(Equal(renewAt.Sub(t0)))

		d.clock.SetTime(renewAt.Add(-time.Second))
		res, err = d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(Equal(time.Second))
		again := d.state()
		Expect(again.serving.ResourceVersion).To(Equal(st.serving.ResourceVersion))
		Expect(again.ca.ResourceVersion).To(Equal(st.ca.ResourceVersion))

		d.clock.SetTime(renewAt)
		_, err = d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		Expect(d.state().leaf.SerialNumber).NotTo(Equal(st.leaf.SerialNumber))
	})

	It("renews the CA at two thirds of its life, trusts the old CA until it expires, then drops it", func() {
		d := newDirect("tls-ca-renewal", tlscontroller.Options{CAValidity: 30 * time.Hour, ServingValidity: 9 * time.Hour})
		_, err := d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		first := d.state()
		caRenewAt := first.bundle[0].NotBefore.Add(first.bundle[0].NotAfter.Sub(first.bundle[0].NotBefore) * 2 / 3)

		d.clock.SetTime(caRenewAt)
		_, err = d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		renewed := d.state()
		Expect(renewed.bundle).To(HaveLen(2), "new CA first, old CA still trusted")
		Expect(renewed.bundle[1].Equal(first.bundle[0])).To(BeTrue())
		Expect(renewed.bundle[0].Equal(first.bundle[0])).To(BeFalse())

		// Serving certificates signed by the old CA keep verifying against the new bundle.
		roots := x509.NewCertPool()
		for _, c := range renewed.bundle {
			roots.AddCert(c)
		}
		_, err = first.leaf.Verify(x509.VerifyOptions{DNSName: dnsNames[0], Roots: roots, CurrentTime: first.leaf.NotBefore.Add(time.Minute)})
		Expect(err).NotTo(HaveOccurred())

		d.clock.SetTime(first.bundle[0].NotAfter)
		res, err := d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		pruned := d.state()
		Expect(pruned.bundle).To(HaveLen(1), "the expired CA leaves the bundle")
		Expect(pruned.bundle[0].Equal(renewed.bundle[0])).To(BeTrue())
		Expect(res.RequeueAfter).To(BeNumerically(">", 0))
	})

	It("reissues when the Service name changes, under a CA renewed for the new names", func() {
		d := newDirect("tls-rename", tlscontroller.Options{})
		_, err := d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		before := d.state()
		r, err := tlscontroller.New(k8s, nil, nil, d.ns, tlscontroller.Options{ServiceName: "tokens", Clock: d.clock})
		Expect(err).NotTo(HaveOccurred())
		_, err = r.Reconcile(context.Background(), reconcile.Request{})
		Expect(err).NotTo(HaveOccurred())
		names := tlscontroller.DNSNames("tokens", d.ns.System, "cluster.local")
		after := validState(Default, d.ns, names, d.clock.Now())
		Expect(after.leaf.SerialNumber).NotTo(Equal(before.leaf.SerialNumber))
		// The old CA may only sign for the old names, so a new one signs for the new names; the
		// old CA stays trusted (it still signs nothing else) until it expires.
		Expect(after.bundle).To(HaveLen(2))
		Expect(certs.ConstrainedTo(after.bundle[0], names)).To(BeTrue())
		Expect(after.bundle[1].Equal(before.bundle[0])).To(BeTrue())
	})

	It("constrains the CA to the Service's names: nothing it signs for another host verifies", func() {
		d := newDirect("tls-constraints", tlscontroller.Options{})
		_, err := d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		st := d.state() // the served certificate verifies for every name of the Service
		names := tlscontroller.DNSNames("m2m-tokenserver", d.ns.System, "cluster.local")
		Expect(st.bundle[0].PermittedDNSDomainsCritical).To(BeTrue())
		Expect(st.bundle[0].PermittedDNSDomains).To(ConsistOf(names))
		Expect(st.bundle[0].ExcludedIPRanges).To(HaveLen(2), "every IPv4 and IPv6 address")
		ca, err := certs.ParseKeyPair(st.ca.Data[tlscontroller.CACertKey], st.ca.Data[tlscontroller.CAKeyKey])
		Expect(err).NotTo(HaveOccurred())
		for _, host := range []string{"evil.example.com", "kubernetes.default.svc", "m2m-tokenserver.tenant.svc"} {
			// What someone holding the CA key could mint.
			forged, err := certs.NewServing(ca, []string{host}, d.clock.Now(), time.Hour)
			Expect(err).NotTo(HaveOccurred())
			err = certs.VerifyServing(forged.Cert, st.bundle, []string{host}, d.clock.Now())
			var invalid x509.CertificateInvalidError
			Expect(errors.As(err, &invalid)).To(BeTrue(), "%s: %v", host, err)
			Expect(invalid.Reason).To(Equal(x509.CANotAuthorizedForThisName), host)
		}
	})

	It("renews a CA issued without name constraints, keeping it trusted until it expires", func() {
		d := newDirect("tls-unconstrained", tlscontroller.Options{})
		// A CA Secret as a release before name constraints wrote it, with its serving Secret.
		old, err := certs.NewCA("m2m-operator token server CA", t0, certs.DefaultCAValidity)
		Expect(err).NotTo(HaveOccurred())
		names := tlscontroller.DNSNames("m2m-tokenserver", d.ns.System, "cluster.local")
		leaf, err := certs.NewServing(old, names, t0, certs.DefaultServingValidity)
		Expect(err).NotTo(HaveOccurred())
		labels := map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue}
		Expect(k8s.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: d.ns.System, Name: tlscontroller.CASecretName, Labels: labels},
			Data:       map[string][]byte{tlscontroller.CACertKey: old.CertPEM, tlscontroller.CAKeyKey: old.KeyPEM},
		})).To(Succeed())
		Expect(k8s.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: d.ns.Credentials, Name: tlscontroller.ServingSecretName, Labels: labels},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM, tlscontroller.CACertKey: old.CertPEM},
		})).To(Succeed())

		_, err = d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		st := d.state()
		Expect(st.bundle).To(HaveLen(2), "the new CA first, the old one still trusted")
		Expect(certs.ConstrainedTo(st.bundle[0], names)).To(BeTrue())
		Expect(st.bundle[1].Equal(old.Cert)).To(BeTrue())
		Expect(st.leaf.Equal(leaf.Cert)).To(BeTrue(), "the served certificate stays until its own renewal")
		Expect(st.serving.Data[tlscontroller.CACertKey]).To(Equal(st.ca.Data[tlscontroller.CACertKey]))

		// Once renewed, the constrained CA is kept.
		_, err = d.reconcile()
		Expect(err).NotTo(HaveOccurred())
		Expect(d.state().ca.ResourceVersion).To(Equal(st.ca.ResourceVersion))
	})

	It("leaves a serving Secret of another type alone and does not retry", func() {
		d := newDirect("tls-wrong-type", tlscontroller.Options{})
		Expect(k8s.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: d.ns.Credentials, Name: tlscontroller.ServingSecretName},
			StringData: map[string]string{"hello": "world"},
		})).To(Succeed())
		_, err := d.reconcile()
		Expect(err).To(HaveOccurred())
		Expect(errorsIsTerminal(err)).To(BeTrue())
		s := getSecret(Default, d.ns.Credentials, tlscontroller.ServingSecretName)
		Expect(s.Data).To(HaveKey("hello"))
	})

	It("refuses options that would cut serving certificates short", func() {
		_, err := tlscontroller.New(k8s, nil, nil, tlscontroller.Namespaces{System: "x", Credentials: "y"}, tlscontroller.Options{CAValidity: 24 * time.Hour, ServingValidity: 12 * time.Hour})
		Expect(err).To(HaveOccurred())
		_, err = tlscontroller.New(k8s, nil, nil, tlscontroller.Namespaces{Credentials: "y"}, tlscontroller.Options{})
		Expect(err).To(HaveOccurred())
		_, err = tlscontroller.New(k8s, nil, nil, tlscontroller.Namespaces{System: "x"}, tlscontroller.Options{})
		Expect(err).To(HaveOccurred())
	})
})

var _ = It("names the Service as cluster workloads reach it", func() {
	Expect(tlscontroller.DNSNames("m2m-tokenserver", "m2m-system", "cluster.local")).To(Equal(dnsNames))
})

func errorsIsTerminal(err error) bool {
	return errors.Is(err, reconcile.TerminalError(nil))
}
