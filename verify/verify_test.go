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
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

func TestVerifyValidTokenEachAlgorithm(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			clock := newFakeClock()
			iss := newIssuer(t, clock, verifytest.WithAlgorithm(alg))
			v := testVerifier(t, iss, clock)
			tok := iss.Token(verifytest.Scope("invoices:read invoices:write"),
				verifytest.Claim("team", "payments-core"), verifytest.Claim("tier", 3),
				verifytest.Claim("jti", "jti-1"))
			c := mustVerify(t, v, tok)
			now := clock.Now().Truncate(time.Second)
			checks := []struct {
				name      string
				got, want any
			}{
				{"Issuer", c.Issuer, iss.URL},
				{"ClientID", c.ClientID, verifytest.DefaultClientID},
				{"Subject", c.Subject, verifytest.DefaultClientID},
				{"Namespace", c.Namespace, verifytest.DefaultNamespace},
				{"Scopes", strings.Join(c.Scopes, "|"), "invoices:read|invoices:write"},
				{"Audience", strings.Join(c.Audience, "|"), iss.Audience},
				{"JTI", c.JTI, "jti-1"},
				{"IssuedAt", c.IssuedAt.Equal(now), true},
				{"NotBefore", c.NotBefore.Equal(now), true},
				{"Expiry", c.Expiry.Equal(now.Add(verifytest.DefaultTTL)), true},
				{"Extra[team]", c.Extra["team"], "payments-core"},
				{"len(Extra)", len(c.Extra), 1}, // "tier" is not a string
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
				}
			}
		})
	}
}

func TestVerifyAcceptsStandardVariants(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithCacheSize(0))
	now := clock.Now().Unix()
	cases := map[string]string{
		"aud array":                iss.Token(verifytest.Claim("aud", []string{"other", iss.Audience})),
		"typ application/at+jwt":   iss.Token(verifytest.Header("typ", "application/at+jwt")),
		"typ upper case":           iss.Token(verifytest.Header("typ", "AT+JWT")),
		"fractional exp":           iss.Token(verifytest.Claim("exp", float64(now)+600.5)),
		"no nbf":                   iss.Token(verifytest.NoClaim("nbf")),
		"expired within leeway":    iss.Token(verifytest.TTL(-10 * time.Second)),
		"nbf in leeway":            iss.Token(verifytest.Claim("nbf", now+10)),
		"iat in leeway":            iss.Token(verifytest.Claim("iat", now+10)),
		"unknown header parameter": iss.Token(verifytest.Header("x-trace", "abc")),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) { mustVerify(t, v, tok) })
	}
}

func TestVerifyLeewayBoundaries(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithLeeway(5*time.Second), WithCacheSize(0))
	tok := iss.Token(verifytest.TTL(time.Minute))
	clock.Advance(time.Minute + 4*time.Second)
	mustVerify(t, v, tok)
	clock.Advance(time.Second) // exactly exp + leeway: expired
	_, err := v.Verify(context.Background(), tok)
	wantKind(t, err, ErrExpired)
}

// attackKinds is the error each verifytest attack must be refused with. A new attack without
// an entry here fails the test, so the table cannot silently grow unchecked.
var attackKinds = map[string]error{
	"alg none":                                    ErrAlgorithm,
	"alg none without signature part":             ErrMalformed,
	"alg NONE uppercase":                          ErrAlgorithm,
	"stripped signature":                          ErrSignature,
	"swapped payload (scope escalation)":          ErrSignature,
	"unknown kid":                                 ErrUnknownKey,
	"kid path traversal":                          ErrUnknownKey,
	"kid absent":                                  ErrUnknownKey,
	"HS256 keyed with the public key PEM":         ErrAlgorithm,
	"HS256 keyed with the public key DER":         ErrAlgorithm,
	"HS256 keyed with the public JWK JSON":        ErrAlgorithm,
	"HS256 keyed with the raw public key":         ErrAlgorithm,
	"embedded jwk (attacker key)":                 ErrHeader,
	"embedded jwk with real kid":                  ErrHeader,
	"embedded jwk: the trusted key, signed by it": ErrHeader,
	"jku (attacker key set)":                      ErrHeader,
	"x5u (attacker certificate URL)":              ErrHeader,
	"x5c (attacker certificate)":                  ErrHeader,
	"jku signed by the trusted key":               ErrHeader,
	"attacker key with real kid":                  ErrSignature,
	"b64 signed by the trusted key":               ErrHeader,
	"JWE zip in a JWS signed by the trusted key":  ErrHeader,
	"JWE enc in a JWS signed by the trusted key":  ErrHeader,
	"unknown crit":                                ErrHeader,
	"typ JWT":                                     ErrType,
	"typ absent":                                  ErrType,
	"alg does not fit the key":                    ErrAlgorithm,
	"wrong iss":                                   ErrIssuer,
	"wrong aud":                                   ErrAudience,
	"expired":                                     ErrExpired,
	"nbf in the future":                           ErrNotYetValid,
	"iat in the future":                           ErrNotYetValid,
	"exp absent":                                  ErrClaims,
	"300 KB token":                                ErrMalformed,
	"JWE (5 parts)":                               ErrMalformed,
	"JWS JSON serialization":                      ErrMalformed,
	"whitespace inside token":                     ErrMalformed,
	"garbage":                                     ErrMalformed,
	"empty":                                       ErrMalformed,
	"non-canonical base64 signature":              ErrMalformed,
}

// TestAttackTokensRefused runs the attack table against both constructors and every key
// type, twice each (the second pass goes through the cache lookup).
func TestAttackTokensRefused(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		clock := newFakeClock()
		iss := newIssuer(t, clock, verifytest.WithAlgorithm(alg))
		discovered := testVerifier(t, iss, clock)
		fromSource, err := NewWithKeySource(iss.URL, iss.Audience, iss, WithClock(clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]*Verifier{"New": discovered, "NewWithKeySource": fromSource} {
			t.Run(string(alg)+"/"+name, func(t *testing.T) {
				mustVerify(t, v, iss.Token()) // the verifier works; refusals below are meaningful
				for _, a := range verifytest.AttackTokens(iss) {
					want, ok := attackKinds[a.Name]
					if !ok {
						t.Errorf("attack %q has no expected error in attackKinds", a.Name)
						continue
					}
					for pass := range 2 {
						c, err := v.Verify(context.Background(), a.Token)
						if err == nil {
							t.Errorf("%s (pass %d): accepted, claims %+v", a.Name, pass, c)
							continue
						}
						if !errorsIsKind(err, want) {
							t.Errorf("%s (pass %d): got %v, want %v", a.Name, pass, err, want)
						}
						checkNoTokenInError(t, a, err)
					}
				}
			})
		}
	}
}

func errorsIsKind(err, kind error) bool {
	var e *Error
	return errors.As(err, &e) && errors.Is(e.Kind, kind)
}

// checkNoTokenInError makes sure error messages, which end up in logs, hold no token part.
func checkNoTokenInError(t *testing.T, a verifytest.Attack, err error) {
	t.Helper()
	for _, part := range strings.Split(a.Token, ".") {
		if len(part) >= 16 && strings.Contains(err.Error(), part) {
			t.Errorf("%s: error message contains a token part: %v", a.Name, err)
		}
	}
}

func TestAttackTableCoversEveryExpectation(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	var names []string
	for _, a := range verifytest.AttackTokens(iss) {
		names = append(names, a.Name)
	}
	for name := range attackKinds {
		if !slices.Contains(names, name) {
			t.Errorf("attackKinds has %q but AttackTokens does not build it", name)
		}
	}
}

func TestVerifyRefusesDisallowedAlgorithmEvenWithMatchingKey(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock, verifytest.WithAlgorithm(jose.RS256))
	v := testVerifier(t, iss, clock, WithAllowedAlgorithms("RS256"))
	mustVerify(t, v, iss.Token())
	// A PS256 signature by the same RSA key: the key type fits, but the key's JWK says RS256
	// and PS256 is off the allow-list.
	_, err := v.Verify(context.Background(), iss.Token(verifytest.Header("alg", "PS256")))
	wantKind(t, err, ErrAlgorithm)
}

// TestVerifyBindsAlgorithmToDeclaredKeyAlg: a key published with "alg": "RS256" verifies
// RS256 only, even when PS256 is allowed and the PS256 signature by that key is genuine.
func TestVerifyBindsAlgorithmToDeclaredKeyAlg(t *testing.T) {
	clock := newFakeClock()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t, clock, verifytest.WithSigningKey("rsa", jose.RS256, rsaKey))
	v := testVerifier(t, iss, clock) // default allow-list includes PS256
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "rsa")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: rsaKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(mustJSON(t, iss.Claims()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	wantKind(t, err, ErrAlgorithm)
}

func TestVerifyRefusesSmallRSAKeys(t *testing.T) {
	k := &jose.JSONWebKey{Key: mustSmallRSA(t), KeyID: "k", Algorithm: "RS256"}
	if jws.Fits("RS256", k) {
		t.Fatal("a 1024-bit RSA key was accepted")
	}
}

func TestVerifyRefusesInvalidClaimTypes(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	cases := map[string]verifytest.TokenOption{
		"exp as string":  verifytest.Claim("exp", "1800000000"),
		"exp negative":   verifytest.Claim("exp", -1),
		"exp huge":       verifytest.Claim("exp", 1e300),
		"aud as number":  verifytest.Claim("aud", 42),
		"aud mixed":      verifytest.Claim("aud", []any{"x", 1}),
		"aud empty list": verifytest.Claim("aud", []string{}),
		"iss as array":   verifytest.Claim("iss", []string{iss.URL}),
		"scope as array": verifytest.Claim("scope", []string{"a"}),
		"sub absent":     verifytest.NoClaim("sub"),
		"client_id gone": verifytest.NoClaim("client_id"),
		"jti absent":     verifytest.NoClaim("jti"),
		"iat absent":     verifytest.NoClaim("iat"),
	}
	for name, opt := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), iss.Token(opt))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errorsIsKind(err, ErrClaims) && !errorsIsKind(err, ErrIssuer) {
				t.Fatalf("got %v, want ErrClaims", err)
			}
		})
	}
}

// TestClaimNamesAreCaseSensitive guards against a custom claim "Scope" overriding "scope",
// which encoding/json's case-insensitive matching would allow.
func TestClaimNamesAreCaseSensitive(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	c := mustVerify(t, v, iss.Token(verifytest.Claim("Scope", "admin:*"), verifytest.Claim("ISS", "x")))
	if c.HasScope("admin:delete") || !c.HasScope("invoices:read") {
		t.Fatalf("scopes = %v", c.Scopes)
	}
	if c.Extra["Scope"] != "admin:*" {
		t.Fatalf("Extra = %v", c.Extra)
	}
}

func TestDuplicateMembersRefused(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	kid := iss.SigningKeyID()
	payload := string(mustJSON(t, iss.Claims()))
	dupClaims := strings.TrimSuffix(payload, "}") + `,"scope":"admin:*"}`
	dupHeader := fmt.Sprintf(`{"alg":"ES256","typ":"at+jwt","kid":%q,"kid":"other"}`, kid)
	for name, tok := range map[string]string{
		"claims": iss.SignJWS(kid, map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": kid}, []byte(dupClaims)),
		"header": iss.SignJWS(kid, []byte(dupHeader), iss.Claims()),
	} {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Errorf("%s with a duplicate member: accepted", name)
		}
	}
}

func TestVerifyRefusesOversizedTokenBeforeParsing(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithMaxTokenSize(1024))
	tok := iss.Token(verifytest.Claim("pad", strings.Repeat("x", 2000)))
	_, err := v.Verify(context.Background(), tok)
	wantKind(t, err, ErrMalformed)
	if !strings.Contains(err.Error(), "larger than 1024") {
		t.Fatalf("got %v", err)
	}
}
