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

package authz_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// apiURL is the original request's URL as the gateway reports it (scheme, host, path).
const apiURL = "https://billing.example.com/invoices/42"

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

// boundToken mints a token bound to s's key (cnf.jkt), as the token server does for DPoP.
func boundToken(iss *verifytest.Issuer, s *dpop.Signer, opts ...verifytest.TokenOption) string {
	return iss.Token(append([]verifytest.TokenOption{verifytest.Claim("cnf", map[string]any{"jkt": s.Thumbprint()})}, opts...)...)
}

func proofFor(t *testing.T, s *dpop.Signer, method, url, token string) string {
	t.Helper()
	p, err := s.Proof(method, url, token, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dpopRequest is GET https://billing.example.com/invoices/42?page=2 as a gateway reports it.
func dpopRequest(auth string, proofs ...string) *authz.Request {
	return &authz.Request{Method: "GET", URI: "/invoices/42?page=2", Host: "billing.example.com", Scheme: "https",
		Authorization: []string{auth}, DPoP: proofs}
}

const dpopChallenge = `DPoP realm="billing.billing"`

func TestDecideDPoP(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	s, thief := newDPoPSigner(t), newDPoPSigner(t)
	tok := boundToken(iss, s, verifytest.Scope("invoices:read"))
	bearerTok := iss.Token(verifytest.Scope("invoices:read"))
	replayed := proofFor(t, s, "GET", apiURL, tok)
	if dec := d.Decide(context.Background(), dpopRequest("DPoP "+tok, replayed)); dec.Outcome != authz.Allow {
		t.Fatalf("first use of a proof: %v %q", dec.Outcome, dec.Challenge)
	}
	for _, tc := range []struct {
		name      string
		req       *authz.Request
		want      authz.Outcome
		status    int
		challenge string
	}{
		{"bound token with its proof", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", apiURL, tok)), authz.Allow, 200, ""},
		{"proof URL default port, query ignored", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", "https://billing.example.com:443/invoices/42?x=1", tok)), authz.Allow, 200, ""},
		{"bound token as Bearer", dpopRequest("Bearer " + tok), authz.InvalidToken, 401, `Bearer realm="billing.billing", error="invalid_token"`},
		{"proof for another URL", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", "https://billing.example.com/admin", tok)), authz.InvalidToken, 401, dpopChallenge + `, error="invalid_dpop_proof"`},
		{"proof for another host", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", "https://evil.example.com/invoices/42", tok)), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"proof for http, request https", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", "http://billing.example.com/invoices/42", tok)), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"proof for another method", dpopRequest("DPoP "+tok, proofFor(t, s, "POST", apiURL, tok)), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"replayed proof", dpopRequest("DPoP "+tok, replayed), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"proof by another key", dpopRequest("DPoP "+tok, proofFor(t, thief, "GET", apiURL, tok)), authz.InvalidToken, 401, dpopChallenge + `, error="invalid_token"`},
		{"proof for another token", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", apiURL, bearerTok)), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"no proof", dpopRequest("DPoP " + tok), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"two proofs", dpopRequest("DPoP "+tok, proofFor(t, s, "GET", apiURL, tok), proofFor(t, s, "GET", apiURL, tok)), authz.InvalidToken, 401, `error="invalid_dpop_proof"`},
		{"unbound token as DPoP", dpopRequest("DPoP "+bearerTok, proofFor(t, s, "GET", apiURL, bearerTok)), authz.InvalidToken, 401, `error="invalid_token"`},
		{"empty DPoP credentials", dpopRequest("DPoP ", "x"), authz.BadRequest, 401, `error="invalid_request"`},
		{"scope missing, DPoP challenge", &authz.Request{Method: "POST", URI: "/invoices", Host: "billing.example.com", Scheme: "https",
			Authorization: []string{"DPoP " + tok}, DPoP: []string{proofFor(t, s, "POST", "https://billing.example.com/invoices", tok)}},
			authz.InsufficientScope, 403, dpopChallenge + `, error="insufficient_scope", scope="invoices:read invoices:write", algs="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := d.Decide(context.Background(), tc.req)
			if dec.Outcome != tc.want || dec.Status != tc.status || !strings.Contains(dec.Challenge, tc.challenge) {
				t.Fatalf("got %v %d %q, want %v %d containing %q", dec.Outcome, dec.Status, dec.Challenge, tc.want, tc.status, tc.challenge)
			}
			if tc.want != authz.Allow && strings.HasPrefix(tc.req.Authorization[0], "DPoP") &&
				!strings.Contains(dec.Challenge, `algs="`+strings.Join(dpop.DefaultAlgorithms, " ")+`"`) {
				t.Fatalf("a DPoP denial names no algs: %q", dec.Challenge)
			}
			if tc.want == authz.Allow && dec.Claims.JKT != s.Thumbprint() {
				t.Fatalf("claims of the bound token: %+v", dec.Claims)
			}
		})
	}
}

// An audience whose policy requires bound tokens refuses a Bearer token, even a valid
// unbound one, and challenges with DPoP only; the bound token with its proof passes.
func TestDecideBindingRequired(t *testing.T) {
	p := policy("billing", time.Now(), "", billingRoutes...)
	p.Spec.TokenBinding = authv1alpha1.TokenBindingRequired
	d, iss := newDecider(t, p)
	s := newDPoPSigner(t)
	tok := boundToken(iss, s, verifytest.Scope("invoices:read"))
	bearerReq := dpopRequest("Bearer " + iss.Token(verifytest.Scope("invoices:read")))
	if dec := d.Decide(context.Background(), bearerReq); dec.Outcome != authz.InvalidToken || dec.Status != 401 ||
		!strings.HasPrefix(dec.Challenge, dpopChallenge+`, error="invalid_token"`) {
		t.Fatalf("bearer token for a Required audience: %v %d %q", dec.Outcome, dec.Status, dec.Challenge)
	}
	noToken := dpopRequest("")
	noToken.Authorization = nil
	if dec := d.Decide(context.Background(), noToken); dec.Outcome != authz.NoToken || !strings.HasPrefix(dec.Challenge, dpopChallenge+`, algs=`) {
		t.Fatalf("no token for a Required audience: %v %q", dec.Outcome, dec.Challenge)
	}
	if dec := d.Decide(context.Background(), dpopRequest("DPoP "+tok, proofFor(t, s, "GET", apiURL, tok))); dec.Outcome != authz.Allow {
		t.Fatalf("bound token with its proof: %v %q", dec.Outcome, dec.Challenge)
	}
}

// ext_authz checks the proof against the method, scheme, host and path Envoy reports.
func TestExtAuthzDPoP(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	ext := extAuthzClient(t, d)
	s := newDPoPSigner(t)
	tok := boundToken(iss, s, verifytest.Scope("invoices:read"))
	check := func(scheme, auth, proof string) (int32, string) {
		t.Helper()
		headers := map[string]string{"x-m2m-audience": aud, "authorization": auth}
		if proof != "" {
			headers["dpop"] = proof
		}
		res, err := ext.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Scheme: scheme, Host: "billing.example.com", Path: "/invoices/42?page=2", Headers: headers,
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if ok := res.GetOkResponse(); ok != nil {
			return 200, ""
		}
		den := res.GetDeniedResponse()
		for _, h := range den.GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				return int32(den.GetStatus().GetCode()), h.GetHeader().GetValue()
			}
		}
		return int32(den.GetStatus().GetCode()), ""
	}
	proof := proofFor(t, s, "GET", apiURL, tok)
	if code, ch := check("https", "DPoP "+tok, proof); code != 200 {
		t.Fatalf("bound token with its proof: %d %q", code, ch)
	}
	algs := `algs="` + strings.Join(dpop.DefaultAlgorithms, " ") + `"`
	for _, tc := range []struct {
		name, scheme, auth, proof, challenge string
	}{
		{"replayed proof", "https", "DPoP " + tok, proof, dpopChallenge + `, error="invalid_dpop_proof"`},
		{"proof for https, Envoy saw http", "http", "DPoP " + tok, proofFor(t, s, "GET", apiURL, tok), `error="invalid_dpop_proof"`},
		{"no proof", "https", "DPoP " + tok, "", `error="invalid_dpop_proof"`},
		{"bound token as Bearer", "https", "Bearer " + tok, "", `Bearer realm="billing.billing", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ch := check(tc.scheme, tc.auth, tc.proof)
			if code != 401 || !strings.Contains(ch, tc.challenge) {
				t.Fatalf("got %d %q, want 401 with %q", code, ch, tc.challenge)
			}
			if strings.HasPrefix(tc.auth, "DPoP") && !strings.HasSuffix(ch, algs) {
				t.Fatalf("DPoP denial without %s: %q", algs, ch)
			}
		})
	}
}

// Forward-auth checks the proof against the original request as nginx (X-Original-*) or
// Traefik and Caddy (X-Forwarded-*) report it, with the host and proto the gateway sets, and
// answers a DPoP denial with a DPoP challenge.
func TestForwardAuthDPoP(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	h := authz.ForwardAuth(d, "X-M2M-Audience")
	s := newDPoPSigner(t)
	tok := boundToken(iss, s, verifytest.Scope("invoices:read"))
	nginx := map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/invoices/42?page=2", "X-Forwarded-Host": "billing.example.com", "X-Forwarded-Proto": "https"}
	traefik := map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/invoices/42?page=2", "X-Forwarded-Host": "billing.example.com:443", "X-Forwarded-Proto": "https"}
	plainHTTP := map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/invoices/42", "X-Forwarded-Host": "billing.example.com", "X-Forwarded-Proto": "http"}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		proof   string
		status  int
	}{
		{"nginx", nginx, proofFor(t, s, "GET", apiURL, tok), 200},
		{"traefik/caddy", traefik, proofFor(t, s, "GET", apiURL, tok), 200},
		{"gateway saw http", plainHTTP, proofFor(t, s, "GET", apiURL, tok), 401},
		{"proof for another method", nginx, proofFor(t, s, "DELETE", apiURL, tok), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The request to m2m authz itself has its own Host: only the gateway's headers count.
			r := httptest.NewRequest(http.MethodGet, "http://authz.internal/auth", nil)
			r.Header.Set("Authorization", "DPoP "+tok)
			r.Header.Set("DPoP", tc.proof)
			r.Header.Set("X-M2M-Audience", aud)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Header().Get("WWW-Authenticate"))
			}
			if tc.status != 200 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), dpopChallenge+`, error="invalid_dpop_proof"`) {
				t.Fatalf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}
