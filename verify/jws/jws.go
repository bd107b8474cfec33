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

// Package jws is the JOSE layer under package verify: it parses JWS compact serializations
// (RFC 7515) from untrusted input, binds each signature algorithm to the keys that may verify
// it (RFC 8725 §3.1), checks signatures, and caches a JSON Web Key Set that is fetched again
// when a token names a key it does not hold.
//
// It is exported so that the m2m token server checks the client assertions it receives with
// the same code that resource servers run on its access tokens. Programs that verify access
// tokens want package verify, which adds the RFC 9068 rules on top.
package jws

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/go-jose/go-jose/v4/json"
)

// MaxKeyIDLen bounds a key id: ParseKeySet skips a key with a longer "kid", so a token naming
// one names no key, and callers may refuse it before any lookup.
const MaxKeyIDLen = 256

// Every error of this package matches one of these with errors.Is. Messages never contain
// the token; they may quote a short excerpt of an untrusted header value.
var (
	// ErrMalformed: not a JWS compact serialization of three canonical base64url parts with a
	// JSON object as protected header, or a serialization this package refuses (JWE, JSON).
	ErrMalformed = errors.New("malformed JWS")
	// ErrHeader: the protected header carries a parameter that is never trusted.
	ErrHeader = errors.New("forbidden JWS header parameter")
	// ErrAlgorithm: the algorithm does not fit the key (see Fits).
	ErrAlgorithm = errors.New("algorithm does not fit the key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid JWS signature")
)

// jwsError is an error of kind (one of the sentinels above) with what exactly failed.
type jwsError struct {
	kind   error
	detail string
}

func (e *jwsError) Error() string        { return "jws: " + e.detail }
func (e *jwsError) Is(target error) bool { return target == e.kind }

func fail(kind error, detail string) error { return &jwsError{kind: kind, detail: detail} }

// Header is what a verifier reads of the protected header.
type Header struct {
	// Algorithm is "alg"; "" when absent.
	Algorithm string
	// KeyID is "kid"; "" when absent.
	KeyID string
	// Type is "typ"; "" when absent.
	Type string
}

// JWS is a parsed JWS compact serialization. Nothing in it is trusted until Verify succeeds.
type JWS struct {
	// Header is the protected header.
	Header Header
	// Payload is the decoded payload.
	Payload []byte
	// Signature is the decoded signature; empty when the token has none.
	Signature []byte
	// signingInput is "header.payload" as received: what the signature covers; input holds
	// the same bytes.
	signingInput string
	input        []byte
}

// SigningInput returns the first two parts as received, "header.payload": the bytes the
// signature covers.
func (j *JWS) SigningInput() string { return j.signingInput }

// rawHeader is the protected header as parsed: the parameters a verifier uses, and those whose
// mere presence refuses the token.
type rawHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
	JWK  json.RawMessage `json:"jwk"`
	JKU  json.RawMessage `json:"jku"`
	X5U  json.RawMessage `json:"x5u"`
	X5C  json.RawMessage `json:"x5c"`
	B64  json.RawMessage `json:"b64"`
	Enc  json.RawMessage `json:"enc"`
	Zip  json.RawMessage `json:"zip"`
}

// Parse splits and decodes a JWS compact serialization without verifying it: exactly three
// parts (RFC 7515 §7.1), each in canonical base64url so that a token has exactly one spelling,
// and a protected header that is a JSON object (decoded with go-jose's decoder: member names
// are case-sensitive and duplicates are refused) without the parameters that are never
// trusted: "jwk", "jku", "x5u" and "x5c" would let the token choose its own key, "crit" and
// "b64" change how it must be processed, "enc" and "zip" belong to JWE. They are refused rather
// than ignored. The JWS JSON serializations and JWE are refused too.
//
// Parse bounds nothing itself: the caller caps the token's size first. It applies no rule to
// "alg", "kid" or "typ" beyond their being strings; Verify binds the algorithm to the key.
func Parse(token string) (*JWS, error) {
	j, _, err := parse(token, false)
	return j, err
}

// ParseEmbeddedKey is Parse for a JWS that carries its own verification key in the "jwk"
// header parameter, which only a proof of possession does (a DPoP proof, RFC 9449 §4.2): the
// signature proves that the sender holds the key, not who the sender is. It returns the
// "jwk" member as received, or ErrMalformed when it is absent. Every other parameter Parse
// refuses is still refused.
func ParseEmbeddedKey(token string) (*JWS, []byte, error) {
	j, jwk, err := parse(token, true)
	if err != nil {
		return nil, nil, err
	}
	if len(jwk) == 0 {
		return nil, nil, fail(ErrMalformed, "the header has no \"jwk\"")
	}
	return j, jwk, nil
}

// parse is Parse, with the header's "jwk" member returned instead of refused when allowJWK.
func parse(token string, allowJWK bool) (*JWS, []byte, error) {
	h, p, s, err := split(token)
	if err != nil {
		return nil, nil, err
	}
	// One allocation holds the token's bytes, then its three parts decoded.
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(token)+enc.DecodedLen(len(h))+enc.DecodedLen(len(p))+enc.DecodedLen(len(s)))
	buf = append(buf, token...)
	raw := buf[:len(token):len(token)]
	n := len(h) + 1 + len(p)
	j := &JWS{signingInput: token[:n], input: raw[:n:n]}
	var header []byte
	// Canonical base64url always decodes.
	if buf, header, err = appendDecode(buf, raw[:len(h)]); err != nil {
		return nil, nil, fail(ErrMalformed, "header is not base64url")
	}
	if buf, j.Payload, err = appendDecode(buf, raw[len(h)+1:n]); err != nil {
		return nil, nil, fail(ErrMalformed, "payload is not base64url")
	}
	if _, j.Signature, err = appendDecode(buf, raw[n+1:]); err != nil {
		return nil, nil, fail(ErrMalformed, "signature is not base64url")
	}
	var jwk []byte
	if j.Header, jwk, err = parseHeader(header, allowJWK); err != nil {
		return nil, nil, err
	}
	return j, jwk, nil
}

// appendDecode decodes src (unpadded base64url) into the spare capacity of buf, which must
// hold it, and returns buf extended and the decoded bytes, capped so that appending to them
// cannot overwrite what follows.
func appendDecode(buf, src []byte) ([]byte, []byte, error) {
	start := len(buf)
	n, err := base64.RawURLEncoding.Decode(buf[start:cap(buf)], src)
	if err != nil {
		return buf, nil, err
	}
	return buf[:start+n], buf[start : start+n : start+n], nil
}

// split checks the token's shape before any decoding and returns its three parts.
func split(token string) (header, payload, signature string, err error) {
	if token == "" {
		return "", "", "", fail(ErrMalformed, "empty token")
	}
	if token[0] == '{' {
		return "", "", "", fail(ErrMalformed, "JWS JSON serialization is not accepted")
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return "", "", "", fail(ErrMalformed, "not a JWS compact serialization")
	}
	if strings.Count(s, ".") == 2 {
		return "", "", "", fail(ErrMalformed, "JWE is not accepted")
	}
	if strings.IndexByte(s, '.') >= 0 {
		return "", "", "", fail(ErrMalformed, "not a JWS compact serialization")
	}
	for _, part := range [...]string{h, p, s} {
		if !canonical(part) {
			return "", "", "", fail(ErrMalformed, "part is not canonical base64url")
		}
	}
	return h, p, s, nil
}

// parseHeader decodes the protected header and refuses the parameters that are never trusted;
// with allowJWK, "jwk" is returned instead.
func parseHeader(raw []byte, allowJWK bool) (Header, []byte, error) {
	var h rawHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return Header{}, nil, fail(ErrMalformed, "header is not a JSON object")
	}
	jwk := h.JWK
	if allowJWK {
		h.JWK = nil
	}
	if err := checkHeaderParams(&h); err != nil {
		return Header{}, nil, err
	}
	return Header{Algorithm: h.Alg, KeyID: h.Kid, Type: h.Typ}, jwk, nil
}

// checkHeaderParams refuses header parameters that would let the token choose its own key or
// change how it must be processed. They are refused rather than ignored: an issuer that has no
// use for them never sends them, so their presence means a forgery attempt or a token meant for
// someone else.
func checkHeaderParams(h *rawHeader) error {
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

// canonical reports whether s is unpadded base64url (RFC 4648 §5) in its canonical form: only
// alphabet characters, a length an encoder can produce, and zero padding bits in the last
// character, so that no two strings decode to the same bytes.
func canonical(s string) bool {
	for i := 0; i < len(s); i++ {
		if b64value[s[i]] < 0 {
			return false
		}
	}
	if len(s) == 0 {
		return true
	}
	last := b64value[s[len(s)-1]]
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

// b64value maps a byte to its base64url value, or -1.
var b64value = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()
