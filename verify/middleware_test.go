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
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

func TestMiddleware(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	realm := `Bearer realm="` + iss.Audience + `"`
	var seen *Claims
	handler := v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
		w.WriteHeader(http.StatusOK)
	}))
	valid := iss.Token()
	cases := []struct {
		name       string
		auth       []string
		wantStatus int
		wantChal   string
	}{
		{"valid", []string{"Bearer " + valid}, 200, ""},
		{"scheme case-insensitive", []string{"bEaReR " + valid}, 200, ""},
		{"wildcard scope", []string{"Bearer " + iss.Token(verifytest.Scope("invoices:*"))}, 200, ""},
		{"missing", nil, 401, realm},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, 401, realm},
		{"empty bearer", []string{"Bearer "}, 400, realm + `, error="invalid_request", error_description="malformed Bearer credentials"`},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}, 400, realm + `, error="invalid_request", error_description="multiple Authorization headers"`},
		{"invalid", []string{"Bearer " + valid[:len(valid)-4] + "AAAA"}, 401, realm + `, error="invalid_token", error_description="the access token is invalid"`},
		{"expired", []string{"Bearer " + iss.Token(verifytest.TTL(-time.Hour))}, 401, realm + `, error="invalid_token", error_description="the access token expired"`},
		{"insufficient scope", []string{"Bearer " + iss.Token(verifytest.Scope("payments:read"))}, 403, realm + `, error="insufficient_scope", scope="invoices:read"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest(http.MethodGet, "/invoices", nil)
			for _, a := range c.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != c.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, c.wantStatus)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != c.wantChal {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.wantChal)
			}
			if (c.wantStatus == 200) != (seen != nil) {
				t.Fatalf("handler saw claims %v with status %d", seen, rec.Code)
			}
			if seen != nil && seen.ClientID != verifytest.DefaultClientID {
				t.Fatalf("claims in context: %+v", seen)
			}
		})
	}
}

func TestRequireScopesPerRoute(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithRealm("billing"))
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", ok)
	mux.Handle("POST /invoices", v.RequireScopes("invoices:write")(ok))
	handler := v.Middleware()(mux)

	reader := "Bearer " + iss.Token(verifytest.Scope("invoices:read"))
	for _, c := range []struct {
		method string
		want   int
	}{{http.MethodGet, 200}, {http.MethodPost, 403}} {
		req := httptest.NewRequest(c.method, "/invoices", nil)
		req.Header.Set("Authorization", reader)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Fatalf("%s: status %d, want %d", c.method, rec.Code, c.want)
		}
	}
	rec := httptest.NewRecorder()
	v.RequireScopes("x")(ok).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="billing"` {
		t.Fatalf("RequireScopes without Middleware: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestBearerToken(t *testing.T) {
	cases := map[string]string{
		"Bearer abc":   "abc",
		"bearer abc":   "abc",
		"BEARER  abc":  "abc",
		"Bearer":       "",
		"Bearer ":      "",
		"Bearer a b":   "",
		"Bearer a\tb":  "",
		"Basic abc":    "",
		"Bearerabc":    "",
		"":             "",
		"Bearer\tabc":  "",
		"DPoP abc.d.e": "",
	}
	for in, want := range cases {
		got, ok := BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestParamEscaping(t *testing.T) {
	got := param("realm", "a\"b\\c\r\nd")
	if want := `realm="a\"b\\cd"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestContextRoundTrip(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("claims in an empty context")
	}
	c := &Claims{ClientID: "m2mc_x"}
	if got, ok := FromContext(NewContext(context.Background(), c)); !ok || got != c {
		t.Fatal("claims lost")
	}
	if _, ok := FromContext(NewContext(context.Background(), nil)); ok {
		t.Fatal("nil claims reported as present")
	}
}

func TestDescribeNeverEchoesInput(t *testing.T) {
	err := failf(ErrUnknownKey, "kid %s", excerpt("secret-looking-kid"))
	if strings.Contains(Describe(err), "secret") {
		t.Fatal("Describe echoed the error detail")
	}
}
