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

package verifytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Attack is one forged or invalid token that a verifier of this issuer must refuse.
type Attack struct {
	// Name says what the token tries; it is stable, so tests can map it to an expected error.
	Name string
	// Token is the token as an attacker would present it.
	Token string
}

// AttackTokens builds forged and invalid tokens against iss's current signing key. Tokens
// that the attack needs signed by the trusted key (to show that a policy, not a bad
// signature, refuses them) are signed with it; the others use a fresh attacker key.
//
// Every one must be refused by a verifier configured for iss.URL and iss.Audience with
// default options; the valid token iss.Token() must be accepted by the same verifier.
func AttackTokens(iss *Issuer) []Attack {
	a := newAttacker(iss)
	attacks := []Attack{
		{"alg none", a.noneToken("none") + "."},
		{"alg none without signature part", a.noneToken("none")},
		{"alg NONE uppercase", a.noneToken("NONE") + "."},
		{"stripped signature", a.h + "." + a.p + "."},
		{"swapped payload (scope escalation)", a.h + "." + a.escalatedPayload() + "." + a.s},
		{"unknown kid", a.trusted(header("kid", "m2m-unknown-kid"), nil)},
		{"kid path traversal", a.trusted(header("kid", "../../../../../../etc/passwd"), nil)},
		{"kid absent", a.trusted(header("kid", nil), nil)},
		{"HS256 keyed with the public key PEM", a.hmacToken(a.publicPEM())},
		{"HS256 keyed with the public key DER", a.hmacToken(a.publicDER())},
		{"HS256 keyed with the public JWK JSON", a.hmacToken(a.publicJWKJSON())},
		{"HS256 keyed with the raw public key", a.hmacToken(a.rawPublic())},
		{"embedded jwk (attacker key)", a.attackerToken(header("jwk", a.attackerJWK(), "kid", nil))},
		{"embedded jwk with real kid", a.attackerToken(header("jwk", a.attackerJWK()))},
		{"embedded jwk: the trusted key, signed by it", a.trusted(header("jwk", a.trustedJWK()), nil)},
		{"jku (attacker key set)", a.attackerToken(header("jku", "https://attacker.example/jwks.json", "kid", "attacker"))},
		{"x5u (attacker certificate URL)", a.attackerToken(header("x5u", "https://attacker.example/cert.pem", "kid", "attacker"))},
		{"x5c (attacker certificate)", a.attackerToken(header("x5c", []string{a.attackerCert()}, "kid", nil))},
		{"jku signed by the trusted key", a.trusted(header("jku", "https://attacker.example/jwks.json"), nil)},
		{"attacker key with real kid", a.twinToken()},
		{"b64 signed by the trusted key", a.trusted(header("b64", true), nil)},
		{"JWE zip in a JWS signed by the trusted key", a.trusted(header("zip", "DEF"), nil)},
		{"JWE enc in a JWS signed by the trusted key", a.trusted(header("enc", "A128GCM"), nil)},
		{"unknown crit", a.trusted(header("crit", []string{"urn:example:policy"}, "urn:example:policy", "x"), nil)},
		{"typ JWT", a.trusted(header("typ", "JWT"), nil)},
		{"typ absent", a.trusted(header("typ", nil), nil)},
		{"alg does not fit the key", a.trusted(header("alg", a.mismatchedAlg()), nil)},
		{"wrong iss", a.trusted(nil, claims("iss", "https://attacker.example"))},
		{"wrong aud", a.trusted(nil, claims("aud", "someone-else.example"))},
		{"expired", a.trusted(nil, claims("iat", a.now-7200, "nbf", a.now-7200, "exp", a.now-3600))},
		{"nbf in the future", a.trusted(nil, claims("nbf", a.now+3600))},
		{"iat in the future", a.trusted(nil, claims("iat", a.now+3600, "nbf", nil))},
		{"exp absent", a.trusted(nil, claims("exp", nil))},
		{"300 KB token", a.trusted(nil, claims("pad", strings.Repeat("A", 300<<10)))},
		{"JWE (5 parts)", a.jwe()},
		{"JWS JSON serialization", a.jsonSerialization()},
		{"whitespace inside token", a.valid[:20] + "\n" + a.valid[20:]},
		{"garbage", "this is not a token"},
		{"empty", ""},
	}
	if t, ok := a.nonCanonicalSignature(); ok {
		attacks = append(attacks, Attack{"non-canonical base64 signature", t})
	}
	return attacks
}

// attacker holds the material the attacks are built from.
type attacker struct {
	iss     *Issuer
	kid     string
	alg     jose.SignatureAlgorithm
	public  crypto.PublicKey
	valid   string
	h, p, s string
	now     int64
	evil    *ecdsa.PrivateKey
}

func newAttacker(iss *Issuer) *attacker {
	kid := iss.SigningKeyID()
	k := iss.mustKey(kid)
	valid := iss.Token()
	parts := strings.Split(valid, ".")
	evil, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return &attacker{
		iss: iss, kid: kid, alg: k.alg, public: k.signer.Public(),
		valid: valid, h: parts[0], p: parts[1], s: parts[2],
		now: iss.now().Unix(), evil: evil,
	}
}

// header and claims build change sets from name/value pairs; a nil value deletes.
func header(kv ...any) map[string]any { return pairs(kv) }
func claims(kv ...any) map[string]any { return pairs(kv) }

func pairs(kv []any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func apply(base, changes map[string]any) map[string]any {
	for k, v := range changes {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	return base
}

func (a *attacker) baseHeader(alg string) map[string]any {
	return map[string]any{"alg": alg, "typ": "at+jwt", "kid": a.kid}
}

// trusted signs a changed header and claim set with the trusted key itself.
func (a *attacker) trusted(h, c map[string]any) string {
	return a.iss.SignJWS(a.kid, apply(a.baseHeader(string(a.alg)), h), apply(a.iss.Claims(), c))
}

// attackerToken signs a valid-looking claim set with the attacker's own key.
func (a *attacker) attackerToken(h map[string]any) string {
	input := encodeSegment(apply(a.baseHeader("ES256"), h)) + "." + encodeSegment(a.iss.Claims())
	sig, err := sign(a.evil, jose.ES256, []byte(input))
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// twinToken signs with a fresh key of the trusted key's own type under the real kid, so only
// the signature check can tell it apart.
func (a *attacker) twinToken() string {
	input := encodeSegment(a.baseHeader(string(a.alg))) + "." + encodeSegment(a.iss.Claims())
	sig, err := sign(mustGenerate(a.alg), a.alg, []byte(input))
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (a *attacker) noneToken(alg string) string {
	return encodeSegment(a.baseHeader(alg)) + "." + a.p
}

func (a *attacker) escalatedPayload() string {
	raw, _ := base64.RawURLEncoding.DecodeString(a.p)
	var c map[string]any
	_ = json.Unmarshal(raw, &c)
	c["scope"] = "invoices:* admin:*"
	return encodeSegment(c)
}

// hmacToken is the RS256-to-HS256 key confusion attack: sign with HMAC keyed by public bytes
// and hope the verifier feeds "the key" to whatever alg the header names.
func (a *attacker) hmacToken(secret []byte) string {
	input := encodeSegment(a.baseHeader("HS256")) + "." + encodeSegment(a.iss.Claims())
	mac := hmac.New(hashFor(jose.HS256).New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (a *attacker) publicDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(a.public)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return der
}

func (a *attacker) publicPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: a.publicDER()})
}

func (a *attacker) publicJWKJSON() []byte {
	k, _ := a.iss.Key(a.kid)
	b, err := json.Marshal(k)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return b
}

// rawPublic is the key's bare encoding: the uncompressed EC point, the RSA modulus, or the 32
// Ed25519 bytes.
func (a *attacker) rawPublic() []byte {
	switch pub := a.public.(type) {
	case *ecdsa.PublicKey:
		b, err := pub.Bytes()
		if err != nil {
			panic(fmt.Sprintf("verifytest: %v", err))
		}
		return b
	case *rsa.PublicKey:
		return pub.N.Bytes()
	case ed25519.PublicKey:
		return pub
	}
	panic(fmt.Sprintf("verifytest: unsupported key %T", a.public))
}

// trustedJWK is the trusted public key itself, kid and all: a token that carries it and is
// signed by it verifies only if the "jwk" header is ignored rather than refused, so only that
// refusal stops it.
func (a *attacker) trustedJWK() jose.JSONWebKey {
	k, _ := a.iss.Key(a.kid)
	return *k
}

func (a *attacker) attackerJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: a.evil.Public(), Algorithm: "ES256", Use: "sig"}
}

// attackerCert is a self-signed certificate for the attacker key, base64 (not url) DER as x5c
// wants.
func (a *attacker) attackerCert() string {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: a.iss.URL},
		NotBefore:    time.Unix(a.now-3600, 0),
		NotAfter:     time.Unix(a.now+3600, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, a.evil.Public(), a.evil)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return base64.StdEncoding.EncodeToString(der)
}

// mismatchedAlg names an algorithm of another key type than the signing key's.
func (a *attacker) mismatchedAlg() string {
	if a.alg == jose.ES256 {
		return string(jose.RS256)
	}
	return string(jose.ES256)
}

// jwe encrypts a valid claim set into a real five-part JWE with a random content key.
func (a *attacker) jwe() string {
	cek := make([]byte, 16)
	_, _ = rand.Read(cek)
	opts := (&jose.EncrypterOptions{}).WithType("at+jwt").WithHeader("kid", a.kid)
	enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: cek}, opts)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	raw, _ := json.Marshal(a.iss.Claims())
	obj, err := enc.Encrypt(raw)
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		panic(fmt.Sprintf("verifytest: %v", err))
	}
	return out
}

// jsonSerialization is the valid token in flattened JWS JSON form.
func (a *attacker) jsonSerialization() string {
	b, _ := json.Marshal(map[string]string{"protected": a.h, "payload": a.p, "signature": a.s})
	return string(b)
}

// nonCanonicalSignature respells the valid token's signature with non-zero padding bits,
// which a lenient base64 decoder maps to the same bytes.
func (a *attacker) nonCanonicalSignature() (string, bool) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	spare := map[int]int{2: 0x0f, 3: 0x03}[len(a.s)%4]
	if spare == 0 {
		return "", false
	}
	last := strings.IndexByte(alphabet, a.s[len(a.s)-1])
	respelled := a.s[:len(a.s)-1] + string(alphabet[last|1])
	return a.h + "." + a.p + "." + respelled, true
}
