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

package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

var (
	t0    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	names = []string{"m2m-tokenserver", "m2m-tokenserver.m2m-system", "m2m-tokenserver.m2m-system.svc", "m2m-tokenserver.m2m-system.svc.cluster.local"}
)

func mustCA(t *testing.T) *certs.KeyPair {
	t.Helper()
	ca, err := certs.NewCA("m2m-operator CA", t0, certs.DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustServing(t *testing.T, ca *certs.KeyPair, validity time.Duration) *certs.KeyPair {
	t.Helper()
	s, err := certs.NewServing(ca, names, t0, validity)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewCA(t *testing.T) {
	ca := mustCA(t)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("not a path-length-0 CA: IsCA=%v MaxPathLen=%d", c.IsCA, c.MaxPathLen)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA cannot sign certificates")
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("CA key is not P-256: %T", c.PublicKey)
	}
	if want := t0.Add(-certs.Backdate); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := t0.Add(certs.DefaultCAValidity); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if _, err := certs.NewCA("", t0, time.Hour); err == nil {
		t.Error("a CA without a name was accepted")
	}
	if _, err := certs.NewCA("x", t0, 0); err == nil {
		t.Error("a CA without validity was accepted")
	}
}

func TestNewServingVerifiesForEveryName(t *testing.T) {
	ca := mustCA(t)
	s := mustServing(t, ca, certs.DefaultServingValidity)
	if err := certs.VerifyServing(s.Cert, []*x509.Certificate{ca.Cert}, names, t0); err != nil {
		t.Fatal(err)
	}
	if s.Cert.IsCA {
		t.Error("serving certificate is a CA")
	}
	if len(s.Cert.ExtKeyUsage) != 1 || s.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v, want serverAuth only", s.Cert.ExtKeyUsage)
	}
	if s.Cert.Subject.CommonName != names[0] {
		t.Errorf("CN = %q", s.Cert.Subject.CommonName)
	}
	if err := certs.VerifyServing(s.Cert, []*x509.Certificate{ca.Cert}, []string{"evil.example"}, t0); err == nil {
		t.Error("verified for a name it does not hold")
	}
	if err := certs.VerifyServing(s.Cert, []*x509.Certificate{ca.Cert}, names, t0.Add(certs.DefaultServingValidity+time.Second)); err == nil {
		t.Error("verified after expiry")
	}
	other := mustCA(t)
	if err := certs.VerifyServing(s.Cert, []*x509.Certificate{other.Cert}, names, t0); err == nil {
		t.Error("verified against a foreign CA")
	}
}

// leafFor signs a server certificate for dnsNames and ips with ca, bypassing NewServing: what
// someone holding the CA key could mint.
func leafFor(t *testing.T, ca *certs.KeyPair, dnsNames []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     t0.Add(time.Hour),
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConstrainedCASignsOnlyForItsNames: the token server's CA is trusted by every client for
// its names only. A certificate it signs for another host, or for any IP address, fails
// verification with a name-constraint error; the serving certificate verifies for every name.
func TestConstrainedCASignsOnlyForItsNames(t *testing.T) {
	ca, err := certs.NewConstrainedCA("m2m-operator CA", names, t0, certs.DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.PermittedDNSDomainsCritical {
		t.Error("the name constraints are not critical")
	}
	if !certs.ConstrainedTo(ca.Cert, names) {
		t.Errorf("ConstrainedTo(%v) = false for the CA issued for them", names)
	}
	serving := mustServing(t, ca, certs.DefaultServingValidity)
	if err := certs.VerifyServing(serving.Cert, []*x509.Certificate{ca.Cert}, names, t0); err != nil {
		t.Fatalf("the serving certificate does not verify: %v", err)
	}
	for _, tc := range []struct {
		host string
		dns  []string
		ips  []net.IP
	}{
		{"evil.example.com", []string{"evil.example.com"}, nil},
		{"kubernetes.default.svc", []string{"kubernetes.default.svc"}, nil},
		{"m2m-tokenserver.other-ns.svc", []string{"m2m-tokenserver.other-ns.svc"}, nil},
		{"m2m-tokenserver", []string{"m2m-tokenserver", "evil.example.com"}, nil},
		{"127.0.0.1", nil, []net.IP{net.IPv4(127, 0, 0, 1)}},
		{"::1", nil, []net.IP{net.IPv6loopback}},
		{"10.96.0.1", []string{"m2m-tokenserver"}, []net.IP{net.IPv4(10, 96, 0, 1)}},
	} {
		leaf := leafFor(t, ca, tc.dns, tc.ips)
		err := certs.VerifyServing(leaf, []*x509.Certificate{ca.Cert}, []string{tc.host}, t0)
		var invalid x509.CertificateInvalidError
		if !errors.As(err, &invalid) || invalid.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("a certificate for %v %v signed by the CA: verify for %s = %v, want a name-constraint error", tc.dns, tc.ips, tc.host, err)
		}
	}
	// The same certificates from an unconstrained CA do verify: the constraints are what refuse.
	open := mustCA(t)
	if err := certs.VerifyServing(leafFor(t, open, []string{"evil.example.com"}, nil), []*x509.Certificate{open.Cert}, []string{"evil.example.com"}, t0); err != nil {
		t.Errorf("an unconstrained CA's certificate does not verify: %v", err)
	}
	if _, err := certs.NewConstrainedCA("x", nil, t0, time.Hour); err == nil {
		t.Error("a constrained CA without names was accepted")
	}
}

// TestConstrainedTo tells a CA constrained to these names from any other, so that a CA issued
// before constraints existed, or for another Service name, is renewed.
func TestConstrainedTo(t *testing.T) {
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	other, err := certs.NewConstrainedCA("x", []string{"tokens", "tokens.m2m-system"}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	constrained, err := certs.NewConstrainedCA("x", names, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		ca    *x509.Certificate
		names []string
		want  bool
	}{
		"same names":     {constrained.Cert, names, true},
		"other order":    {constrained.Cert, reversed, true},
		"unconstrained":  {mustCA(t).Cert, names, false},
		"other names":    {other.Cert, names, false},
		"one name fewer": {constrained.Cert, names[1:], false},
		"one name more":  {constrained.Cert, append(slices.Clone(names), "evil.example.com"), false},
	} {
		if got := certs.ConstrainedTo(tc.ca, tc.names); got != tc.want {
			t.Errorf("%s: ConstrainedTo = %v, want %v", name, got, tc.want)
		}
	}
}

func TestNewServingNeverOutlivesTheCA(t *testing.T) {
	ca, err := certs.NewCA("short", t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := mustServing(t, ca, certs.DefaultServingValidity)
	if !s.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("serving NotAfter %v, CA NotAfter %v", s.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestNewServingRefusesBadInput(t *testing.T) {
	ca := mustCA(t)
	leaf := mustServing(t, ca, time.Hour)
	cases := map[string]func() error{
		"nil CA":      func() error { _, err := certs.NewServing(nil, names, t0, time.Hour); return err },
		"non-CA":      func() error { _, err := certs.NewServing(leaf, names, t0, time.Hour); return err },
		"no names":    func() error { _, err := certs.NewServing(ca, nil, t0, time.Hour); return err },
		"no validity": func() error { _, err := certs.NewServing(ca, names, t0, 0); return err },
	}
	for name, f := range cases {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca := mustCA(t)
	pair, err := certs.ParseKeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pair.Cert.Equal(ca.Cert) || !pair.Key.Public().(*ecdsa.PublicKey).Equal(ca.Key.Public()) {
		t.Error("round trip changed the pair")
	}
	if !strings.HasPrefix(string(ca.KeyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Error("key is not PKCS#8 PEM")
	}
	// SEC 1 keys, as written by other tools, are accepted too.
	der, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		t.Errorf("SEC 1 key refused: %v", err)
	}
}

func TestParseCertificatesBundle(t *testing.T) {
	a, b := mustCA(t), mustCA(t)
	bundle := append(append([]byte{}, a.CertPEM...), b.CertPEM...)
	got, err := certs.ParseCertificates(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(a.Cert) || !got[1].Equal(b.Cert) {
		t.Fatalf("bundle parsed as %d certificates, out of order or wrong", len(got))
	}
	if !bytes.Equal(certs.EncodeCertificates(got...), bundle) {
		t.Error("re-encoding the bundle changed it")
	}
	if _, err := certs.ParseCertificate(bundle); err == nil {
		t.Error("ParseCertificate accepted two certificates")
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	ca := mustCA(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})
	other := mustCA(t)
	for name, f := range map[string]func() error{
		"empty bundle":     func() error { _, err := certs.ParseCertificates(nil); return err },
		"not PEM":          func() error { _, err := certs.ParseCertificates([]byte("hello")); return err },
		"key in a bundle":  func() error { _, err := certs.ParseCertificates(append(ca.CertPEM, ca.KeyPEM...)); return err },
		"trailing garbage": func() error { _, err := certs.ParseCertificates(append(ca.CertPEM, "junk"...)); return err },
		"corrupt DER": func() error {
			_, err := certs.ParseCertificates(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
			return err
		},
		"empty key":      func() error { _, err := certs.ParseKey(nil); return err },
		"cert as key":    func() error { _, err := certs.ParseKey(ca.CertPEM); return err },
		"RSA key":        func() error { _, err := certs.ParseKey(rsaPEM); return err },
		"mismatched key": func() error { _, err := certs.ParseKeyPair(ca.CertPEM, other.KeyPEM); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: error quotes key material", name)
		}
	}
}

func TestNeedsRenewal(t *testing.T) {
	ca := mustCA(t)
	s := mustServing(t, ca, 90*24*time.Hour)
	before := certs.Lifetime(s.Cert) / 3
	at := certs.RenewalTime(s.Cert, before)
	if want := s.Cert.NotAfter.Add(-before); !at.Equal(want) {
		t.Fatalf("RenewalTime = %v, want %v", at, want)
	}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{t0, false},
		{at.Add(-time.Nanosecond), false},
		{at, true},
		{s.Cert.NotAfter.Add(time.Hour), true},
	} {
		if got := certs.NeedsRenewal(s.Cert, tc.now, before); got != tc.want {
			t.Errorf("NeedsRenewal at %v = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestReloaderSwapsWithoutRestart(t *testing.T) {
	ca := mustCA(t)
	r := &certs.Reloader{}
	if r.Loaded() || r.Leaf() != nil {
		t.Fatal("zero Reloader claims a certificate")
	}
	if _, err := r.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate without a certificate succeeded")
	}
	first := mustServing(t, ca, time.Hour)
	if err := r.Update(first.CertPEM, first.KeyPEM); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || !got.Leaf.Equal(first.Cert) {
		t.Fatalf("GetCertificate = %v, %v", got, err)
	}
	// A broken update keeps the certificate in use.
	other := mustServing(t, ca, time.Hour)
	if err := r.Update(first.CertPEM, other.KeyPEM); err == nil {
		t.Fatal("a mismatched pair was accepted")
	}
	if !r.Leaf().Equal(first.Cert) {
		t.Fatal("a failed update replaced the certificate")
	}
	if err := r.Update(other.CertPEM, other.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if !r.Leaf().Equal(other.Cert) {
		t.Fatal("update did not swap the certificate")
	}
}

// TestReloaderServesTLS runs a real TLS handshake against a listener whose certificate is swapped
// between two connections.
func TestReloaderServesTLS(t *testing.T) {
	ca := mustCA(t)
	r := &certs.Reloader{}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	handshake := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: names[2], MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	for i := 0; i < 2; i++ {
		// The handshake runs at the real time: issue the certificates now.
		s, err := certs.NewServing(ca, names, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Update(s.CertPEM, s.KeyPEM); err != nil {
			t.Fatal(err)
		}
		if got := handshake(); !got.Equal(s.Cert) {
			t.Fatalf("handshake %d served serial %v, want %v", i, got.SerialNumber, s.Cert.SerialNumber)
		}
	}
}
