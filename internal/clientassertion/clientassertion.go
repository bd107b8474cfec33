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

// Package clientassertion signs RFC 7523 client assertions (private_key_jwt) with a PKCS#8
// PEM private key, for the tools that act as a PrivateKeyJWT client (`kubectl m2m token
// --key-file`).
package clientassertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// SignFile signs an assertion with the PKCS#8 PEM key in path: iss = sub = the client id, aud
// = the token server's issuer, iat = nbf = now, exp = now + ttl, a random jti (the token server
// refuses a replayed one), kid = the key's RFC 7638 thumbprint, alg by the key's type.
func SignFile(path, clientID, aud string, now time.Time, ttl time.Duration) (string, error) {
	key, alg, err := LoadKey(path)
	if err != nil {
		return "", err
	}
	kid, err := signingkey.Thumbprint(key.Public())
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("creating the signer: %w", err)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("generating jti: %w", err)
	}
	claims := jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(ttl)), ID: base64.RawURLEncoding.EncodeToString(jti),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing the assertion: %w", err)
	}
	return s, nil
}

// LoadKey reads a PKCS#8 PEM private key and picks its JWS algorithm: ES256 (EC P-256), EdDSA
// (Ed25519) or RS256 (RSA).
func LoadKey(path string) (crypto.Signer, jose.SignatureAlgorithm, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading the private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, "", fmt.Errorf("%s holds no PEM PRIVATE KEY (PKCS#8) block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("parsing %s: %w", path, err)
	}
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve.Params().Name != "P-256" {
			return nil, "", fmt.Errorf("%s: EC key on %s; want P-256", path, k.Curve.Params().Name)
		}
		return k, jose.ES256, nil
	case ed25519.PrivateKey:
		return k, jose.EdDSA, nil
	case *rsa.PrivateKey:
		return k, jose.RS256, nil
	}
	return nil, "", fmt.Errorf("%s: unsupported key type %T (want EC P-256, Ed25519 or RSA)", path, parsed)
}
