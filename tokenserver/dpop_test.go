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

package tokenserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

const testTokenURL = testIssuer + TokenPath

func newProofSigner(t testing.TB) *dpop.Signer {
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

func proof(t testing.TB, s *dpop.Signer, method, url, nonce string, now time.Time) string {
	t.Helper()
	p, err := s.Proof(method, url, "", nonce, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// craftProof signs a proof with explicit header members (typ, jwk) to break one check.
func craftProof(t *testing.T, key *ecdsa.PrivateKey, extra map[jose.HeaderKey]any, embed bool, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{EmbedJWK: embed, ExtraHeaders: extra}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dpopReq(id, secret string, proofs ...string) *http.Request {
	r := tokenReq(grant(), id, secret)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// tokenJKT returns the cnf.jkt of a token issued by ts ("" when it has none).
func tokenJKT(t *testing.T, ts *testServer, token string) string {
	t.Helper()
	_, _, raw := verifyToken(t, token, ts.jwks(t))
	cnf, _ := raw["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// TestDPoPBindsTheToken: a valid proof gets a DPoP token bound to its key, which introspection
// reports; a request without one still gets a bearer token without cnf.
func TestDPoPBindsTheToken(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	s := newProofSigner(t)
	w := ts.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL, "", testT0)))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	tr := decodeResponse(t, w.Body)
	if tr.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", tr.TokenType)
	}
	if got := tokenJKT(t, ts, tr.AccessToken); got != s.Thumbprint() {
		t.Fatalf("cnf.jkt = %q, want the proof key's thumbprint %q", got, s.Thumbprint())
	}
	in := decodeIntrospection(t, ts.introspect(t, tr.AccessToken, id, secret))
	if !in.Active || in.TokenType != "DPoP" || in.Cnf == nil || in.Cnf.JKT != s.Thumbprint() {
		t.Fatalf("introspection %+v", in)
	}
	bearer := ts.issue(t, grant(), id, secret)
	if bearer.TokenType != "Bearer" || tokenJKT(t, ts, bearer.AccessToken) != "" {
		t.Fatalf("bearer request got %+v", bearer)
	}
	if in := decodeIntrospection(t, ts.introspect(t, bearer.AccessToken, id, secret)); in.TokenType != "Bearer" || in.Cnf != nil {
		t.Fatalf("bearer introspection %+v", in)
	}
}

// TestDPoPProofRefusals: each RFC 9449 §4.3 check, as the token endpoint applies it, answers
// 400 invalid_dpop_proof and issues nothing.
func TestDPoPProofRefusals(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	s := newProofSigner(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())), "htm": "POST", "htu": testTokenURL, "iat": testT0.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	typ := map[jose.HeaderKey]any{"typ": "dpop+jwt"}
	privJWK := map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jose.JSONWebKey{Key: key}}
	replayed := proof(t, s, "POST", testTokenURL, "", testT0)
	if w := ts.do(dpopReq(id, secret, replayed)); w.Code != http.StatusOK {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	cases := map[string][]string{
		"1: two DPoP headers":   {proof(t, s, "POST", testTokenURL, "", testT0), proof(t, s, "POST", testTokenURL, "", testT0)},
		"2: not a JWS":          {"not-a-jwt"},
		"3: no jti":             {craftProof(t, key, typ, true, claims(func(c map[string]any) { delete(c, "jti") }))},
		"4: typ JWT":            {craftProof(t, key, map[jose.HeaderKey]any{"typ": "JWT"}, true, claims(nil))},
		"6: no jwk":             {craftProof(t, key, typ, false, claims(nil))},
		"7: private jwk":        {craftProof(t, key, privJWK, false, claims(nil))},
		"8: htm GET":            {proof(t, s, "GET", testTokenURL, "", testT0)},
		"9: htu from Host":      {proof(t, s, "POST", "http://example.com"+TokenPath, "", testT0)},
		"9: htu other endpoint": {proof(t, s, "POST", testIssuer+IntrospectionPath, "", testT0)},
		"11: iat too old":       {proof(t, s, "POST", testTokenURL, "", testT0.Add(-2*DefaultDPoPProofWindow))},
		"11: iat in the future": {proof(t, s, "POST", testTokenURL, "", testT0.Add(2*DefaultDPoPProofWindow))},
		"12: replayed":          {replayed},
	}
	for name, proofs := range cases {
		t.Run(name, func(t *testing.T) {
			w := ts.do(dpopReq(id, secret, proofs...))
			tr := decodeResponse(t, w.Body)
			if w.Code != http.StatusBadRequest || tr.Error != "invalid_dpop_proof" || tr.AccessToken != "" {
				t.Fatalf("status %d, %+v", w.Code, tr)
			}
		})
	}
	// A proof with a query string in htu still names the endpoint (§4.3 item 9).
	if w := ts.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL+"?x=1", "", testT0))); w.Code != http.StatusOK {
		t.Fatalf("htu with a query: %d %s", w.Code, w.Body)
	}
}

// TestDPoPProofsAreReplayCheckedPerClient: one client's jti does not block another's.
func TestDPoPProofsAreReplayCheckedPerClient(t *testing.T) {
	ts := newTestServer(t)
	a, aSecret := ts.addClient(t)
	b, bSecret := ts.addClient(t)
	p := proof(t, newProofSigner(t), "POST", testTokenURL, "", testT0)
	for _, c := range [][2]string{{a, aSecret}, {b, bSecret}} {
		if w := ts.do(dpopReq(c[0], c[1], p)); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", c[0], w.Code, w.Body)
		}
	}
	if w := ts.do(dpopReq(a, aSecret, p)); w.Code != http.StatusBadRequest {
		t.Fatalf("replay to the same client: %d", w.Code)
	}
}

// TestDPoPNonce: with nonces on, a proof without one gets use_dpop_nonce and a nonce, which
// another replica (same signing keys, no shared state) accepts; a stale one is refused again.
func TestDPoPNonce(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.DPoPNonce = true })
	replica := newTestServer(t, func(o *Options) { o.DPoPNonce = true })
	if err := replica.SetKeys(ts.set); err != nil {
		t.Fatal(err)
	}
	rec, secret := newRecord(t)
	for _, srv := range []*testServer{ts, replica} {
		if err := srv.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
			t.Fatal(err)
		}
	}
	id := rec.ClientID
	s := newProofSigner(t)
	w := ts.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL, "", testT0)))
	tr := decodeResponse(t, w.Body)
	nonce := w.Header().Get("DPoP-Nonce")
	if w.Code != http.StatusBadRequest || tr.Error != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("without a nonce: %d %+v nonce %q", w.Code, tr, nonce)
	}
	if w := ts.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL, "forged", testT0))); w.Code != http.StatusBadRequest || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("forged nonce: %d", w.Code)
	}
	// The replica has its own clock (testT0 too) and the same keys.
	w = replica.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL, nonce, testT0)))
	if w.Code != http.StatusOK || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("nonce from another replica: %d %s", w.Code, w.Body)
	}
	// A bearer request needs no nonce.
	ts.issue(t, grant(), id, secret)
	ts.clock.Add(3 * DefaultDPoPProofWindow)
	later := ts.clock.Now()
	w = ts.do(dpopReq(id, secret, proof(t, s, "POST", testTokenURL, nonce, later)))
	if tr := decodeResponse(t, w.Body); tr.Error != "use_dpop_nonce" {
		t.Fatalf("stale nonce: %d %+v", w.Code, tr)
	}
}

// TestDPoPWithoutNonceOptionIgnoresNonces: a nonce the server never asked for is not checked.
func TestDPoPWithoutNonceOptionIgnoresNonces(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	w := ts.do(dpopReq(id, secret, proof(t, newProofSigner(t), "POST", testTokenURL, "whatever", testT0)))
	if w.Code != http.StatusOK || w.Header().Get("DPoP-Nonce") != "" {
		t.Fatalf("%d %s, DPoP-Nonce %q", w.Code, w.Body, w.Header().Get("DPoP-Nonce"))
	}
}

// TestDPoPProofIsCheckedAfterAuthentication: a bad client secret is invalid_client, whatever the
// proof, so an unauthenticated caller learns nothing about proof checks and fills no replay set.
func TestDPoPProofIsCheckedAfterAuthentication(t *testing.T) {
	ts := newTestServer(t)
	id, _ := ts.addClient(t)
	w := ts.do(dpopReq(id, "m2ms_wrong", "garbage"))
	if tr := decodeResponse(t, w.Body); tr.Error != "invalid_client" {
		t.Fatalf("%d %+v", w.Code, tr)
	}
}

// TestDPoPRequiredByPolicyOrClient: an audience whose policy requires binding, or a client that
// asked for it, gets no bearer token (invalid_request); with a proof both get a bound token.
// The client-side field cannot lift the audience's requirement: the record has no way to say
// "optional" for an audience, only the policy's grant sets it.
func TestDPoPRequiredByPolicyOrClient(t *testing.T) {
	ts := newTestServer(t)
	required := func(r *credential.Record) {
		r.Grants = append(r.Grants, credential.AudienceGrant{Audience: audReports, Scopes: []string{"reports:read"}, TokenBinding: credential.TokenBindingRequired})
	}
	id, secret := ts.addClient(t, required)
	strict, strictSecret := ts.addClient(t, func(r *credential.Record) { r.TokenBinding = credential.TokenBindingDPoP })
	s := newProofSigner(t)
	reports := grant()
	reports.Set("audience", audReports)

	refusals := map[string]*http.Request{
		"audience requires binding": tokenReq(reports, id, secret),
		"client requires binding":   tokenReq(grant(), strict, strictSecret),
	}
	for name, r := range refusals {
		w := ts.do(r)
		tr := decodeResponse(t, w.Body)
		if w.Code != http.StatusBadRequest || tr.Error != "invalid_request" || !strings.Contains(tr.ErrorDescription, "DPoP") {
			t.Fatalf("%s: %d %+v", name, w.Code, tr)
		}
	}
	// The same client's other audience still issues bearer tokens.
	billing := grant()
	billing.Set("audience", audBilling)
	if tr := ts.issue(t, billing, id, secret); tr.TokenType != "Bearer" {
		t.Fatalf("optional audience: %+v", tr)
	}
	for name, r := range map[string]*http.Request{
		"audience requires binding": tokenReq(reports, id, secret),
		"client requires binding":   tokenReq(grant(), strict, strictSecret),
	} {
		r.Header.Set("DPoP", proof(t, s, "POST", testTokenURL, "", testT0))
		w := ts.do(r)
		if tr := decodeResponse(t, w.Body); w.Code != http.StatusOK || tr.TokenType != "DPoP" {
			t.Fatalf("%s with a proof: %d %+v", name, w.Code, tr)
		}
	}
}

// TestReplayCapMakesRoomForProofs: a client within its rate limit that sends an assertion and a
// proof with every request never reaches its cap: the cap is the sum of both windows' caps.
func TestReplayCapMakesRoomForProofs(t *testing.T) {
	d := DefaultOptions()
	withProofs := newReplayLimits(20, 100, d.MaxAssertionLifetime, d.DPoPProofWindow).perClient
	want := replayCap(20, 100, d.MaxAssertionLifetime+assertionLeeway) + replayCap(20, 100, 2*d.DPoPProofWindow)
	if withProofs != want || want != 72700+2500 {
		t.Fatalf("cap %d, want %d", withProofs, want)
	}
}
