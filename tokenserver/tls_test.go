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

package tokenserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

const tlsSecretName = "tokenserver-tls"

// servingSecret is a kubernetes.io/tls Secret for "localhost", signed by ca.
func servingSecret(t *testing.T, ns string, ca *certs.KeyPair) (*corev1.Secret, *x509.Certificate) {
	t.Helper()
	kp, err := certs.NewServing(ca, []string{"localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tlsSecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: kp.CertPEM, corev1.TLSPrivateKeyKey: kp.KeyPEM},
	}, kp.Cert
}

// servedSerial connects over TLS, verifying the chain against ca for "localhost", and returns
// the serial of the leaf the server presents.
func servedSerial(addr string, ca *x509.Certificate) (string, error) {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + JWKSPath)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
}

// TestTLSServingAndRenewal serves HTTPS from the TLS Secret and picks up a renewed
// certificate without a restart.
func TestTLSServingAndRenewal(t *testing.T) {
	_, k8s := apiServer(t)
	ca, err := certs.NewCA("m2m test CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var first *x509.Certificate
	var logMu sync.Mutex
	var logs []string
	ls := startLiveServer(t, func(o *Options) {
		o.Logger = funcr.New(func(prefix, args string) {
			logMu.Lock()
			defer logMu.Unlock()
			logs = append(logs, prefix+" "+args)
		}, funcr.Options{})
		o.TLSSecret = tlsSecretName
		o.Issuer = strings.Replace(o.Issuer, "http://", "https://", 1)
		var sec *corev1.Secret
		sec, first = servingSecret(t, o.Namespace, ca)
		if err := k8s.Create(context.Background(), sec); err != nil {
			t.Fatal(err)
		}
	})
	g := NewWithT(t)
	g.Expect(ls.tls.Loaded()).To(BeTrue(), "ready implies a certificate")
	addr := strings.TrimPrefix(ls.url, "http://")
	g.Expect(servedSerial(addr, ca.Cert)).To(Equal(first.SerialNumber.String()))

	// Plain HTTP is not served.
	if resp, err := http.Get(ls.url + JWKSPath); err == nil {
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP to a TLS port")
	}
	// net/http reports that handshake on its error log, which goes to the structured logger.
	g.Eventually(func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Join(logs, "\n")
	}).Should(MatchRegexp(`http.*"HTTP server error".*TLS handshake error`))

	renewed, second := servingSecret(t, ls.ns, ca)
	cur := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(renewed), cur)).To(Succeed())
	cur.Data = renewed.Data
	g.Expect(k8s.Update(context.Background(), cur)).To(Succeed())
	g.Eventually(func() (string, error) { return servedSerial(addr, ca.Cert) }).
		WithTimeout(5 * time.Second).Should(Equal(second.SerialNumber.String()))

	// A broken update keeps the certificate loaded before.
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(renewed), cur)).To(Succeed())
	cur.Data = map[string][]byte{corev1.TLSCertKey: []byte("broken"), corev1.TLSPrivateKeyKey: renewed.Data[corev1.TLSPrivateKeyKey]}
	g.Expect(k8s.Update(context.Background(), cur)).To(Succeed())
	g.Consistently(func() (string, error) { return servedSerial(addr, ca.Cert) }).
		WithTimeout(time.Second).Should(Equal(second.SerialNumber.String()))
}

// TestTLSNotReadyWithoutCertificate: with --tls-secret, readiness waits for the certificate.
func TestTLSNotReadyWithoutCertificate(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.TLSSecret = tlsSecretName })
	if ts.Ready() || !strings.Contains(ts.notReady(), "TLS") {
		t.Fatalf("ready without a TLS certificate: %q", ts.notReady())
	}
	ca, err := certs.NewCA("m2m test CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := servingSecret(t, "m2m-system", ca)
	ts.onTLS(sec)
	if !ts.Ready() {
		t.Fatalf("not ready with a certificate: %q", ts.notReady())
	}
}
