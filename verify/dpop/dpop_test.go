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

package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

const testURL = "https://as.example.com/oauth2/token"

var t0 = time.Unix(1_800_000_000, 0)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// craft signs an arbitrary header and payload with an ES256 key, so that every check can be
// broken one at a time.
func craft(t testing.TB, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func publicJWK(t testing.TB, key crypto.PublicKey) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, jose.JSONWebKey{Key: key}), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func goodParts(t testing.TB, key *ecdsa.PrivateKey) (map[string]any, map[string]any) {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, &key.PublicKey)},
		map[string]any{"jti": "j1", "htm": "POST", "htu": testURL, "iat": t0.Unix()}
}

func check() *dpop.Check {
	return &dpop.Check{Method: "POST", URL: testURL, Now: t0}
}

// TestVerifyChecks breaks each RFC 9449 §4.3 check of a valid proof in turn.
func TestVerifyChecks(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJWK := func() map[string]any {
		var m map[string]any
		_ = json.Unmarshal(mustJSON(t, jose.JSONWebKey{Key: key}), &m)
		return m
	}
	cases := []struct {
		name  string
		edit  func(h, c map[string]any)
		chk   func(c *dpop.Check)
		proof string
		want  error
	}{
		{name: "valid", want: nil},
		{name: "2: not a JWS", proof: "not.a.jws", want: dpop.ErrInvalidProof},
		{name: "2: too large", proof: strings.Repeat("a", dpop.MaxProofLen+1), want: dpop.ErrInvalidProof},
		{name: "3: no jti", edit: func(h, c map[string]any) { delete(c, "jti") }, want: dpop.ErrInvalidProof},
		{name: "3: no htm", edit: func(h, c map[string]any) { delete(c, "htm") }, want: dpop.ErrInvalidProof},
		{name: "3: no htu", edit: func(h, c map[string]any) { delete(c, "htu") }, want: dpop.ErrInvalidProof},
		{name: "3: no iat", edit: func(h, c map[string]any) { delete(c, "iat") }, want: dpop.ErrInvalidProof},
		{name: "3: iat not a number", edit: func(h, c map[string]any) { c["iat"] = "now" }, want: dpop.ErrInvalidProof},
		{name: "3: jti too long", edit: func(h, c map[string]any) { c["jti"] = strings.Repeat("x", dpop.MaxJTILen+1) }, want: dpop.ErrInvalidProof},
		{name: "4: typ JWT", edit: func(h, c map[string]any) { h["typ"] = "JWT" }, want: dpop.ErrInvalidProof},
		{name: "4: no typ", edit: func(h, c map[string]any) { delete(h, "typ") }, want: dpop.ErrInvalidProof},
		{name: "5: alg none", edit: func(h, c map[string]any) { h["alg"] = "none" }, want: dpop.ErrInvalidProof},
		{name: "5: alg HS256", edit: func(h, c map[string]any) { h["alg"] = "HS256" }, want: dpop.ErrInvalidProof},
		{name: "5: alg not allowed here", chk: func(c *dpop.Check) { c.Algorithms = []string{"EdDSA"} }, want: dpop.ErrInvalidProof},
		{name: "5: alg of another key type", edit: func(h, c map[string]any) { h["alg"] = "RS256" }, want: dpop.ErrInvalidProof},
		{name: "6: signed by another key", edit: func(h, c map[string]any) { h["jwk"] = publicJWK(t, &other.PublicKey) }, want: dpop.ErrInvalidProof},
		{name: "6: no jwk", edit: func(h, c map[string]any) { delete(h, "jwk") }, want: dpop.ErrInvalidProof},
		{name: "6: jku instead", edit: func(h, c map[string]any) { h["jku"] = "https://evil" }, want: dpop.ErrInvalidProof},
		{name: "7: private jwk", edit: func(h, c map[string]any) { h["jwk"] = privJWK() }, want: dpop.ErrInvalidProof},
		{name: "7: symmetric jwk", edit: func(h, c map[string]any) { h["jwk"] = map[string]any{"kty": "oct", "k": "AAAA"} }, want: dpop.ErrInvalidProof},
		{name: "8: htm GET", edit: func(h, c map[string]any) { c["htm"] = "GET" }, want: dpop.ErrInvalidProof},
		{name: "8: htm lowercase", edit: func(h, c map[string]any) { c["htm"] = "post" }, want: dpop.ErrInvalidProof},
		{name: "9: htu other host", edit: func(h, c map[string]any) { c["htu"] = "https://rs.example.com/oauth2/token" }, want: dpop.ErrInvalidProof},
		{name: "9: htu other path", edit: func(h, c map[string]any) { c["htu"] = "https://as.example.com/oauth2/introspect" }, want: dpop.ErrInvalidProof},
		{name: "9: htu http", edit: func(h, c map[string]any) { c["htu"] = "http://as.example.com/oauth2/token" }, want: dpop.ErrInvalidProof},
		{name: "9: htu with query and fragment", edit: func(h, c map[string]any) { c["htu"] = testURL + "?a=b#c" }, want: nil},
		{name: "9: htu host case and default port", edit: func(h, c map[string]any) { c["htu"] = "HTTPS://AS.example.com:443/oauth2/token" }, want: nil},
		{name: "9: htu path case", edit: func(h, c map[string]any) { c["htu"] = "https://as.example.com/OAuth2/token" }, want: dpop.ErrInvalidProof},
		{name: "9: htu with user info", edit: func(h, c map[string]any) { c["htu"] = "https://u@as.example.com/oauth2/token" }, want: dpop.ErrInvalidProof},
		{name: "10: nonce required, none", chk: func(c *dpop.Check) { c.Nonce = func(string, time.Time) bool { return true } }, want: dpop.ErrUseNonce},
		{name: "10: nonce refused", edit: func(h, c map[string]any) { c["nonce"] = "n" }, chk: func(c *dpop.Check) { c.Nonce = func(string, time.Time) bool { return false } }, want: dpop.ErrUseNonce},
		{name: "10: nonce accepted", edit: func(h, c map[string]any) { c["nonce"] = "n" }, chk: func(c *dpop.Check) { c.Nonce = func(n string, _ time.Time) bool { return n == "n" } }, want: nil},
		{name: "11: ath missing", chk: func(c *dpop.Check) { c.AccessToken = "tok" }, want: dpop.ErrInvalidProof},
		{name: "11: ath of another token", edit: func(h, c map[string]any) { c["ath"] = dpop.TokenHash("other") }, chk: func(c *dpop.Check) { c.AccessToken = "tok" }, want: dpop.ErrInvalidProof},
		{name: "11: ath matches", edit: func(h, c map[string]any) { c["ath"] = dpop.TokenHash("tok") }, chk: func(c *dpop.Check) { c.AccessToken = "tok" }, want: nil},
		{name: "11: iat too old", edit: func(h, c map[string]any) { c["iat"] = t0.Add(-61 * time.Second).Unix() }, want: dpop.ErrInvalidProof},
		{name: "11: iat in the future", edit: func(h, c map[string]any) { c["iat"] = t0.Add(61 * time.Second).Unix() }, want: dpop.ErrInvalidProof},
		{name: "11: iat within a wider window", edit: func(h, c map[string]any) { c["iat"] = t0.Add(-4 * time.Minute).Unix() }, chk: func(c *dpop.Check) { c.Window = 5 * time.Minute }, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proof := tc.proof
			if proof == "" {
				h, c := goodParts(t, key)
				if tc.edit != nil {
					tc.edit(h, c)
				}
				proof = craft(t, key, h, c)
			}
			chk := check()
			if tc.chk != nil {
				tc.chk(chk)
			}
			p, err := dpop.Verify(proof, chk)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				want, _ := dpop.Thumbprint(&jose.JSONWebKey{Key: &key.PublicKey})
				if p.JKT != want || p.ID != "j1" {
					t.Fatalf("proof = %+v, want jkt %s", p, want)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSignerRoundTrip checks that the proofs of every supported key type verify, with the
// thumbprint the signer announces.
func TestSignerRoundTrip(t *testing.T) {
	ec, _ := dpop.GenerateKey()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, key := range []crypto.Signer{ec, ed, rs} {
		s, err := dpop.NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := s.Proof("GET", "https://rs.example.com/x?q=1", "tok", "n1", t0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := dpop.Verify(proof, &dpop.Check{Method: "GET", URL: "https://rs.example.com/x", AccessToken: "tok", Now: t0,
			Nonce: func(n string, _ time.Time) bool { return n == "n1" }})
		if err != nil {
			t.Fatalf("%T: %v", key, err)
		}
		if p.JKT != s.Thumbprint() {
			t.Fatalf("%T: jkt %s, signer says %s", key, p.JKT, s.Thumbprint())
		}
	}
	if _, err := dpop.NewSigner(mustRSA(t, 1024)); err == nil {
		t.Fatal("a 1024-bit RSA key was accepted")
	}
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits) //nolint:gosec // the test checks that it is refused
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestThumbprintRFC7638 checks the thumbprint against the example of RFC 7638 §3.1.
func TestThumbprintRFC7638(t *testing.T) {
	const jwk = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}`
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(jwk)); err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Thumbprint(&k)
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %q, %v", got, err)
	}
}

func TestNonces(t *testing.T) {
	a := dpop.NewNonces(time.Minute, []byte("0123456789abcdef-a"))
	b := dpop.NewNonces(time.Minute, []byte("0123456789abcdef-a"))
	rotated := dpop.NewNonces(time.Minute, []byte("0123456789abcdef-b"), []byte("0123456789abcdef-a"))
	foreign := dpop.NewNonces(time.Minute, []byte("0123456789abcdef-x"))
	n := a.Issue(t0)
	switch {
	case !b.Valid(n, t0):
		t.Fatal("another replica with the same key refused the nonce")
	case !b.Valid(n, t0.Add(time.Minute)):
		t.Fatal("the nonce died in the next step")
	case b.Valid(n, t0.Add(2*time.Minute+time.Second)):
		t.Fatal("the nonce lived two steps later")
	case b.Valid(n, t0.Add(-2*time.Minute)):
		t.Fatal("a nonce from the future was accepted")
	case !rotated.Valid(n, t0):
		t.Fatal("a nonce of the previous key was refused after rotation")
	case foreign.Valid(n, t0):
		t.Fatal("a nonce under another key was accepted")
	case a.Valid(n[:len(n)-1]+"A", t0) && !strings.HasSuffix(n, "A"):
		t.Fatal("a tampered nonce was accepted")
	case a.Valid("", t0), a.Valid("!!!!", t0):
		t.Fatal("garbage was accepted")
	}
}

func TestReplayCache(t *testing.T) {
	c := dpop.NewReplayCache(3, 10)
	p := func(jkt, id string) *dpop.Proof {
		return &dpop.Proof{JKT: jkt, ID: id, Expiry: t0.Add(time.Minute)}
	}
	if err := c.Use(p("k1", "a"), t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Use(p("k1", "a"), t0); !errors.Is(err, dpop.ErrReplay) || !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("replay: %v", err)
	}
	if err := c.Use(p("k2", "a"), t0); err != nil {
		t.Fatalf("the same jti under another key: %v", err)
	}
	_ = c.Use(p("k1", "b"), t0)
	_ = c.Use(p("k1", "c"), t0)
	if err := c.Use(p("k1", "d"), t0); err == nil {
		t.Fatal("a key went over its cap")
	}
	if err := c.Use(p("k3", "a"), t0); err != nil {
		t.Fatalf("another key was refused for k1's volume: %v", err)
	}
	// After expiry everything is forgotten and a replay of an expired proof is a new entry
	// (Verify refuses the expired proof itself).
	if err := c.Use(p("k1", "a"), t0.Add(2*time.Minute)); err != nil || c.Len() != 1 {
		t.Fatalf("after expiry: %v, len %d", err, c.Len())
	}
}
