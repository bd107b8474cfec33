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
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const (
	clientA = "m2mc_a000000000000000000000000000"
	clientB = "m2mc_b000000000000000000000000000"
)

// revocationVerifier is a verifier with the revocation list whose background refresh is too
// slow to run during a test: the tests refresh explicitly.
func revocationVerifier(t *testing.T, iss *verifytest.Issuer, clock *fakeClock, opts ...Option) *Verifier {
	t.Helper()
	base := []Option{WithRevocationList(), WithRevocationRefresh(time.Minute), WithRevocationStaleness(5 * time.Minute)}
	v := testVerifier(t, iss, clock, append(base, opts...)...)
	t.Cleanup(v.Close)
	return v
}

func refreshList(t *testing.T, v *Verifier) error {
	t.Helper()
	return v.revocations.refresh(context.Background())
}

func tokenOf(iss *verifytest.Issuer, clientID string) string {
	return iss.Token(verifytest.Claim("sub", clientID), verifytest.Claim("client_id", clientID))
}

func TestRevocationListRefusesRevokedClientsOnly(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := revocationVerifier(t, iss, clock)
	a, b := tokenOf(iss, clientA), tokenOf(iss, clientB)
	mustVerify(t, v, a) // cached from now on: the revocation must reach the cache too
	mustVerify(t, v, b)

	iss.RevokeTokens(clientA, clock.Now().Unix()+1)
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), a)
	wantKind(t, err, ErrRevoked)
	mustVerify(t, v, b)

	clock.Advance(time.Second) // a token issued at the not-before time is valid
	mustVerify(t, v, tokenOf(iss, clientA))
}

func TestRevocationListPerAudienceAndDisabled(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := revocationVerifier(t, iss, clock)
	nb := clock.Now().Unix() + 1
	iss.RevokeAudience(clientA, iss.Audience, nb)
	iss.RevokeAudience(clientB, "other.audience", nb) // not this verifier's audience
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), tokenOf(iss, clientA))
	wantKind(t, err, ErrRevoked)
	mustVerify(t, v, tokenOf(iss, clientB))

	iss.DisableClient(clientB)
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // a disabled client's tokens die whenever they were issued
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tokenOf(iss, clientB))
	wantKind(t, err, ErrRevoked)
}

func TestRevocationListStalePolicy(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		t.Run(map[bool]string{false: "fail closed", true: "fail open"}[failOpen], func(t *testing.T) {
			clock := newFakeClock()
			iss := newIssuer(t, clock)
			opts := []Option{}
			if failOpen {
				opts = append(opts, WithRevocationFailOpen())
			}
			v := revocationVerifier(t, iss, clock, opts...)
			a := tokenOf(iss, clientA)
			iss.RevokeTokens(clientA, clock.Now().Unix()+1)
			if err := refreshList(t, v); err != nil {
				t.Fatal(err)
			}
			clock.Advance(4 * time.Minute)
			b := tokenOf(iss, clientB)
			if err := refreshList(t, v); err != nil { // unchanged: 304 confirms freshness
				t.Fatal(err)
			}
			clock.Advance(4 * time.Minute)
			mustVerify(t, v, b) // 8 min after the 200, 4 after the 304

			iss.FailRevocations(http.StatusServiceUnavailable)
			if err := refreshList(t, v); err == nil {
				t.Fatal("a refresh answered 503 succeeded")
			}
			clock.Advance(2 * time.Minute) // 6 min since the last good fetch
			_, err := v.Verify(context.Background(), b)
			if failOpen {
				if err != nil {
					t.Fatalf("fail open: %v", err)
				}
			} else {
				wantKind(t, err, ErrRevocationList)
			}
			_, err = v.Verify(context.Background(), a)
			if failOpen {
				wantKind(t, err, ErrRevoked) // still the last list's revocations
			}
		})
	}
}

func TestRevocationListForgeriesAreRefused(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	foreign := newIssuer(t, clock, verifytest.WithIssuerURL(iss.URL)) // same iss, its own key
	foreign.RevokeTokens(clientB, clock.Now().Unix()+1)
	v := revocationVerifier(t, iss, clock)
	iss.RevokeTokens(clientA, clock.Now().Unix()+1)
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	forgeries := map[string]func(list string) string{
		// The payload swapped for one that revokes nothing, the signature kept.
		"bad signature": func(list string) string {
			parts := strings.Split(list, ".")
			other, _ := newIssuer(t, clock, verifytest.WithIssuerURL(iss.URL)).RevocationList()
			return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
		},
		"foreign key": func(string) string { l, _ := foreign.RevocationList(); return l },
		"access token as list": func(string) string {
			return iss.Token()
		},
		"not a JWS": func(string) string { return `{"revoked":{}}` },
		"expired": func(string) string {
			return iss.SignJWS(iss.SigningKeyID(), map[string]any{"typ": verifytest.RevocationListType, "kid": iss.SigningKeyID(), "alg": "ES256"},
				map[string]any{"iss": iss.URL, "iat": clock.Now().Unix() - 3600, "exp": clock.Now().Unix() - 600, "revoked": map[string]any{}})
		},
		"wrong issuer": func(string) string {
			return iss.SignJWS(iss.SigningKeyID(), map[string]any{"typ": verifytest.RevocationListType, "kid": iss.SigningKeyID(), "alg": "ES256"},
				map[string]any{"iss": "https://other.example", "iat": clock.Now().Unix(), "exp": clock.Now().Unix() + 60, "revoked": map[string]any{}})
		},
		"older than the list held": func(string) string {
			return iss.SignJWS(iss.SigningKeyID(), map[string]any{"typ": verifytest.RevocationListType, "kid": iss.SigningKeyID(), "alg": "ES256"},
				map[string]any{"iss": iss.URL, "iat": clock.Now().Unix() - 10, "exp": clock.Now().Unix() + 60, "revoked": map[string]any{}})
		},
	}
	for name, forge := range forgeries {
		iss.OverrideRevocationList(forge)
		err := refreshList(t, v)
		wantKind(t, err, ErrRevocationList)
		if _, err := v.Verify(context.Background(), tokenOf(iss, clientA)); err == nil {
			t.Fatalf("%s: a forged list un-revoked client A", name)
		}
		if _, err := v.Verify(context.Background(), tokenOf(iss, clientB)); err != nil {
			t.Fatalf("%s: a forged list revoked client B: %v", name, err)
		}
	}
}

func TestRevocationListRefreshesInTheBackground(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	v, err := New(context.Background(), iss.URL, iss.Audience, WithHTTPClient(iss.Client()),
		WithRevocationList(), WithRevocationRefresh(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a := tokenOf(iss, clientA)
	if _, err := v.Verify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	iss.RevokeTokens(clientA, time.Now().Unix()+1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), a)
		if err != nil {
			wantKind(t, err, ErrRevoked)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the revocation never reached the verifier")
		}
		time.Sleep(10 * time.Millisecond) // polling, as Eventually does
	}
}

func TestRevocationListFirstFetch(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	iss.FailRevocations(http.StatusInternalServerError)
	_, err := New(context.Background(), iss.URL, iss.Audience, WithHTTPClient(iss.Client()), WithRevocationList())
	wantKind(t, err, ErrRevocationList)

	v, err := New(context.Background(), iss.URL, iss.Audience, WithHTTPClient(iss.Client()), WithRevocationList(), WithRevocationFailOpen())
	if err != nil {
		t.Fatalf("fail open: %v", err)
	}
	defer v.Close()
	if _, err := v.Verify(context.Background(), tokenOf(iss, clientA)); err != nil {
		t.Fatalf("fail open without any list: %v", err)
	}
}

// A verifier of any audience (m2m authz) applies a per-audience revocation to the tokens that
// name that audience, and the client-wide one to all of the client's tokens.
func TestRevocationListAnyAudience(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := revocationVerifier(t, iss, clock, WithAnyAudience())
	forAud := func(client, aud string) string {
		return iss.Token(verifytest.Claim("sub", client), verifytest.Claim("client_id", client), verifytest.Claim("aud", aud))
	}
	aA, aOther, bA := forAud(clientA, iss.Audience), forAud(clientA, "other.audience"), forAud(clientB, iss.Audience)
	nb := clock.Now().Unix() + 1
	iss.RevokeAudience(clientA, iss.Audience, nb)
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), aA)
	wantKind(t, err, ErrRevoked)
	mustVerify(t, v, aOther)
	mustVerify(t, v, bA)

	iss.RevokeTokens(clientB, nb)
	if err := refreshList(t, v); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), bA)
	wantKind(t, err, ErrRevoked)
	mustVerify(t, v, aOther)
}
