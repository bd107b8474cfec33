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

// Checks that another one hides: each test here leaves one check alone in front of the token
// and fails when that check is removed (docs/security.md, "Each defence guarded on its own").

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// withoutAlg is a KeySource that publishes its issuer's keys without "alg", as JWKS documents
// may (RFC 7517 §4.4 makes it optional): then only the key type binds the algorithm.
type withoutAlg struct{ iss *verifytest.Issuer }

func (w withoutAlg) Key(kid string) (*jose.JSONWebKey, bool) {
	k, ok := w.iss.Key(kid)
	if !ok {
		return nil, false
	}
	bare := *k
	bare.Algorithm = ""
	return &bare, true
}

var everyAlgorithm = func() []string {
	out := make([]string, len(supportedAlgorithms))
	for i, a := range supportedAlgorithms {
		out[i] = string(a)
	}
	return out
}()

// TestKeyWithoutAlgVerifiesOnlyItsTypesAlgorithms: a key that declares no "alg" verifies the
// algorithms of its own type only (an EC key the one ES algorithm of its curve), even with
// every algorithm allowed. The refusal must be ErrAlgorithm, from the key binding itself:
// go-jose would also fail these signatures (ErrSignature), but that is a second line this
// test does not count on.
func TestKeyWithoutAlgVerifiesOnlyItsTypesAlgorithms(t *testing.T) {
	rsaFamily := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	fits := map[jose.SignatureAlgorithm][]string{
		jose.ES256: {"ES256"}, jose.ES384: {"ES384"}, jose.ES512: {"ES512"},
		jose.RS256: rsaFamily, jose.EdDSA: {"EdDSA"},
	}
	headers := append(slices.Clone(everyAlgorithm), "HS256", "HS384", "none", "")
	for own, family := range fits {
		t.Run(string(own), func(t *testing.T) {
			clock := newFakeClock()
			iss := newIssuer(t, clock, verifytest.WithAlgorithm(own))
			v, err := NewWithKeySource(iss.URL, iss.Audience, withoutAlg{iss}, WithClock(clock.Now),
				WithAllowedAlgorithms(everyAlgorithm...), WithCacheSize(0))
			if err != nil {
				t.Fatal(err)
			}
			kid := iss.SigningKeyID()
			for _, alg := range headers {
				h := map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}
				_, err := v.Verify(context.Background(), iss.SignJWS(kid, h, iss.Claims()))
				switch {
				case alg == string(own) && err != nil:
					t.Errorf("header %s on its own key: %v", alg, err)
				case !slices.Contains(family, alg) && !errorsIsKind(err, ErrAlgorithm):
					t.Errorf("header %q on a %s key without alg: got %v, want ErrAlgorithm", alg, own, err)
				}
			}
		})
	}
}

// TestAllowListBindsAKeyWithoutAlg: a genuine PS256 signature by an RSA key that declares no
// "alg" fits the key, so only the allow-list (RS256 here) refuses it.
func TestAllowListBindsAKeyWithoutAlg(t *testing.T) {
	clock := newFakeClock()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t, clock, verifytest.WithSigningKey("rsa", jose.PS256, rsaKey))
	open, err := NewWithKeySource(iss.URL, iss.Audience, withoutAlg{iss}, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, open, iss.Token()) // the control: the signature is genuine
	v, err := NewWithKeySource(iss.URL, iss.Audience, withoutAlg{iss}, WithClock(clock.Now), WithAllowedAlgorithms("RS256"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), iss.Token())
	wantKind(t, err, ErrAlgorithm)
}

// TestIatInTheFutureAloneIsRefused: "iat" in the future is refused on its own, without an
// "nbf" that would refuse the token first.
func TestIatInTheFutureAloneIsRefused(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithLeeway(5*time.Second))
	now := clock.Now().Unix()
	mustVerify(t, v, iss.Token(verifytest.NoClaim("nbf"), verifytest.Claim("iat", now+5)))
	_, err := v.Verify(context.Background(), iss.Token(verifytest.NoClaim("nbf"), verifytest.Claim("iat", now+6)))
	wantKind(t, err, ErrNotYetValid)
}

// TestUnusableKidFetchesNothing: a token without "kid", or with an oversized one, names no key
// the issuer can have, so it never costs a key set fetch, even with no refresh cooldown.
func TestUnusableKidFetchesNothing(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithRefreshCooldown(0))
	before := iss.JWKSRequests()
	_, err := v.Verify(context.Background(), iss.Token(verifytest.Header("kid", "unknown")))
	wantKind(t, err, ErrUnknownKey)
	if iss.JWKSRequests() == before {
		t.Fatal("an unknown kid did not refresh the key set: the control is broken")
	}
	before = iss.JWKSRequests()
	for name, tok := range map[string]string{
		"kid absent":    iss.Token(verifytest.NoHeader("kid")),
		"kid oversized": iss.Token(verifytest.Header("kid", strings.Repeat("k", maxKeyIDLen+1))),
		"kid empty":     iss.Token(verifytest.Header("kid", "")),
	} {
		_, err := v.Verify(context.Background(), tok)
		wantKind(t, err, ErrUnknownKey)
		if n := iss.JWKSRequests() - before; n != 0 {
			t.Errorf("%s: %d key set fetches", name, n)
		}
	}
}
