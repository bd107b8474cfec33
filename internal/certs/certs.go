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

// Package certs creates and parses the token server's TLS material: a self-signed CA, serving
// certificates it signs, their PEM encodings, and a Reloader that lets a server swap its
// certificate without a restart. Every function is pure (time comes in as an argument) so that
// callers and tests control the clock.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Default lifetimes. A long-lived CA is what clients pin (it is copied into every credential
// Secret), so it should change rarely; the serving certificate is short-lived and renewed
// automatically, which bounds the damage of a leaked serving key.
const (
	DefaultCAValidity      = 5 * 365 * 24 * time.Hour
	DefaultServingValidity = 90 * 24 * time.Hour
)

// Backdate is how far before "now" a certificate's NotBefore is set, so that a client whose clock
// is slightly behind the issuer's does not reject a certificate issued a moment ago.
const Backdate = 5 * time.Minute

// PEM block types.
const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
)

// KeyPair is a certificate with its private key, both parsed and PEM-encoded.
type KeyPair struct {
	// Cert is the parsed certificate.
	Cert *x509.Certificate
	// Key is the certificate's private key.
	Key crypto.Signer
	// CertPEM is Cert as one PEM "CERTIFICATE" block.
	CertPEM []byte
	// KeyPEM is Key as one PKCS#8 PEM "PRIVATE KEY" block.
	KeyPEM []byte
}

// NewCA creates a self-signed ECDSA P-256 CA certificate valid from now-Backdate for validity.
// Its path length is zero: it signs leaf certificates only. It carries no name constraints: it
// may sign for any name (tests use it); the token server's CA comes from NewConstrainedCA.
func NewCA(commonName string, now time.Time, validity time.Duration) (*KeyPair, error) {
	return newCA(commonName, nil, now, validity)
}

// NewConstrainedCA is NewCA with critical name constraints: the CA may sign for dnsNames (and,
// as RFC 5280 defines DNS constraints, their subdomains) and for no IP address at all, so that
// its key, if it leaked, could not mint a certificate that clients trusting it accept for any
// other host.
func NewConstrainedCA(commonName string, dnsNames []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("a name-constrained CA needs at least one permitted DNS name")
	}
	return newCA(commonName, dnsNames, now, validity)
}

func newCA(commonName string, permitted []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if commonName == "" {
		return nil, errors.New("a CA needs a common name")
	}
	if validity <= 0 {
		return nil, errors.New("a CA needs a positive validity")
	}
	tmpl, err := template(now, validity)
	if err != nil {
		return nil, err
	}
	tmpl.Subject = pkix.Name{CommonName: commonName}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	if len(permitted) > 0 {
		// Critical, so that a client that does not understand name constraints refuses the
		// chain rather than ignoring them.
		tmpl.PermittedDNSDomainsCritical = true
		tmpl.PermittedDNSDomains = slices.Clone(permitted)
		tmpl.ExcludedIPRanges = allIPs()
	}
	return sign(tmpl, nil)
}

// allIPs is every IPv4 and IPv6 address: serving certificates carry DNS names only.
func allIPs() []*net.IPNet {
	return []*net.IPNet{
		{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 8*net.IPv4len)},
		{IP: net.IPv6zero, Mask: net.CIDRMask(0, 8*net.IPv6len)},
	}
}

// ConstrainedTo reports whether ca carries exactly the name constraints NewConstrainedCA gives a
// CA for dnsNames: critical, permitting those DNS names (in any order) and nothing of any other
// type, excluding every IP address and nothing else. A CA issued before constraints existed, or
// for other names, is not.
func ConstrainedTo(ca *x509.Certificate, dnsNames []string) bool {
	if !ca.PermittedDNSDomainsCritical || !sameStrings(ca.PermittedDNSDomains, dnsNames) {
		return false
	}
	if len(ca.ExcludedDNSDomains)+len(ca.PermittedIPRanges)+len(ca.PermittedEmailAddresses)+
		len(ca.ExcludedEmailAddresses)+len(ca.PermittedURIDomains)+len(ca.ExcludedURIDomains) > 0 {
		return false
	}
	want := allIPs()
	return len(ca.ExcludedIPRanges) == len(want) && !slices.ContainsFunc(want, func(w *net.IPNet) bool {
		return !slices.ContainsFunc(ca.ExcludedIPRanges, func(got *net.IPNet) bool { return got.String() == w.String() })
	})
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// NewServing creates an ECDSA P-256 TLS server certificate for dnsNames, signed by ca, valid from
// now-Backdate for validity but never beyond the CA's own expiry (a chain is only as valid as its
// shortest link).
func NewServing(ca *KeyPair, dnsNames []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("a serving certificate needs a CA with its key")
	}
	if !ca.Cert.IsCA {
		return nil, errors.New("the signing certificate is not a CA")
	}
	if len(dnsNames) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name")
	}
	if validity <= 0 {
		return nil, errors.New("a serving certificate needs a positive validity")
	}
	tmpl, err := template(now, validity)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.Subject = pkix.Name{CommonName: dnsNames[0]}
	tmpl.DNSNames = append([]string(nil), dnsNames...)
	// ECDSA keys sign; they never encipher keys, so DigitalSignature is the only usage needed.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return sign(tmpl, ca)
}

// template returns the fields common to every certificate: a random 128-bit serial and the
// validity window.
func template(now time.Time, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:     now.Add(validity).UTC().Truncate(time.Second),
	}, nil
}

// sign creates a new P-256 key and the certificate of tmpl for it, signed by parent, or
// self-signed when parent is nil.
func sign(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a P-256 key: %w", err)
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new certificate: %w", err)
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: EncodeCertificates(cert), KeyPEM: keyPEM}, nil
}

// EncodeCertificates returns the certificates as consecutive PEM "CERTIFICATE" blocks.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// EncodeKey returns key as a PKCS#8 PEM "PRIVATE KEY" block.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseCertificates parses every PEM "CERTIFICATE" block of data, in order. Blocks of other types
// are an error (a bundle that holds a key by mistake must not be passed on); so is data with no
// certificate at all.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, errors.New("trailing data after the last PEM block")
			}
			break
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("unexpected PEM block %q in a certificate bundle", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParseCertificate parses data that must hold exactly one PEM certificate.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("expected one certificate, found %d", len(certs))
	}
	return certs[0], nil
}

// ParseKey parses one PEM private key: PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY". Only ECDSA
// keys are accepted, since that is all this package issues. Errors never quote the key.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("trailing data after the private key")
	}
	switch block.Type {
	case pemPrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the PKCS#8 private key does not parse")
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return ec, nil
	case pemECPrivateKey:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("the EC private key does not parse")
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unexpected PEM block %q for a private key", block.Type)
	}
}

// ParseKeyPair parses a PEM certificate (the first of certPEM, which may be followed by more) and
// its PEM private key, and checks that they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(certs[0].PublicKey, key.Public()) {
		return nil, errors.New("the private key does not match the certificate")
	}
	return &KeyPair{Cert: certs[0], Key: key, CertPEM: EncodeCertificates(certs[0]), KeyPEM: keyPEM}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// RenewalTime is the moment a certificate should be replaced: before ahead of its expiry.
func RenewalTime(cert *x509.Certificate, before time.Duration) time.Time {
	return cert.NotAfter.Add(-before)
}

// NeedsRenewal reports whether cert should be replaced at now: it expires within before (or has
// expired already).
func NeedsRenewal(cert *x509.Certificate, now time.Time, before time.Duration) bool {
	return !now.Before(RenewalTime(cert, before))
}

// Lifetime is the whole validity window of cert.
func Lifetime(cert *x509.Certificate) time.Duration {
	return cert.NotAfter.Sub(cert.NotBefore)
}

// VerifyServing checks that leaf is a server certificate valid at now for every one of dnsNames,
// chaining to one of roots.
func VerifyServing(leaf *x509.Certificate, roots []*x509.Certificate, dnsNames []string, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, name := range dnsNames {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     name,
			Roots:       pool,
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("verifying the certificate for %q: %w", name, err)
		}
	}
	return nil
}
