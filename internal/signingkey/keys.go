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

package signingkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Supported JWS algorithms.
const (
	// ES256 is ECDSA with P-256 and SHA-256 (the default).
	ES256 = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
	RS256 = "RS256"
	// EdDSA is Ed25519.
	EdDSA = "EdDSA"

	rsaBits = 2048
)

// SupportedAlgorithm reports whether alg is ES256, RS256 or EdDSA.
func SupportedAlgorithm(alg string) bool {
	return alg == ES256 || alg == RS256 || alg == EdDSA
}

// Generate creates a key of the given algorithm. Its kid is the RFC 7638 thumbprint of the
// public key; its state and schedule are left for the caller to fill in.
func Generate(alg string) (Key, error) {
	priv, err := newPrivateKey(alg)
	if err != nil {
		return Key{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("encoding %s private key: %w", alg, err)
	}
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return Key{}, err
	}
	return Key{
		KID:           kid,
		Algorithm:     alg,
		PrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}, nil
}

func newPrivateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating ES256 key: %w", err)
		}
		return k, nil
	case RS256:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, fmt.Errorf("generating RS256 key: %w", err)
		}
		return k, nil
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating EdDSA key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("algorithm %q is not supported (ES256, RS256, EdDSA)", alg)
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a
// public key.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("computing key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// PrivateKey parses the key's PKCS#8 PEM and checks that it fits the algorithm and the kid.
func (k *Key) PrivateKey() (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(k.PrivateKeyPEM))
	if block == nil || block.Type != "PRIVATE KEY" || len(bytesTrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("signing key %s: private key is not one PEM PRIVATE KEY block", k.KID)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: parsing PKCS#8: %w", k.KID, err)
	}
	signer, err := checkAlgorithm(parsed, k.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil {
		return nil, err
	}
	if kid != k.KID {
		return nil, fmt.Errorf("signing key %s: kid is not the thumbprint of its public key", k.KID)
	}
	return signer, nil
}

func checkAlgorithm(parsed any, alg string) (crypto.Signer, error) {
	switch key := parsed.(type) {
	case *ecdsa.PrivateKey:
		if alg == ES256 && key.Curve == elliptic.P256() {
			return key, nil
		}
	case *rsa.PrivateKey:
		if alg == RS256 && key.N.BitLen() >= rsaBits {
			return key, nil
		}
	case ed25519.PrivateKey:
		if alg == EdDSA {
			return key, nil
		}
	}
	return nil, errors.New("private key does not match its algorithm " + alg)
}

func bytesTrimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// Generator creates a new key of an algorithm; Generate is the production one, tests may inject
// a cheaper or deterministic one.
type Generator func(alg string) (Key, error)

// truncate drops sub-second precision so that times survive a JSON round trip unchanged.
func truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
