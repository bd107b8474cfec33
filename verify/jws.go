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

package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"

	"github.com/m2m-dev/m2m-operator/internal/b64url"
	"github.com/m2m-dev/m2m-operator/internal/jwshdr"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// maxKeyIDLen bounds "kid": a longer value is no key of ours, and refusing it early keeps
// hostile values out of the key lookup and of error messages.
const maxKeyIDLen = 256

// supportedAlgorithms are the asymmetric JWS algorithms this package can verify. "none" and
// the HMAC family are deliberately absent: a resource server holds no shared secret.
var supportedAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// defaultAlgorithms are what the m2m token server can sign with (ES256 default; RS256 and
// EdDSA selectable), plus PS256, which fits the same RSA keys.
var defaultAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// header is the JOSE header as every JWS parser of the module reads it.
type header = jwshdr.Header

// compact is a token split into its three JWS compact parts.
type compact struct {
	header, payload, signature string
}

// splitCompact checks the token's shape before any decoding: exactly three base64url parts
// (RFC 7515 §7.1), each in canonical encoding so that a token has exactly one spelling.
func splitCompact(token string) (compact, error) {
	if token == "" {
		return compact{}, fail(ErrMalformed, "empty token")
	}
	if token[0] == '{' {
		return compact{}, fail(ErrMalformed, "JWS JSON serialization is not accepted")
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return compact{}, fail(ErrMalformed, "not a JWS compact serialization")
	}
	if strings.Count(s, ".") == 2 {
		return compact{}, fail(ErrMalformed, "JWE is not accepted")
	}
	if strings.IndexByte(s, '.') >= 0 {
		return compact{}, fail(ErrMalformed, "not a JWS compact serialization")
	}
	for _, part := range [...]string{h, p, s} {
		if !b64url.Canonical(part) {
			return compact{}, fail(ErrMalformed, "part is not canonical base64url")
		}
	}
	return compact{header: h, payload: p, signature: s}, nil
}

// parseHeader decodes the protected header and applies every check that needs no key.
func (v *Verifier) parseHeader(encoded string) (*header, error) {
	raw, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return nil, wrap(ErrMalformed, "header is not base64url", err)
	}
	h := &header{}
	// go-jose's decoder: case-sensitive member names, duplicates refused.
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, wrap(ErrMalformed, "header is not a JSON object", err)
	}
	if err := checkHeaderParams(h); err != nil {
		return nil, err
	}
	if !v.algAllowed(h.Alg) {
		return nil, failf(ErrAlgorithm, "%s is not allowed", excerpt(h.Alg))
	}
	if !isAccessTokenType(h.Typ) {
		return nil, failf(ErrType, "got %s", excerpt(h.Typ))
	}
	if h.Kid == "" || len(h.Kid) > maxKeyIDLen {
		return nil, fail(ErrUnknownKey, "missing or oversized \"kid\"")
	}
	return h, nil
}

// checkHeaderParams refuses header parameters that would let the token choose its own key or
// change how it must be processed. They are refused rather than ignored: our issuer never
// sends them, so their presence means a forgery attempt or a token meant for someone else.
func checkHeaderParams(h *header) error {
	switch {
	case h.JWK != nil:
		return fail(ErrHeader, "\"jwk\" is never trusted")
	case h.JKU != nil:
		return fail(ErrHeader, "\"jku\" is never trusted")
	case h.X5U != nil:
		return fail(ErrHeader, "\"x5u\" is never trusted")
	case h.X5C != nil:
		return fail(ErrHeader, "\"x5c\" is never trusted")
	case h.Crit != nil:
		return fail(ErrHeader, "\"crit\" extensions are not supported")
	case h.B64 != nil:
		return fail(ErrHeader, "unencoded payloads (\"b64\") are not supported")
	case h.Enc != nil, h.Zip != nil:
		return fail(ErrHeader, "JWE header parameters in a JWS")
	}
	return nil
}

// isAccessTokenType implements RFC 9068 §4 step 1 and RFC 8725 §3.11: "typ" must be "at+jwt";
// media types are case-insensitive and may carry the "application/" prefix (RFC 7515 §4.1.9).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == "at+jwt" || typ == "application/at+jwt"
}

// algAllowed reports whether alg is on the verifier's allow-list.
func (v *Verifier) algAllowed(alg string) bool {
	for _, a := range v.algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// algFitsKey binds the algorithm to the key (RFC 8725 §3.1): a key verifies only the
// algorithms of its type, and only its declared "alg" when it has one. This is what stops an
// RSA or EC public key from being abused as an HMAC secret.
func algFitsKey(alg string, k *jose.JSONWebKey) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pub := publicKey(k.Key).(type) {
	case *ecdsa.PublicKey:
		return ecAlgFits(alg, pub.Curve)
	case *rsa.PublicKey:
		return rsaAlgFits(alg) && pub.N.BitLen() >= minRSABits
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

func ecAlgFits(alg string, curve elliptic.Curve) bool {
	switch alg {
	case string(jose.ES256):
		return curve == elliptic.P256()
	case string(jose.ES384):
		return curve == elliptic.P384()
	case string(jose.ES512):
		return curve == elliptic.P521()
	}
	return false
}

func rsaAlgFits(alg string) bool {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return true
	}
	return false
}

// publicKey returns the public half of k when a key source hands out private keys.
func publicKey(k any) crypto.PublicKey {
	if priv, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return priv.Public()
	}
	return k
}

// sameKey reports whether two JWKs hold the same public key and algorithm. Pointer equality is
// the fast path: the remote key set keeps a key's pointer across refreshes while it is
// unchanged.
func sameKey(a, b *jose.JSONWebKey) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Algorithm != b.Algorithm {
		return false
	}
	pa, ok := publicKey(a.Key).(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(publicKey(b.Key))
}
