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

// Package verifytest runs a fake token issuer for tests: an httptest server publishing RFC
// 8414 metadata and a JWKS, and minting RFC 9068 access tokens with chosen claims, headers and
// keys. It also builds a table of forged tokens ([AttackTokens]) that every verifier of our
// tokens must refuse.
//
// It signs with the standard library's crypto directly rather than with go-jose, so that tests
// of go-jose-based verification do not use the same code on both ends.
//
// verifytest imports nothing from package verify and can be used by any package's tests.
package verifytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of the issuer and of the tokens it mints.
const (
	DefaultAudience  = "billing.billing"
	DefaultClientID  = "m2mc_0testclient0000000000000000"
	DefaultScope     = "invoices:read"
	DefaultNamespace = "payments"
	DefaultTTL       = 15 * time.Minute
	// JWKSPath and MetadataPath are where the server publishes.
	JWKSPath     = "/.well-known/jwks.json"
	MetadataPath = "/.well-known/oauth-authorization-server"
	// RevocationsPath is where the server publishes its revocation list (revocation.go).
	RevocationsPath = "/oauth2/revocations"
)

// Issuer is a running fake issuer. Its methods are safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier: the "iss" of its tokens and the "issuer" of its metadata.
	URL string
	// Audience is the default "aud" of its tokens.
	Audience string

	server *httptest.Server
	now    func() time.Time

	mu             sync.Mutex
	keys           map[string]*key
	order          []string // publication order of kids
	signing        string   // kid of the signing key
	maxAge         time.Duration
	jwksStatus     int // when non-zero, the JWKS endpoint answers this status
	metadataIssuer string

	jwksRequests     atomic.Int64
	metadataRequests atomic.Int64

	rev revocationState
}

// key is one published key pair.
type key struct {
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
	public *jose.JSONWebKey
}

// Option configures an Issuer.
type Option func(*settings)

type settings struct {
	audience       string
	now            func() time.Time
	alg            jose.SignatureAlgorithm
	kid            string
	signer         crypto.Signer
	issuerURL      string
	metadataIssuer string
	maxAge         time.Duration
}

// WithAudience sets the default "aud" (default [DefaultAudience]).
func WithAudience(aud string) Option { return func(s *settings) { s.audience = aud } }

// WithClock sets the clock for "iat", "nbf" and "exp" (default time.Now). Share it with the
// verifier's WithClock to test expiry without sleeping.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithAlgorithm sets the algorithm of the generated initial key: ES256 (default), ES384,
// ES512, RS256, PS256 or EdDSA.
func WithAlgorithm(alg jose.SignatureAlgorithm) Option { return func(s *settings) { s.alg = alg } }

// WithSigningKey uses an existing key as the initial signing key instead of a generated one,
// for example the token server's own key so that [AttackTokens] forges against it.
func WithSigningKey(kid string, alg jose.SignatureAlgorithm, signer crypto.Signer) Option {
	return func(s *settings) { s.kid, s.alg, s.signer = kid, alg, signer }
}

// WithIssuerURL sets "iss" and the metadata's "issuer" (default: the server's URL).
func WithIssuerURL(u string) Option { return func(s *settings) { s.issuerURL = u } }

// WithMetadataIssuer makes the metadata claim a different issuer than the tokens, to test the
// RFC 8414 §3.3 check.
func WithMetadataIssuer(u string) Option { return func(s *settings) { s.metadataIssuer = u } }

// WithMaxAge sets the JWKS Cache-Control max-age (default 5 minutes).
func WithMaxAge(d time.Duration) Option { return func(s *settings) { s.maxAge = d } }

// NewIssuer starts an Issuer that is closed when the test ends.
func NewIssuer(tb testing.TB, opts ...Option) *Issuer {
	tb.Helper()
	iss := NewServer(opts...)
	tb.Cleanup(iss.Close)
	return iss
}

// NewServer starts an Issuer; the caller must Close it. It panics if key generation fails or
// an option is invalid, which only a broken test setup can cause.
func NewServer(opts ...Option) *Issuer {
	s := settings{audience: DefaultAudience, now: time.Now, alg: jose.ES256, maxAge: 5 * time.Minute}
	for _, opt := range opts {
		opt(&s)
	}
	iss := &Issuer{
		Audience: s.audience,
		now:      s.now,
		keys:     map[string]*key{},
		maxAge:   s.maxAge,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+MetadataPath, iss.serveMetadata)
	mux.HandleFunc("GET "+JWKSPath, iss.serveJWKS)
	mux.HandleFunc("GET "+RevocationsPath, iss.serveRevocations)
	iss.server = httptest.NewServer(mux)
	iss.URL = iss.server.URL
	if s.issuerURL != "" {
		iss.URL = s.issuerURL
	}
	iss.metadataIssuer = iss.URL
	if s.metadataIssuer != "" {
		iss.metadataIssuer = s.metadataIssuer
	}
	kid := iss.addKey(s.kid, s.alg, s.signer)
	iss.UseKey(kid)
	return iss
}

// Close stops the server.
func (iss *Issuer) Close() { iss.server.Close() }

// ServerURL is the base URL of the HTTP server (equal to URL unless WithIssuerURL).
func (iss *Issuer) ServerURL() string { return iss.server.URL }

// Client returns an HTTP client for the server.
func (iss *Issuer) Client() *http.Client { return iss.server.Client() }

// AddKey generates and publishes a key of the given algorithm without signing with it yet
// (the first step of a rotation) and returns its kid.
func (iss *Issuer) AddKey(alg jose.SignatureAlgorithm) string { return iss.addKey("", alg, nil) }

func (iss *Issuer) addKey(kid string, alg jose.SignatureAlgorithm, signer crypto.Signer) string {
	if signer == nil {
		signer = mustGenerate(alg)
	}
	pub := &jose.JSONWebKey{Key: signer.Public(), Use: "sig", Algorithm: string(alg)}
	if kid == "" {
		kid = thumbprint(pub)
	}
	pub.KeyID = kid
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if _, ok := iss.keys[kid]; !ok {
		iss.order = append(iss.order, kid)
	}
	iss.keys[kid] = &key{alg: alg, signer: signer, public: pub}
	return kid
}

// UseKey makes a published key the signing key.
func (iss *Issuer) UseKey(kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if _, ok := iss.keys[kid]; !ok {
		panic(fmt.Sprintf("verifytest: UseKey: no key %q", kid))
	}
	iss.signing = kid
}

// RemoveKey unpublishes a key (the last step of a rotation). Tokens it signed stop verifying
// once a verifier refreshes.
func (iss *Issuer) RemoveKey(kid string) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	delete(iss.keys, kid)
	iss.order = slices.DeleteFunc(iss.order, func(k string) bool { return k == kid })
}

// SigningKeyID returns the kid of the current signing key.
func (iss *Issuer) SigningKeyID() string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.signing
}

// Key returns a published public key, so an Issuer can serve as a verify.KeySource. The same
// pointer is returned for as long as the key is published.
func (iss *Issuer) Key(kid string) (*jose.JSONWebKey, bool) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	k, ok := iss.keys[kid]
	if !ok {
		return nil, false
	}
	return k.public, true
}

// KeySet returns the published JWKS.
func (iss *Issuer) KeySet() jose.JSONWebKeySet {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, kid := range iss.order {
		set.Keys = append(set.Keys, *iss.keys[kid].public)
	}
	return set
}

// SetMaxAge changes the JWKS Cache-Control max-age.
func (iss *Issuer) SetMaxAge(d time.Duration) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.maxAge = d
}

// FailJWKS makes the JWKS endpoint answer status (for example 503); 0 restores it.
func (iss *Issuer) FailJWKS(status int) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.jwksStatus = status
}

// JWKSRequests counts requests to the JWKS endpoint, including conditional ones.
func (iss *Issuer) JWKSRequests() int64 { return iss.jwksRequests.Load() }

// MetadataRequests counts requests to the metadata endpoint.
func (iss *Issuer) MetadataRequests() int64 { return iss.metadataRequests.Load() }

func (iss *Issuer) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	iss.metadataRequests.Add(1)
	iss.mu.Lock()
	issuer := iss.metadataIssuer
	iss.mu.Unlock()
	writeJSON(w, map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              iss.server.URL + JWKSPath,
		"m2m_revocation_list_uri":               iss.server.URL + RevocationsPath,
		"token_endpoint":                        iss.server.URL + "/oauth2/token",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (iss *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	iss.jwksRequests.Add(1)
	iss.mu.Lock()
	status, maxAge := iss.jwksStatus, iss.maxAge
	iss.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	body, err := json.Marshal(iss.KeySet())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge/time.Second)))
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TokenOption changes one minted token.
type TokenOption func(*tokenSpec)

type tokenSpec struct {
	header   map[string]any
	claims   map[string]any
	kid      string
	issuedAt int64
}

// Claim sets a claim (any JSON value).
func Claim(name string, value any) TokenOption {
	return func(t *tokenSpec) { t.claims[name] = value }
}

// NoClaim removes a claim.
func NoClaim(name string) TokenOption { return func(t *tokenSpec) { delete(t.claims, name) } }

// Header sets a protected header parameter.
func Header(name string, value any) TokenOption {
	return func(t *tokenSpec) { t.header[name] = value }
}

// NoHeader removes a protected header parameter.
func NoHeader(name string) TokenOption { return func(t *tokenSpec) { delete(t.header, name) } }

// Scope sets "scope".
func Scope(scope string) TokenOption { return Claim("scope", scope) }

// TTL sets "exp" to issue time plus d (negative for an expired token).
func TTL(d time.Duration) TokenOption {
	return func(t *tokenSpec) { t.claims["exp"] = t.issuedAt + int64(d/time.Second) }
}

// SignedBy signs with a published key other than the current signing key; "kid" and "alg"
// follow, unless set with Header afterwards.
func SignedBy(kid string) TokenOption {
	return func(t *tokenSpec) { t.kid = kid; t.header["kid"] = kid }
}

// Claims returns the default claim set of a new token: iss, sub, client_id, aud, exp, iat,
// nbf, jti, scope and namespace.
func (iss *Issuer) Claims() map[string]any {
	now := iss.now().Unix()
	return map[string]any{
		"iss":       iss.URL,
		"sub":       DefaultClientID,
		"client_id": DefaultClientID,
		"aud":       iss.Audience,
		"iat":       now,
		"nbf":       now,
		"exp":       now + int64(DefaultTTL/time.Second),
		"jti":       randomID(),
		"scope":     DefaultScope,
		"namespace": DefaultNamespace,
	}
}

// Token mints an access token signed by the current signing key, as the token server would,
// changed by opts.
func (iss *Issuer) Token(opts ...TokenOption) string {
	kid := iss.SigningKeyID()
	claims := iss.Claims()
	spec := &tokenSpec{
		header:   map[string]any{"typ": "at+jwt", "kid": kid},
		claims:   claims,
		kid:      kid,
		issuedAt: claims["iat"].(int64),
	}
	for _, opt := range opts {
		opt(spec)
	}
	k := iss.mustKey(spec.kid)
	if _, ok := spec.header["alg"]; !ok {
		spec.header["alg"] = string(k.alg)
	}
	return iss.SignJWS(spec.kid, spec.header, spec.claims)
}

// SignJWS signs arbitrary header and claims with the published key kid, using the key's own
// algorithm whatever the header says, and returns the compact serialization. header and
// claims may be maps, structs or json.RawMessage.
func (iss *Issuer) SignJWS(kid string, header, claims any) string {
	k := iss.mustKey(kid)
	input := encodeSegment(header) + "." + encodeSegment(claims)
	sig, err := sign(k.signer, k.alg, []byte(input))
	if err != nil {
		panic(fmt.Sprintf("verifytest: signing: %v", err))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (iss *Issuer) mustKey(kid string) *key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	k, ok := iss.keys[kid]
	if !ok {
		panic(fmt.Sprintf("verifytest: no key %q", kid))
	}
	return k
}

// encodeSegment JSON-encodes v (raw bytes are used as they are) and base64url-encodes it.
func encodeSegment(v any) string {
	var raw []byte
	switch b := v.(type) {
	case []byte:
		raw = b
	case json.RawMessage:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			panic(fmt.Sprintf("verifytest: encoding: %v", err))
		}
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// sign produces a JWS signature (RFC 7518 §3) over input.
func sign(signer crypto.Signer, alg jose.SignatureAlgorithm, input []byte) ([]byte, error) {
	if alg == jose.EdDSA {
		return signer.Sign(rand.Reader, input, crypto.Hash(0))
	}
	h := hashFor(alg)
	digest := h.New()
	digest.Write(input)
	sum := digest.Sum(nil)
	switch alg {
	case jose.ES256, jose.ES384, jose.ES512:
		return signECDSA(signer, sum)
	case jose.PS256, jose.PS384, jose.PS512:
		return signer.Sign(rand.Reader, sum, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
	default:
		return signer.Sign(rand.Reader, sum, h)
	}
}

// signECDSA converts the ASN.1 signature of a crypto.Signer to JOSE's fixed-size R||S.
func signECDSA(signer crypto.Signer, digest []byte) ([]byte, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("not an ECDSA key")
	}
	der, err := signer.Sign(rand.Reader, digest, nil)
	if err != nil {
		return nil, err
	}
	r, s, err := parseECDSASignature(der)
	if err != nil {
		return nil, err
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

func parseECDSASignature(der []byte) (r, s *big.Int, err error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 {
		return nil, nil, fmt.Errorf("malformed ECDSA signature")
	}
	return sig.R, sig.S, nil
}

func hashFor(alg jose.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case jose.ES384, jose.RS384, jose.PS384, jose.HS384:
		return crypto.SHA384
	case jose.ES512, jose.RS512, jose.PS512, jose.HS512:
		return crypto.SHA512
	}
	return crypto.SHA256
}

func mustGenerate(alg jose.SignatureAlgorithm) crypto.Signer {
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		panic(fmt.Sprintf("verifytest: generating a key: %v", err))
	}
	return k
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, the kid format of the m2m token server.
func thumbprint(k *jose.JSONWebKey) string {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(fmt.Sprintf("verifytest: thumbprint: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
