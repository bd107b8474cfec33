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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const aud = verifytest.DefaultAudience // billing.billing: bound to namespace billing by name

// policy is a ScopePolicy named billing in namespace ns claiming the audience aud.
func policy(ns string, created time.Time, unmatched authv1alpha1.UnmatchedRoutes, routes ...authv1alpha1.Route) authv1alpha1.ScopePolicy {
	return authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: ns, CreationTimestamp: metav1.NewTime(created)},
		Spec: authv1alpha1.ScopePolicySpec{
			Audience:        aud,
			Scopes:          []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}, {Name: "invoices:write"}},
			Routes:          routes,
			UnmatchedRoutes: unmatched,
		},
	}
}

func rt(prefix string, methods []authv1alpha1.HTTPMethod, scopes ...authv1alpha1.ScopeToken) authv1alpha1.Route {
	return authv1alpha1.Route{PathPrefix: prefix, Methods: methods, Scopes: scopes}
}

var (
	get  = []authv1alpha1.HTTPMethod{"GET", "HEAD"}
	post = []authv1alpha1.HTTPMethod{"POST"}
)

// billingRoutes: reads need invoices:read, writes both scopes, /healthz any valid token.
var billingRoutes = []authv1alpha1.Route{
	rt("/invoices", get, "invoices:read"),
	rt("/invoices", post, "invoices:read", "invoices:write"),
	rt("/healthz", nil),
}

// newDecider is a Decider over a real verifier of a test issuer.
func newDecider(t *testing.T, policies ...authv1alpha1.ScopePolicy) (*authz.Decider, *verifytest.Issuer) {
	t.Helper()
	iss := verifytest.NewIssuer(t)
	v, err := verify.New(context.Background(), iss.URL, "", verify.WithAnyAudience(), verify.WithHTTPClient(iss.Client()))
	if err != nil {
		t.Fatal(err)
	}
	d := authz.NewDecider(v, map[string]string{"billing.example.com": aud})
	d.SetTable(authz.Compile(policies, nil))
	return d, iss
}

func TestDecide(t *testing.T) {
	now := time.Now()
	d, iss := newDecider(t, policy("billing", now, "", billingRoutes...))
	read := "Bearer " + iss.Token(verifytest.Scope("invoices:read"))
	both := "Bearer " + iss.Token(verifytest.Scope("invoices:read invoices:write"))
	wild := "Bearer " + iss.Token(verifytest.Scope("invoices:*"))
	none := "Bearer " + iss.Token(verifytest.Scope(""))
	expired := "Bearer " + iss.Token(verifytest.TTL(-10*time.Minute))
	foreign := "Bearer " + iss.Token(verifytest.Claim("aud", "shipping.shipping"))
	other := "Bearer " + verifytest.NewIssuer(t).Token()
	for _, tc := range []struct {
		name, method, uri, auth string
		want                    authz.Outcome
		status                  int
		challenge               string
	}{
		{"read with invoices:read", "GET", "/invoices/42?x=1", read, authz.Allow, 200, ""},
		{"HEAD listed", "HEAD", "/invoices", read, authz.Allow, 200, ""},
		{"write needs both scopes", "POST", "/invoices", read, authz.InsufficientScope, 403, `error="insufficient_scope", scope="invoices:read invoices:write"`},
		{"write with both", "POST", "/invoices", both, authz.Allow, 200, ""},
		{"a held wildcard satisfies", "POST", "/invoices/1", wild, authz.Allow, 200, ""},
		{"method no route lists", "DELETE", "/invoices/1", both, authz.NoRoute, 403, `error="insufficient_scope"`},
		{"segment prefix only", "GET", "/invoices-archive", both, authz.NoRoute, 403, `error="insufficient_scope"`},
		{"scopes [] takes any valid token", "GET", "/healthz", none, authz.Allow, 200, ""},
		{"path no route covers", "GET", "/admin", both, authz.NoRoute, 403, "no route"},
		{"no token", "GET", "/invoices", "", authz.NoToken, 401, `Bearer realm="billing.billing"`},
		{"other scheme", "GET", "/invoices", "Basic YTpi", authz.NoToken, 401, `Bearer realm="billing.billing"`},
		{"garbage token", "GET", "/invoices", "Bearer not.a.jwt", authz.InvalidToken, 401, `error="invalid_token"`},
		{"expired", "GET", "/invoices", expired, authz.InvalidToken, 401, `error="invalid_token", error_description="the access token expired"`},
		{"another audience's token", "GET", "/invoices", foreign, authz.InvalidToken, 401, "not meant for this audience"},
		{"another issuer's token", "GET", "/invoices", other, authz.InvalidToken, 401, `error="invalid_token"`},
		{"dot-dot path", "GET", "/healthz/../invoices", none, authz.BadRequest, 403, "not canonical"},
		{"escaped dot-dot path", "GET", "/healthz/%2e%2e/invoices", none, authz.BadRequest, 403, "not canonical"},
		{"double slash", "GET", "//invoices", none, authz.BadRequest, 403, "not canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &authz.Request{Method: tc.method, URI: tc.uri, Host: "billing.example.com:443"}
			if tc.auth != "" {
				req.Authorization = []string{tc.auth}
			}
			dec := d.Decide(context.Background(), req)
			if dec.Outcome != tc.want || dec.Status != tc.status || !strings.Contains(dec.Challenge, tc.challenge) {
				t.Fatalf("got %v %d %q, want %v %d containing %q", dec.Outcome, dec.Status, dec.Challenge, tc.want, tc.status, tc.challenge)
			}
			if strings.Contains(dec.Challenge, strings.TrimPrefix(tc.auth, "Bearer ")) && tc.auth != "" {
				t.Fatalf("the challenge echoes the token: %q", dec.Challenge)
			}
		})
	}
}

func TestUnmatchedRoutesAllowAuthenticated(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), authv1alpha1.UnmatchedRoutesAllowAuthenticated, billingRoutes...))
	tok := "Bearer " + iss.Token(verifytest.Scope(""))
	req := &authz.Request{Method: "DELETE", URI: "/anything", Host: "billing.example.com", Authorization: []string{tok}}
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.Allow {
		t.Fatalf("unmatched with AllowAuthenticated: got %v", dec.Outcome)
	}
	// A matching route still applies.
	req.Method, req.URI = "POST", "/invoices"
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.InsufficientScope {
		t.Fatalf("matched route: got %v", dec.Outcome)
	}
	req.Authorization = nil
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.NoToken {
		t.Fatalf("AllowAuthenticated still needs a token: got %v", dec.Outcome)
	}
}

// The first matching route decides: a general route listed first shadows a specific one.
func TestFirstMatchWins(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", rt("/", nil), rt("/invoices", nil, "invoices:write")))
	req := &authz.Request{Method: "GET", URI: "/invoices", Host: "billing.example.com", Authorization: []string{"Bearer " + iss.Token(verifytest.Scope(""))}}
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.Allow {
		t.Fatalf("got %v, want the first route (/) to decide", dec.Outcome)
	}
}

// A policy of another namespace claiming the audience (a squatter) adds no route, even when it
// is older; the holder's routes decide, and without a holder the audience is unknown.
func TestSquatterInjectsNoRoutes(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	squat := policy("evil", old, authv1alpha1.UnmatchedRoutesAllowAuthenticated, rt("/", nil))
	d, iss := newDecider(t, squat, policy("billing", time.Now(), "", billingRoutes...))
	req := &authz.Request{Method: "GET", URI: "/admin", Host: "billing.example.com", Authorization: []string{"Bearer " + iss.Token(verifytest.Scope(""))}}
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.NoRoute {
		t.Fatalf("with a squatter: got %v, want the holder's NoRoute", dec.Outcome)
	}
	d.SetTable(authz.Compile([]authv1alpha1.ScopePolicy{squat}, nil))
	if dec := d.Decide(context.Background(), req); dec.Outcome != authz.UnknownAudience {
		t.Fatalf("squatter alone: got %v, want UnknownAudience", dec.Outcome)
	}
}

func TestAudienceByHeaderAndHost(t *testing.T) {
	p := policy("billing", time.Now(), authv1alpha1.UnmatchedRoutesAllowAuthenticated)
	d, iss := newDecider(t, p)
	tok := []string{"Bearer " + iss.Token()}
	for _, tc := range []struct {
		name string
		req  authz.Request
		want authz.Outcome
	}{
		{"mapped host", authz.Request{Host: "Billing.Example.com:8443"}, authz.Allow},
		{"host is the audience", authz.Request{Host: "billing.billing"}, authz.Allow},
		{"unknown host", authz.Request{Host: "other.example.com"}, authz.UnknownAudience},
		{"header decides over host", authz.Request{Host: "other.example.com", Audience: aud}, authz.Allow},
		{"unknown header audience", authz.Request{Host: "billing.example.com", Audience: "shipping.shipping"}, authz.UnknownAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Method, req.URI, req.Authorization = "GET", "/x", tok
			if dec := d.Decide(context.Background(), &req); dec.Outcome != tc.want {
				t.Fatalf("got %v, want %v", dec.Outcome, tc.want)
			}
		})
	}
}

// The HTTP forward-auth handler reads nginx's and Traefik/Caddy's headers and answers with the
// identity headers or an RFC 6750 challenge.
func TestForwardAuth(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	h := authz.ForwardAuth(d, "X-M2M-Audience")
	tok := "Bearer " + iss.Token(verifytest.Scope("invoices:read"))
	for _, tc := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"nginx", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/invoices/1", "X-M2M-Audience": aud}, 200},
		{"traefik/caddy", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/invoices/1", "X-Forwarded-Host": "billing.example.com"}, 200},
		{"nginx write", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/invoices", "X-M2M-Audience": aud}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/auth", nil)
			r.Header.Set("Authorization", tok)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Header().Get("WWW-Authenticate"))
			}
			if tc.status == http.StatusOK {
				if w.Header().Get(authz.HeaderClientID) != verifytest.DefaultClientID || w.Header().Get(authz.HeaderNamespace) != verifytest.DefaultNamespace ||
					w.Header().Get(authz.HeaderScopes) != "invoices:read" {
					t.Fatalf("identity headers: %v", w.Header())
				}
				return
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
				t.Fatalf("WWW-Authenticate %q", got)
			}
		})
	}
}
