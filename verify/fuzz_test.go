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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const (
	fuzzIssuer   = "https://issuer.fuzz.example"
	fuzzAudience = "billing.billing"
	fuzzKeyID    = "fuzz-key"
)

// fuzzNow is the fixed clock of the fuzz verifier; the committed seeds are valid at it.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fuzzKey is a fixed P-256 key, so that committed seed tokens keep verifying.
func fuzzKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	scalar := sha256.Sum256([]byte("m2m verify fuzz key"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func fuzzSetup(tb testing.TB) (*Verifier, *verifytest.Issuer) {
	tb.Helper()
	now := func() time.Time { return fuzzNow }
	iss := verifytest.NewIssuer(tb,
		verifytest.WithSigningKey(fuzzKeyID, jose.ES256, fuzzKey(tb)),
		verifytest.WithIssuerURL(fuzzIssuer), verifytest.WithAudience(fuzzAudience),
		verifytest.WithClock(now))
	v, err := NewWithKeySource(fuzzIssuer, fuzzAudience, iss, WithClock(now))
	if err != nil {
		tb.Fatal(err)
	}
	return v, iss
}

var knownKinds = []error{ErrMalformed, ErrHeader, ErrAlgorithm, ErrType, ErrUnknownKey, ErrSignature,
	ErrClaims, ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid}

// FuzzVerify feeds arbitrary tokens to Verify. Every refusal must be a typed *Error; every
// acceptance must satisfy, checked independently of the verifier's own code: a canonical
// compact JWS whose header (read with encoding/json) is ES256, at+jwt, our kid and free of
// jwk/jku/x5u/x5c/crit; a signature that bare go-jose accepts with the trusted key; and
// claims within the issuer, audience and time rules. The cache must agree with the full check.
func FuzzVerify(f *testing.F) {
	v, iss := fuzzSetup(f)
	f.Add(iss.Token())
	f.Add(iss.Token(verifytest.Claim("aud", []string{"x", fuzzAudience}), verifytest.Claim("team", "a\u00e9\\\"")))
	for _, a := range verifytest.AttackTokens(iss) {
		if len(a.Token) <= DefaultMaxTokenSize {
			f.Add(a.Token)
		}
	}
	trusted, _ := iss.Key(fuzzKeyID)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			checkRefusal(t, c, err)
			return
		}
		checkAcceptance(t, token, c, trusted)
		again, err := v.Verify(context.Background(), token)
		if err != nil || again != c {
			t.Fatalf("second verification differs: %v", err)
		}
	})
}

func checkRefusal(t *testing.T, c *Claims, err error) {
	if c != nil {
		t.Fatal("claims returned with an error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("untyped error %T: %v", err, err)
	}
	for _, k := range knownKinds {
		if errors.Is(e.Kind, k) {
			return
		}
	}
	t.Fatalf("unknown error kind %v", e.Kind)
}

func checkAcceptance(t *testing.T, token string, c *Claims, trusted *jose.JSONWebKey) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > DefaultMaxTokenSize {
		t.Fatalf("accepted a token of %d parts, %d bytes", len(parts), len(token))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		t.Fatalf("accepted a non-canonical header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("accepted a header encoding/json rejects: %v", err)
	}
	for _, forbidden := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
		if _, ok := h[forbidden]; ok {
			t.Fatalf("accepted a header with %q", forbidden)
		}
	}
	typ, _ := h["typ"].(string)
	if h["alg"] != "ES256" || h["kid"] != fuzzKeyID || !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "at+jwt") {
		t.Fatalf("accepted header %v", h)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("go-jose cannot parse an accepted token: %v", err)
	}
	if _, err := jws.Verify(trusted.Key); err != nil {
		t.Fatalf("go-jose refuses the signature of an accepted token: %v", err)
	}
	late := fuzzNow.Add(DefaultLeeway)
	switch {
	case c.Issuer != fuzzIssuer, !slices.Contains(c.Audience, fuzzAudience):
		t.Fatalf("accepted iss %q aud %v", c.Issuer, c.Audience)
	case !fuzzNow.Before(c.Expiry.Add(DefaultLeeway)), c.NotBefore.After(late), c.IssuedAt.After(late):
		t.Fatalf("accepted times exp %v nbf %v iat %v", c.Expiry, c.NotBefore, c.IssuedAt)
	case c.ClientID == "", c.Subject == "", c.JTI == "":
		t.Fatalf("accepted claims without identity: %+v", c)
	}
}

// TestCommittedSeedsStillVerify keeps the committed corpus meaningful: its valid seeds must be
// accepted by the fuzz verifier, so fuzzing starts from the acceptance path too.
func TestCommittedSeedsStillVerify(t *testing.T) {
	v, _ := fuzzSetup(t)
	for _, name := range []string{"valid", "valid-aud-array"} {
		data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		quoted := strings.TrimSuffix(strings.TrimPrefix(lines[len(lines)-1], "string("), ")")
		token, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Errorf("committed seed %s no longer verifies: %v", name, err)
		}
	}
}

// FuzzRevocationList feeds hostile bytes to the revocation list's decoder (the payload, after
// the signature has verified) and to the JWS parser the list goes through first: no input may
// panic, and a list the decoder accepts revokes only what it names.
func FuzzRevocationList(f *testing.F) {
	now := fuzzNow.Unix()
	f.Add([]byte(`{"iss":"` + fuzzIssuer + `","iat":` + strconv.FormatInt(now, 10) + `,"exp":` + strconv.FormatInt(now+300, 10) +
		`,"revoked":{"m2mc_a":{"not_before":` + strconv.FormatInt(now, 10) + `},"m2mc_b":{"disabled":true},"m2mc_c":{"audiences":{"` + fuzzAudience + `":5}}}}`))
	f.Add([]byte(`{"iss":"` + fuzzIssuer + `","iat":1,"exp":1e30,"revoked":{"":{"not_before":-1}}}`))
	f.Add([]byte(`{"iss":"` + fuzzIssuer + `","iat":1,"exp":2,"revoked":null,"revoked":{}}`))
	f.Add([]byte(`eyJhbGciOiJFUzI1NiJ9.e30.AAAA`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = jws.Parse(string(data))
		set, err := decodeRevocationList(data, fuzzIssuer, fuzzAudience, fuzzNow, DefaultLeeway)
		if err != nil {
			wantKindFuzz(t, err)
			return
		}
		for id, nb := range set.clients {
			if id == "" || len(id) > maxClientIDLen || nb <= 0 {
				t.Fatalf("accepted entry %q: %d", id, nb)
			}
		}
	})
}

func wantKindFuzz(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrRevocationList) {
		t.Fatalf("decoder error %v is not ErrRevocationList", err)
	}
}
