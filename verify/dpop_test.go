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
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// apiURL is where the test requests go (httptest.NewRequest's host).
const apiURL = "http://example.com/invoices"

func newDPoPSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// boundToken mints a token bound to s's key.
func boundToken(iss *verifytest.Issuer, s *dpop.Signer, opts ...verifytest.TokenOption) string {
	return iss.Token(append([]verifytest.TokenOption{verifytest.Claim("cnf", map[string]any{"jkt": s.Thumbprint()})}, opts...)...)
}

func signProof(t *testing.T, s *dpop.Signer, method, url, token, nonce string, now time.Time) string {
	t.Helper()
	p, err := s.Proof(method, url, token, nonce, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type dpopCall struct {
	method string
	auth   []string
	proofs []string
}

func serve(h http.Handler, c dpopCall) *httptest.ResponseRecorder {
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req := httptest.NewRequest(method, "/invoices?page=2", nil)
	for _, a := range c.auth {
		req.Header.Add("Authorization", a)
	}
	for _, p := range c.proofs {
		req.Header.Add("DPoP", p)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestDPoPMiddleware is the resource-server attack table: a bound token is admitted only with
// a fresh proof by its key for this method and URL; everything else gets the RFC 9449 §7.1
// challenge it deserves.
func TestDPoPMiddleware(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	var seen *Claims
	h := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
	}))
	s, thief := newDPoPSigner(t), newDPoPSigner(t)
	tok := boundToken(iss, s)
	now := clock.Now()
	good := func() string { return signProof(t, s, "GET", apiURL, tok, "", now) }
	replayed := good()
	if rec := serve(h, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{replayed}}); rec.Code != 200 || seen == nil || seen.JKT != s.Thumbprint() {
		t.Fatalf("valid DPoP request: %d %q, claims %+v", rec.Code, rec.Header().Get("WWW-Authenticate"), seen)
	}
	algs := `algs="` + strings.Join(dpop.DefaultAlgorithms, " ") + `"`
	realm := `realm="` + iss.Audience + `", `
	dpopChal := func(code, desc string) string {
		return `DPoP ` + realm + `error="` + code + `", error_description="` + desc + `", ` + algs
	}
	const (
		badProof   = "the DPoP proof is invalid for this request"
		badBinding = "the access token's binding does not match the request: a DPoP-bound token needs the DPoP scheme and a proof by its key"
	)
	cases := []struct {
		name   string
		call   dpopCall
		status int
		chal   string
	}{
		{"stolen token presented as Bearer", dpopCall{auth: []string{"Bearer " + tok}}, 401,
			`Bearer ` + realm + `error="invalid_token", error_description="` + badBinding + `"`},
		{"stolen token, proof by the thief's key", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, thief, "GET", apiURL, tok, "", now)}}, 401,
			dpopChal("invalid_token", badBinding)},
		{"no proof", dpopCall{auth: []string{"DPoP " + tok}}, 401, dpopChal("invalid_dpop_proof", "exactly one DPoP proof header is required")},
		{"two proofs", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{good(), good()}}, 401, dpopChal("invalid_dpop_proof", "exactly one DPoP proof header is required")},
		{"replayed proof", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{replayed}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"proof for another method", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "POST", apiURL, tok, "", now)}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"proof for another URL", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", "http://example.com/payments", tok, "", now)}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"proof for another host", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", "http://other.example/invoices", tok, "", now)}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"proof for another token (ath)", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, "other", "", now)}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"proof without ath", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, "", "", now)}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"stale proof", dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, tok, "", now.Add(-2*dpop.DefaultWindow))}}, 401, dpopChal("invalid_dpop_proof", badProof)},
		{"unbound token with the DPoP scheme", dpopCall{auth: []string{"DPoP " + iss.Token()}, proofs: []string{good()}}, 401, dpopChal("invalid_token", badBinding)},
		{"empty DPoP credentials", dpopCall{auth: []string{"DPoP "}}, 400, `DPoP ` + realm + `error="invalid_request", error_description="malformed DPoP credentials", ` + algs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			rec := serve(h, c.call)
			if rec.Code != c.status || seen != nil {
				t.Fatalf("status %d, want %d (claims %v)", rec.Code, c.status, seen)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != c.chal {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, c.chal)
			}
		})
	}
	// A bound token with too few scopes is 403 under the DPoP scheme.
	narrow := boundToken(iss, s, verifytest.Scope("payments:read"))
	rec := serve(h, dpopCall{auth: []string{"DPoP " + narrow}, proofs: []string{signProof(t, s, "GET", apiURL, narrow, "", now)}})
	if rec.Code != 403 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `DPoP `+realm+`error="insufficient_scope"`) {
		t.Fatalf("insufficient scope: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Without credentials both schemes are offered.
	rec = serve(h, dpopCall{})
	if got := rec.Header().Values("WWW-Authenticate"); len(got) != 2 || got[1] != "DPoP "+strings.TrimSuffix(realm, ", ")+", "+algs {
		t.Fatalf("challenges %q", got)
	}
	// Unbound tokens still work as Bearer.
	if rec := serve(h, dpopCall{auth: []string{"Bearer " + iss.Token()}}); rec.Code != 200 {
		t.Fatalf("bearer: %d", rec.Code)
	}
}

// TestVerifyRefusesBoundTokens: the plain Verify never accepts a bound token, whatever the
// caller does with it; WithBoundTokensUnchecked (introspection) does.
func TestVerifyRefusesBoundTokens(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	s := newDPoPSigner(t)
	tok := boundToken(iss, s)
	if _, err := testVerifier(t, iss, clock).Verify(context.Background(), tok); !errors.Is(err, ErrTokenBinding) {
		t.Fatalf("Verify of a bound token: %v", err)
	}
	c, err := testVerifier(t, iss, clock, WithBoundTokensUnchecked()).Verify(context.Background(), tok)
	if err != nil || c.JKT != s.Thumbprint() {
		t.Fatalf("unchecked: %+v %v", c, err)
	}
	for name, cnf := range map[string]any{"not an object": "x", "other method": map[string]any{"x5t#S256": "abc"}, "empty jkt": map[string]any{"jkt": ""}} {
		if _, err := testVerifier(t, iss, clock, WithBoundTokensUnchecked()).Verify(context.Background(), iss.Token(verifytest.Claim("cnf", cnf))); !errors.Is(err, ErrClaims) {
			t.Fatalf("cnf %s: %v", name, err)
		}
	}
}

// TestDPoPModes: WithDPoPRequired refuses bearer tokens; WithoutDPoP is Bearer-only and still
// refuses bound tokens.
func TestDPoPModes(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	s := newDPoPSigner(t)
	tok := boundToken(iss, s)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

	required := testVerifier(t, iss, clock, WithDPoPRequired()).Middleware()(ok)
	if rec := serve(required, dpopCall{auth: []string{"Bearer " + iss.Token()}}); rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "DPoP ") {
		t.Fatalf("required, bearer: %d %q", rec.Code, rec.Header().Values("WWW-Authenticate"))
	}
	if rec := serve(required, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, tok, "", clock.Now())}}); rec.Code != 200 {
		t.Fatalf("required, DPoP: %d", rec.Code)
	}

	off := testVerifier(t, iss, clock, WithoutDPoP()).Middleware()(ok)
	if rec := serve(off, dpopCall{auth: []string{"Bearer " + iss.Token()}}); rec.Code != 200 {
		t.Fatalf("bearer-only, bearer: %d", rec.Code)
	}
	rec := serve(off, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, tok, "", clock.Now())}})
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="`+iss.Audience+`"` || len(rec.Header().Values("WWW-Authenticate")) != 1 {
		t.Fatalf("bearer-only, DPoP: %d %q", rec.Code, rec.Header().Values("WWW-Authenticate"))
	}
	if rec := serve(off, dpopCall{auth: []string{"Bearer " + tok}}); rec.Code != 401 {
		t.Fatalf("bearer-only, bound token as bearer: %d", rec.Code)
	}
}

// TestDPoPNonceAndExternalURL: with resource-server nonces the first proof gets use_dpop_nonce
// and a nonce, the retry passes and gets the next nonce; behind a proxy htu is the external URL.
func TestDPoPNonceAndExternalURL(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	s := newDPoPSigner(t)
	tok := boundToken(iss, s)
	const external = "https://api.example.com/v1"
	nonces := dpop.NewNonces(time.Minute, []byte("a shared nonce key of 32 bytes.."))
	v := testVerifier(t, iss, clock, WithDPoPNonces(nonces), WithExternalURL(external))
	h := v.Middleware()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := external + "/invoices"
	rec := serve(h, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", url, tok, "", clock.Now())}})
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != 401 || nonce == "" || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("without nonce: %d %q nonce %q", rec.Code, rec.Header().Get("WWW-Authenticate"), nonce)
	}
	rec = serve(h, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", url, tok, nonce, clock.Now())}})
	if rec.Code != 200 || rec.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("with nonce: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// The URL the request reached (the proxy's upstream) is not what the client signed.
	rec = serve(h, dpopCall{auth: []string{"DPoP " + tok}, proofs: []string{signProof(t, s, "GET", apiURL, tok, nonce, clock.Now())}})
	if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Fatalf("internal URL: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
