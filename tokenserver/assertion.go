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

// Client assertions (RFC 7523 §2.2): parsing and signature checks shared by private_key_jwt and
// the ServiceAccount method. Nothing here says which check failed to the client: every failure
// becomes the same 401 invalid_client.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"math"
	"math/big"
	"time"

	"github.com/go-jose/go-jose/v4/json"

	"github.com/m2m-dev/m2m-operator/internal/b64url"
	"github.com/m2m-dev/m2m-operator/internal/jwshdr"
)

const (
	// assertionLeeway tolerates clock skew on nbf and iat.
	assertionLeeway = 30 * time.Second
	// maxAssertionSize bounds a client assertion (a projected ServiceAccount token is ~1-2 KiB).
	maxAssertionSize = 8 << 10
	// maxClaimLen bounds iss, sub, jti and each audience.
	maxClaimLen = 512
	// maxAssertionAudiences bounds the aud array.
	maxAssertionAudiences = 16
)

var errBadAssertion = errors.New("malformed client assertion")

// prepareAssertion readies a client assertion for the methods: it is hashed, answered from the
// cache of a method that keeps one (a ServiceAccount token confirmed within the last minute),
// or else parsed into req.jwt. A malformed assertion is refused here, whichever method it was
// meant for. Every failure is the same invalid_client; the reason is logged and counted.
func (s *Server) prepareAssertion(req *tokenRequest, now time.Time) (*Client, *oauthError) {
	req.assertionHash = hashAssertion(req.assertion)
	for _, m := range clientAuthMethods {
		if cm, ok := m.(cachingAuthMethod); ok {
			if c := cm.cached(s, req, now); c != nil {
				return c, nil
			}
		}
	}
	a, err := parseAssertion(req.assertion)
	if err != nil {
		return nil, s.refuseAssertion(refusedMalformed, string(req.id), nil)
	}
	req.jwt = a
	return nil, nil
}

// assertion is a parsed, not yet verified, JWS compact client assertion.
type assertion struct {
	// signingInput is "header.payload" as received; sig the decoded signature.
	signingInput []byte
	sig          []byte
	alg, kid     string
	iss, sub     string
	jti          string
	aud          []string
	// exp is required; nbf and iat are 0 when absent.
	exp, nbf, iat int64
}

// assertionClaims are the claims this server reads; others are ignored.
type assertionClaims struct {
	Iss *string         `json:"iss"`
	Sub *string         `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	Iat *float64        `json:"iat"`
	JTI *string         `json:"jti"`
}

// parseAssertion splits, decodes and checks the shape of a compact JWS: three canonical
// base64url parts, a header without untrusted parameters, and claims with iss, sub, aud and exp.
func parseAssertion(raw []byte) (*assertion, error) {
	if len(raw) == 0 || len(raw) > maxAssertionSize {
		return nil, errBadAssertion
	}
	h, rest, ok1 := bytes.Cut(raw, dot)
	p, s, ok2 := bytes.Cut(rest, dot)
	if !ok1 || !ok2 || !b64url.Canonical(h) || !b64url.Canonical(p) || !b64url.Canonical(s) || len(h) == 0 || len(p) == 0 || len(s) == 0 {
		return nil, errBadAssertion
	}
	a := &assertion{signingInput: raw[:len(h)+1+len(p)]}
	var err error
	if a.sig, err = base64.RawURLEncoding.DecodeString(string(s)); err != nil {
		return nil, errBadAssertion
	}
	if err := a.parseHeader(h); err != nil {
		return nil, err
	}
	if err := a.parseClaims(p); err != nil {
		return nil, err
	}
	return a, nil
}

var dot = []byte{'.'}

func (a *assertion) parseHeader(enc []byte) error {
	b, err := base64.RawURLEncoding.DecodeString(string(enc))
	if err != nil {
		return errBadAssertion
	}
	var h jwshdr.Header
	if err := json.Unmarshal(b, &h); err != nil || h.Untrusted() || h.Alg == "" || len(h.Kid) > maxClaimLen {
		return errBadAssertion
	}
	a.alg, a.kid = h.Alg, h.Kid
	return nil
}

func (a *assertion) parseClaims(enc []byte) error {
	b, err := base64.RawURLEncoding.DecodeString(string(enc))
	if err != nil {
		return errBadAssertion
	}
	var c assertionClaims
	if err := json.Unmarshal(b, &c); err != nil {
		return errBadAssertion
	}
	if !shortString(c.Iss) || !shortString(c.Sub) || c.Exp == nil {
		return errBadAssertion
	}
	a.iss, a.sub = *c.Iss, *c.Sub
	if c.JTI != nil {
		if !shortString(c.JTI) {
			return errBadAssertion
		}
		a.jti = *c.JTI
	}
	if a.aud, err = parseAudience(c.Aud); err != nil {
		return err
	}
	var ok bool
	if a.exp, ok = numericDate(c.Exp); !ok {
		return errBadAssertion
	}
	if a.nbf, ok = numericDate(c.Nbf); !ok {
		return errBadAssertion
	}
	if a.iat, ok = numericDate(c.Iat); !ok {
		return errBadAssertion
	}
	return nil
}

func shortString(s *string) bool { return s != nil && *s != "" && len(*s) <= maxClaimLen }

// parseAudience accepts a string or a non-empty array of strings (RFC 7519 §4.1.3).
func parseAudience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errBadAssertion
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if !shortString(&one) {
			return nil, errBadAssertion
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 || len(many) > maxAssertionAudiences {
		return nil, errBadAssertion
	}
	for i := range many {
		if !shortString(&many[i]) {
			return nil, errBadAssertion
		}
	}
	return many, nil
}

// numericDate converts an optional NumericDate to whole seconds; absent is 0.
func numericDate(v *float64) (int64, bool) {
	if v == nil {
		return 0, true
	}
	f := *v
	if math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return 0, false
	}
	return int64(f), true
}

// hasAudience reports whether the assertion names any of the accepted audiences.
func (a *assertion) hasAudience(accepted ...string) bool {
	for _, got := range a.aud {
		for _, want := range accepted {
			if got == want {
				return true
			}
		}
	}
	return false
}

// verifySignature checks the signature with key under alg, which must fit the key's type
// (RFC 8725 §3.1): an RSA or EC public key can never act as an HMAC secret, because no HMAC
// algorithm is implemented at all.
func verifySignature(alg string, key any, signingInput, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return verifyECDSA(alg, k, signingInput, sig)
	case ed25519.PublicKey:
		// "Ed25519" is RFC 9864's fully-specified name of EdDSA over this key type.
		return (alg == "EdDSA" || alg == "Ed25519") && len(k) == ed25519.PublicKeySize && ed25519.Verify(k, signingInput, sig)
	case *rsa.PublicKey:
		return verifyRSA(alg, k, signingInput, sig)
	}
	return false
}

func verifyECDSA(alg string, k *ecdsa.PublicKey, input, sig []byte) bool {
	var digest []byte
	switch {
	case alg == "ES256" && k.Curve == elliptic.P256():
		d := sha256.Sum256(input)
		digest = d[:]
	case alg == "ES384" && k.Curve == elliptic.P384():
		d := sha512.Sum384(input)
		digest = d[:]
	case alg == "ES512" && k.Curve == elliptic.P521():
		d := sha512.Sum512(input)
		digest = d[:]
	default:
		return false
	}
	size := (k.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(k, digest, r, s)
}

func verifyRSA(alg string, k *rsa.PublicKey, input, sig []byte) bool {
	if k.N.BitLen() < 2048 {
		return false
	}
	d := sha256.Sum256(input)
	switch alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	case "PS256":
		return rsa.VerifyPSS(k, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return false
}

// timesRefusal: "" when not expired and not before nbf or iat (with leeway for clock skew).
func timesRefusal(a *assertion, now time.Time) refusal {
	t := now.Unix()
	skew := int64(assertionLeeway / time.Second)
	switch {
	case t >= a.exp:
		return refusedExpired
	case (a.nbf != 0 && a.nbf > t+skew) || (a.iat != 0 && a.iat > t+skew):
		return refusedNotYetValid
	}
	return ""
}

// hashAssertion is the cache key of an assertion.
func hashAssertion(raw []byte) [32]byte { return sha256.Sum256(raw) }
