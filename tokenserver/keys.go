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
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// signFunc appends the raw JWS signature of input to dst.
type signFunc func(dst, input []byte) ([]byte, error)

// signer signs tokens with one key. Its JOSE header is encoded once.
type signer struct {
	kid string
	alg string
	// header is base64url({"alg":…,"kid":…,"typ":"at+jwt"}) followed by '.'.
	header []byte
	sign   signFunc
}

// keyInfo describes one loaded key for metrics.
type keyInfo struct {
	kid       string
	state     signingkey.State
	createdAt time.Time
}

// keySet is one immutable version of the loaded keys: the active signer, and the JWKS bytes and
// ETag computed once per change rather than per request.
type keySet struct {
	active *signer
	jwks   []byte
	etag   string
	keys   []keyInfo
	// public holds every published key by kid, for introspection's verifier.
	public map[string]*jose.JSONWebKey
	// algs are the algorithms of the published keys, the active key's first, each once.
	algs []string
	// metadata is the metadata document naming algs (set by withMetadata).
	metadata []byte
	// nonceKeys are the DPoP nonce keys derived from the published keys, the active key's
	// first (nonceKey); nonces are what Server.SetKeys builds from them.
	nonceKeys [][]byte
	nonces    *dpop.Nonces
}

// nonceKeyLabel separates the DPoP nonce key from every other use of a signing key.
const nonceKeyLabel = "m2m-operator DPoP nonce key v1"

// nonceKey derives the DPoP nonce MAC key of a signing key: HMAC-SHA256 keyed with the private
// key's PKCS #8 encoding over a fixed label. Every replica loads the same signing-key Secret,
// so every replica derives the same keys without a secret of their own; the label makes the
// derived key useless for anything else, and a MAC key reveals nothing of the private key.
// A key published as next is known to every replica before it becomes active, so a nonce
// made with it after a rotation is accepted everywhere.
func nonceKey(priv crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding the signing key: %w", err)
	}
	m := hmac.New(sha256.New, der)
	m.Write([]byte(nonceKeyLabel))
	return m.Sum(nil), nil
}

// withMetadata builds the key set's metadata document for the issuer.
func (ks *keySet) withMetadata(issuer string) (*keySet, error) {
	md, err := buildMetadata(issuer, ks.algs)
	if err != nil {
		return nil, err
	}
	ks.metadata = md
	return ks, nil
}

// Key implements verify.KeySource over one key set version.
func (ks *keySet) Key(kid string) (*jose.JSONWebKey, bool) {
	k, ok := ks.public[kid]
	return k, ok
}

// reusePublic keeps prev's *jose.JSONWebKey for every kid both sets publish (a kid is the key's
// thumbprint, so the key is the same), which keeps the verifier's token cache valid across
// changes of the signing-key Secret.
func (ks *keySet) reusePublic(prev *keySet) {
	if prev == nil {
		return
	}
	for kid := range ks.public {
		if k, ok := prev.public[kid]; ok {
			ks.public[kid] = k
		}
	}
}

// emptyKeySet publishes no key and cannot sign.
func emptyKeySet() *keySet {
	ks, _ := buildKeySet(&signingkey.Set{Version: signingkey.FormatVersion})
	return ks
}

// buildKeySet parses every key of a signing-key document: the active one signs; next, active and
// retired ones are published.
func buildKeySet(set *signingkey.Set) (*keySet, error) {
	ks := &keySet{public: make(map[string]*jose.JSONWebKey, len(set.Keys))}
	jwks := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(set.Keys))}
	for i := range set.Keys {
		k := &set.Keys[i]
		priv, err := k.PrivateKey()
		if err != nil {
			return nil, err
		}
		pub := jose.JSONWebKey{Key: priv.Public(), KeyID: k.KID, Algorithm: k.Algorithm, Use: "sig"}
		jwks.Keys = append(jwks.Keys, pub)
		ks.public[k.KID] = &pub
		ks.keys = append(ks.keys, keyInfo{kid: k.KID, state: k.State, createdAt: k.CreatedAt})
		if !slices.Contains(ks.algs, k.Algorithm) {
			ks.algs = append(ks.algs, k.Algorithm)
		}
		nk, err := nonceKey(priv)
		if err != nil {
			return nil, err
		}
		if k.State != signingkey.StateActive {
			ks.nonceKeys = append(ks.nonceKeys, nk)
			continue
		}
		ks.nonceKeys = slices.Insert(ks.nonceKeys, 0, nk)
		if ks.active, err = newSigner(k.KID, k.Algorithm, priv); err != nil {
			return nil, err
		}
	}
	if ks.active != nil {
		i := slices.Index(ks.algs, ks.active.alg)
		ks.algs = slices.Insert(slices.Delete(ks.algs, i, i+1), 0, ks.active.alg)
	}
	b, err := json.Marshal(jwks)
	if err != nil {
		return nil, fmt.Errorf("encoding the JWKS: %w", err)
	}
	sum := sha256.Sum256(b)
	ks.jwks = b
	ks.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	return ks, nil
}

// newSigner prepares the header and the signature function of a key.
func newSigner(kid, alg string, priv crypto.Signer) (*signer, error) {
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, kid, "at+jwt"})
	if err != nil {
		return nil, fmt.Errorf("encoding the JOSE header: %w", err)
	}
	s := &signer{kid: kid, alg: alg}
	s.header = append(base64.RawURLEncoding.AppendEncode(nil, hdr), '.')
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		s.sign = signES256(k)
	case *rsa.PrivateKey:
		s.sign = signRS256(k)
	case ed25519.PrivateKey:
		s.sign = signEdDSA(k)
	default:
		return nil, fmt.Errorf("signing key %s: unsupported key type %T", kid, priv)
	}
	return s, nil
}

func signES256(k *ecdsa.PrivateKey) signFunc {
	return func(dst, input []byte) ([]byte, error) {
		digest := sha256.Sum256(input)
		der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			return nil, fmt.Errorf("ES256 signature: %w", err)
		}
		return appendRawECDSA(dst, der, 32)
	}
}

func signRS256(k *rsa.PrivateKey) signFunc {
	return func(dst, input []byte) ([]byte, error) {
		digest := sha256.Sum256(input)
		sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
		if err != nil {
			return nil, fmt.Errorf("RS256 signature: %w", err)
		}
		return append(dst, sig...), nil
	}
}

func signEdDSA(k ed25519.PrivateKey) signFunc {
	return func(dst, input []byte) ([]byte, error) {
		return append(dst, ed25519.Sign(k, input)...), nil
	}
}

var errBadECDSASignature = errors.New("ECDSA signature is not DER SEQUENCE{INTEGER, INTEGER}")

// appendRawECDSA converts an ASN.1 DER ECDSA signature into the JWS form (RFC 7518 §3.4):
// R and S, each left-padded to size bytes.
func appendRawECDSA(dst, der []byte, size int) ([]byte, error) {
	if len(der) < 2 || der[0] != 0x30 || der[1]&0x80 != 0 || int(der[1]) != len(der)-2 {
		return nil, errBadECDSASignature
	}
	r, rest, ok := derInteger(der[2:])
	if !ok {
		return nil, errBadECDSASignature
	}
	s, rest, ok := derInteger(rest)
	if !ok || len(rest) != 0 || len(r) > size || len(s) > size {
		return nil, errBadECDSASignature
	}
	for _, v := range [][]byte{r, s} {
		for i := len(v); i < size; i++ {
			dst = append(dst, 0)
		}
		dst = append(dst, v...)
	}
	return dst, nil
}

// derInteger reads one short-form DER INTEGER and returns its magnitude without leading zeros.
func derInteger(b []byte) (v, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != 0x02 || b[1]&0x80 != 0 {
		return nil, nil, false
	}
	n := int(b[1])
	if n == 0 || len(b) < 2+n {
		return nil, nil, false
	}
	v = b[2 : 2+n]
	for len(v) > 0 && v[0] == 0 {
		v = v[1:]
	}
	return v, b[2+n:], true
}
