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

// Package dpop checks and makes DPoP proofs (RFC 9449): the JWT a client signs with its own
// key for every request, so that an access token bound to that key (cnf.jkt) is worthless to
// whoever steals it without the key.
//
// The m2m token server checks the proofs on token requests with this package, and package
// verify those on requests to resource servers, so both sides run one implementation of the
// RFC 9449 §4.3 checks. It imports nothing from the rest of the repository.
//
// Verify is stateless: a proof's single use (jti) is the caller's to enforce, with a
// ReplayCache or a structure of its own, after every other check has passed.
package dpop

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"math"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

const (
	// HeaderName is the HTTP header (and, lowercased, the gRPC metadata key) of a proof.
	HeaderName = "DPoP"
	// NonceHeader is the HTTP header carrying a server-provided nonce (RFC 9449 §8).
	NonceHeader = "DPoP-Nonce"
	// Scheme is the authorization scheme of a DPoP-bound access token (RFC 9449 §7.1).
	Scheme = "DPoP"
	// TokenType is the token_type of a DPoP-bound token response (RFC 9449 §5).
	TokenType = "DPoP"
	// MaxProofLen bounds a proof: the largest legitimate one (an RSA-4096 jwk, a long URL and
	// nonce) is well under 4 KiB.
	MaxProofLen = 8 << 10
	// MaxJTILen bounds the "jti" a replay cache has to remember.
	MaxJTILen = 256
	// DefaultWindow is how far a proof's "iat" may be from now, either way.
	DefaultWindow = 60 * time.Second
)

// DefaultAlgorithms are the proof algorithms accepted when Check.Algorithms is empty: the
// asymmetric JWS algorithms verify/jws implements (RFC 9449 §4.3 item 5: no "none", no MAC).
var DefaultAlgorithms = []string{"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// Every error of Verify matches ErrInvalidProof or ErrUseNonce with errors.Is. Messages are
// fixed strings (after "dpop: "): they never quote the proof, the token or the request, so a
// server may send them back as an error description.
var (
	// ErrInvalidProof: the proof fails a check of RFC 9449 §4.3; the answer is
	// invalid_dpop_proof.
	ErrInvalidProof = errors.New("invalid DPoP proof")
	// ErrUseNonce: the server requires a nonce and the proof has none, or a stale or foreign
	// one; the answer is use_dpop_nonce with a fresh nonce in the DPoP-Nonce header (§8).
	ErrUseNonce = errors.New("DPoP nonce required")
	// ErrReplay: the proof was used before (ReplayCache). It also matches ErrInvalidProof.
	ErrReplay = errors.New("DPoP proof replayed")
)

type proofError struct {
	kind   error
	detail string
}

func (e *proofError) Error() string { return "dpop: " + e.detail }
func (e *proofError) Is(target error) bool {
	return target == e.kind || (e.kind == ErrReplay && target == ErrInvalidProof)
}

func invalid(detail string) error { return &proofError{kind: ErrInvalidProof, detail: detail} }

// Check is what a proof must match.
type Check struct {
	// Method is the HTTP method of the request ("htm").
	Method string
	// URL is the request's URL as its server is known to clients ("htu"), compared without
	// query and fragment after RFC 3986 §6.2.2–6.2.3 normalisation (scheme and host case,
	// default port, empty path). Behind a proxy it is the external URL, never one built from
	// a client-controlled Host header.
	URL string
	// AccessToken, when set, is the access token the proof accompanies: "ath" must be its
	// hash (§4.3 item 11). At the token endpoint it is empty and "ath" is not looked at.
	AccessToken string
	// Now is the time "iat" is compared with.
	Now time.Time
	// Window is how far "iat" may be from Now, either way (default DefaultWindow).
	Window time.Duration
	// Algorithms is the allow-list of proof algorithms (default DefaultAlgorithms).
	Algorithms []string
	// Nonce, when set, makes a nonce required: it reports whether the proof's "nonce" is one
	// the server provided and still accepts. A missing or refused nonce is ErrUseNonce.
	Nonce func(nonce string, now time.Time) bool
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url: the "jkt" a bound
	// token carries in its "cnf" claim (§6.1).
	JKT string
	// Key is the proof's public key.
	Key *jose.JSONWebKey
	// ID is "jti", for the caller's replay check.
	ID string
	// IssuedAt is "iat".
	IssuedAt time.Time
	// Expiry is when the proof stops being accepted (IssuedAt plus the window): how long a
	// replay cache must remember ID.
	Expiry time.Time
}

// claims are the payload members of §4.2.
type claims struct {
	JTI   *string  `json:"jti"`
	HTM   *string  `json:"htm"`
	HTU   *string  `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// privateMembers are the JWK members of private or symmetric keys (RFC 7518 §6.2.2, §6.3.2,
// §6.4, RFC 8037 §2): a proof's "jwk" must hold none (§4.3 item 7).
type privateMembers struct {
	D   json.RawMessage `json:"d"`
	P   json.RawMessage `json:"p"`
	Q   json.RawMessage `json:"q"`
	DP  json.RawMessage `json:"dp"`
	DQ  json.RawMessage `json:"dq"`
	QI  json.RawMessage `json:"qi"`
	OTH json.RawMessage `json:"oth"`
	K   json.RawMessage `json:"k"`
}

// Verify checks one DPoP proof (the value of the request's single DPoP header; the caller
// refuses a request with several, §4.3 item 1) against c, in the order of RFC 9449 §4.3: a
// well-formed JWS (item 2) carrying the required claims (3), typ "dpop+jwt" (4), an allowed
// asymmetric algorithm (5) that fits the key, a signature that verifies with the embedded key
// (6), a public key only (7), htm (8) and htu (9), a nonce when c.Nonce is set (10), ath when
// c.AccessToken is set (11), and iat within the window (11). The replay check (12) is the
// caller's.
func Verify(proof string, c *Check) (*Proof, error) {
	if len(proof) > MaxProofLen {
		return nil, invalid("the proof is too large")
	}
	j, rawKey, err := jws.ParseEmbeddedKey(proof)
	if err != nil {
		return nil, invalid("the proof is not a JWS compact serialization with a jwk header and no forbidden parameter")
	}
	var cl claims
	if err := json.Unmarshal(j.Payload, &cl); err != nil {
		return nil, invalid("the proof's payload is not a JSON object")
	}
	if err := cl.complete(); err != nil {
		return nil, err
	}
	if !strings.EqualFold(j.Header.Type, "dpop+jwt") {
		return nil, invalid(`the proof's typ is not "dpop+jwt"`)
	}
	if !allowed(j.Header.Algorithm, c.Algorithms) {
		return nil, invalid("the proof's algorithm is not allowed")
	}
	key, err := publicJWK(rawKey)
	if err != nil {
		return nil, err
	}
	if err := j.Verify(key); err != nil {
		return nil, invalid("the proof's signature does not verify with its jwk under its alg")
	}
	return c.match(&cl, key)
}

// match checks the verified claims against the request.
func (c *Check) match(cl *claims, key *jose.JSONWebKey) (*Proof, error) {
	if *cl.HTM != c.Method {
		return nil, invalid("the proof's htm is not the request's method")
	}
	if !SameURL(*cl.HTU, c.URL) {
		return nil, invalid("the proof's htu is not the request's URL")
	}
	window := c.Window
	if window <= 0 {
		window = DefaultWindow
	}
	iat := time.Unix(int64(*cl.IAT), 0)
	if d := c.Now.Sub(iat); d > window || d < -window {
		return nil, invalid("the proof's iat is outside the accepted window")
	}
	if c.Nonce != nil && (cl.Nonce == nil || !c.Nonce(*cl.Nonce, c.Now)) {
		return nil, &proofError{kind: ErrUseNonce, detail: "a fresh server nonce is required"}
	}
	if c.AccessToken != "" && (cl.ATH == nil || !sameATH(*cl.ATH, c.AccessToken)) {
		return nil, invalid("the proof's ath is not the hash of the access token")
	}
	jkt, err := Thumbprint(key)
	if err != nil {
		return nil, invalid("the proof's jwk has no thumbprint")
	}
	return &Proof{JKT: jkt, Key: key, ID: *cl.JTI, IssuedAt: iat, Expiry: iat.Add(window)}, nil
}

// complete checks that the required claims are present and sane (§4.2, §4.3 item 3).
func (cl *claims) complete() error {
	switch {
	case cl.JTI == nil || *cl.JTI == "":
		return invalid("the proof has no jti")
	case len(*cl.JTI) > MaxJTILen:
		return invalid("the proof's jti is too long")
	case cl.HTM == nil || cl.HTU == nil:
		return invalid("the proof has no htm or htu")
	case cl.IAT == nil || math.IsNaN(*cl.IAT) || *cl.IAT < 0 || *cl.IAT > 1<<40:
		return invalid("the proof has no valid iat")
	}
	return nil
}

func allowed(alg string, algs []string) bool {
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		if a == alg && alg != "" {
			return true
		}
	}
	return false
}

// publicJWK decodes the proof's jwk, refusing a private or symmetric key (§4.3 item 7).
func publicJWK(raw []byte) (*jose.JSONWebKey, error) {
	var priv privateMembers
	if err := json.Unmarshal(raw, &priv); err != nil {
		return nil, invalid("the proof's jwk is not a JSON object")
	}
	for _, m := range [...]json.RawMessage{priv.D, priv.P, priv.Q, priv.DP, priv.DQ, priv.QI, priv.OTH, priv.K} {
		if m != nil {
			return nil, invalid("the proof's jwk holds private key material")
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, invalid("the proof's jwk is not a valid JWK")
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, invalid("the proof's jwk is not a public key")
	}
	return &k, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of key, base64url-encoded: the "jkt" of a token
// bound to it.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	t, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// TokenHash is the "ath" of an access token: base64url(SHA-256(token)) (§4.2).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameATH compares ath with the token's hash in constant time.
func sameATH(ath, token string) bool {
	return subtle.ConstantTimeCompare([]byte(ath), []byte(TokenHash(token))) == 1
}

// SameURL reports whether an htu names the URL want, both compared without query and fragment
// after RFC 3986 §6.2.2–6.2.3 normalisation. Only absolute http(s) URLs without user info
// match anything.
func SameURL(htu, want string) bool {
	a, ok1 := normalURL(htu)
	b, ok2 := normalURL(want)
	return ok1 && ok2 && a == b
}

// normalURL is scheme://host[:port]/path of an absolute http(s) URL: scheme and host lowercase,
// the scheme's default port dropped, an empty path "/", query and fragment removed. Percent-encoding is kept as sent (EscapedPath), so "%2F" never equals "/".
func normalURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}
