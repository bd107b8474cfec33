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

package credential

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

const (
	// MaxClientKeys bounds the keys of one client's JWKS (enough for a rotation overlap).
	MaxClientKeys = 8
	// maxJWKSSize bounds a client's JWKS document.
	maxJWKSSize = 32 << 10
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
	minRSABits = 2048
)

// ClientAssertionAlgorithms are the JWS algorithms a PrivateKeyJWT client may sign its
// assertions with. HMAC and "none" are never accepted: the server holds no shared secret.
//
// "Ed25519" is the fully-specified name (RFC 9864) of what "EdDSA" names polymorphically for an
// Ed25519 key: the same signature over the same key. Current clients (openid-client,
// oauth4webapi, jose) sign with "Ed25519", older ones with "EdDSA"; an Ed25519 key verifies
// both, whichever of the two its JWK declares, and no other key type verifies either.
var ClientAssertionAlgorithms = []string{"ES256", "EdDSA", "Ed25519", "RS256", "PS256"}

// ClientKey is one public key of a PrivateKeyJWT client, with the algorithms it may verify.
type ClientKey struct {
	// KID is the key id ("" when the JWK has none).
	KID string
	// Key is *ecdsa.PublicKey (P-256), ed25519.PublicKey or *rsa.PublicKey (≥ 2048 bits).
	Key any
	// Algs are the algorithms this key verifies: its JWK "alg" if set, else every allowed
	// algorithm of its key type.
	Algs []string
}

// ParseClientJWKS parses and checks a client's JWKS (RFC 7517): 1 to MaxClientKeys public
// signing keys of the allowed types, key ids unique. It refuses private key material outright:
// a JWKS that holds a private key has leaked it and must not be copied anywhere. The error says
// what to fix, never what the document holds.
func ParseClientJWKS(doc []byte) ([]ClientKey, error) {
	if len(doc) == 0 {
		return nil, errors.New("the JWKS is empty")
	}
	if len(doc) > maxJWKSSize {
		return nil, fmt.Errorf("the JWKS is larger than %d bytes", maxJWKSSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, errors.New("the JWKS is not a JSON object with a keys array")
	}
	if len(set.Keys) == 0 || len(set.Keys) > MaxClientKeys {
		return nil, fmt.Errorf("the JWKS must hold 1 to %d keys, not %d", MaxClientKeys, len(set.Keys))
	}
	out := make([]ClientKey, 0, len(set.Keys))
	kids := map[string]bool{}
	for i, raw := range set.Keys {
		k, err := parseClientKey(raw)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if kids[k.KID] {
			return nil, fmt.Errorf("keys[%d]: the kid %q is used by another key (kids must be unique; omit kid only with a single key)", i, k.KID)
		}
		kids[k.KID] = true
		out = append(out, k)
	}
	return out, nil
}

func parseClientKey(raw json.RawMessage) (ClientKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return ClientKey{}, errors.New("not a valid JWK of type EC (P-256), OKP (Ed25519) or RSA")
	}
	if _, symmetric := jwk.Key.([]byte); symmetric {
		return ClientKey{}, errors.New("symmetric keys (kty oct) are never accepted: publish an EC P-256, Ed25519 or RSA public key")
	}
	if !jwk.IsPublic() {
		return ClientKey{}, errors.New("holds private key material: publish only the public key (and replace this key pair, it has leaked)")
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return ClientKey{}, errors.New(`use must be "sig" or absent`)
	}
	algs, err := algorithmsFor(jwk.Key)
	if err != nil {
		return ClientKey{}, err
	}
	if jwk.Algorithm != "" {
		if !slices.Contains(algs, jwk.Algorithm) {
			return ClientKey{}, fmt.Errorf("alg %q does not fit the key type or is not one of %v", jwk.Algorithm, ClientAssertionAlgorithms)
		}
		// An Ed25519 key keeps both of its algorithm's names: they are one algorithm.
		if _, ed := jwk.Key.(ed25519.PublicKey); !ed {
			algs = []string{jwk.Algorithm}
		}
	}
	return ClientKey{KID: jwk.KeyID, Key: jwk.Key, Algs: algs}, nil
}

// algorithmsFor binds algorithms to key types (RFC 8725 §3.1).
func algorithmsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("EC keys must use the P-256 curve (ES256)")
		}
		return []string{"ES256"}, nil
	case ed25519.PublicKey:
		return []string{"EdDSA", "Ed25519"}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA keys must have at least %d bits", minRSABits)
		}
		return []string{"RS256", "PS256"}, nil
	}
	return nil, errors.New("the key type must be EC P-256, OKP Ed25519 or RSA")
}

// PublicJWKS re-encodes parsed client keys as a canonical public JWKS (what the controller
// copies into the record).
func PublicJWKS(keys []ClientKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		jwk := jose.JSONWebKey{Key: k.Key, KeyID: k.KID, Use: "sig"}
		if len(k.Algs) == 1 {
			jwk.Algorithm = k.Algs[0]
		}
		set.Keys = append(set.Keys, jwk)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding the JWKS: %w", err)
	}
	return b, nil
}
