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

package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// Signer makes the proofs of one key: the client side of RFC 9449 §4. It is safe for
// concurrent use.
type Signer struct {
	signer jose.Signer
	jkt    string
}

// GenerateKey returns a fresh ECDSA P-256 key, the default proof key (ES256).
func GenerateKey() (crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dpop: generating a P-256 key: %w", err)
	}
	return k, nil
}

// NewSigner returns the Signer of key: an ECDSA key (ES256, ES384 or ES512 by curve), an
// Ed25519 key (EdDSA) or an RSA key of at least 2048 bits (PS256).
func NewSigner(key crypto.Signer) (*Signer, error) {
	alg, err := algorithmOf(key)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("dpop: preparing the signer: %w", err)
	}
	jkt, err := Thumbprint(&jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return &Signer{signer: s, jkt: jkt}, nil
}

func algorithmOf(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return jose.PS256, nil
		}
	}
	return "", errors.New("dpop: unsupported proof key (want ECDSA P-256/384/521, Ed25519 or RSA >= 2048 bits)")
}

// Thumbprint returns the JWK SHA-256 thumbprint of the key: the cnf.jkt of the tokens bound to it.
func (s *Signer) Thumbprint() string { return s.jkt }

// Proof signs a proof for one request: method and URL (its query and fragment are left out of
// htu, §4.2), the access token it accompanies (ath; empty at the token endpoint) and the
// server's nonce (empty when none was asked for).
func (s *Signer) Proof(method, rawURL, accessToken, nonce string, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("dpop: parsing the request URL: %w", err)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"htm": method,
		"htu": u.String(),
		"iat": now.Unix(),
	}
	if accessToken != "" {
		c["ath"] = TokenHash(accessToken)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("dpop: encoding the proof: %w", err)
	}
	jw, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: signing the proof: %w", err)
	}
	return jw.CompactSerialize()
}
