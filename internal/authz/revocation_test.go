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
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const otherClient = "m2mc_b000000000000000000000000000"

// extAuthzClient serves d's ext_authz on loopback and returns a client of it.
func extAuthzClient(t *testing.T, d *authz.Decider) authv3.AuthorizationClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, authz.NewExtAuthz(d, "X-M2M-Audience"))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// A token revoked at the issuer is refused by forward-auth and ext_authz within the refresh
// interval, with the options as the flags make them by default (the revocation list is on);
// another client's token still passes.
func TestRevokedTokenDenied(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	opts := authz.DefaultOptions()
	fs := flag.NewFlagSet("authz", flag.ContinueOnError)
	opts.BindFlags(fs)
	const refresh = 200 * time.Millisecond
	if err := fs.Parse([]string{"--revocation-refresh=" + refresh.String()}); err != nil {
		t.Fatal(err)
	}
	v, err := authz.NewVerifier(context.Background(), iss.URL, "", logr.Discard(), opts.VerifierOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	d := authz.NewDecider(v, nil)
	d.SetTable(authz.Compile([]authv1alpha1.ScopePolicy{policy("billing", time.Now(), "", billingRoutes...)}, nil))
	fwd := authz.ForwardAuth(d, "X-M2M-Audience")
	ext := extAuthzClient(t, d)

	revoked := iss.Token(verifytest.Scope("invoices:read"))
	other := iss.Token(verifytest.Scope("invoices:read"), verifytest.Claim("sub", otherClient), verifytest.Claim("client_id", otherClient))
	forward := func(token string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("X-Original-Method", "GET")
		r.Header.Set("X-Original-URI", "/invoices/1")
		r.Header.Set("X-M2M-Audience", aud)
		w := httptest.NewRecorder()
		fwd.ServeHTTP(w, r)
		return w.Code, w.Header().Get("WWW-Authenticate")
	}
	check := func(token string) (int32, string) {
		res, err := ext.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/invoices/1", Headers: map[string]string{"x-m2m-audience": aud, "authorization": "Bearer " + token},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if res.GetOkResponse() != nil {
			return 200, ""
		}
		for _, h := range res.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				return int32(res.GetDeniedResponse().GetStatus().GetCode()), h.GetHeader().GetValue()
			}
		}
		return int32(res.GetDeniedResponse().GetStatus().GetCode()), ""
	}
	if got, _ := forward(revoked); got != 200 { // cached from now on: revocation must reach it
		t.Fatalf("before revocation: %d", got)
	}

	iss.RevokeTokens(verifytest.DefaultClientID, time.Now().Unix()+1)
	const want = `error="invalid_token", error_description="the access token was revoked"`
	took := eventually(t, 3*refresh+time.Second, authz.InvalidToken, func() authz.Outcome {
		if code, ch := forward(revoked); code == 401 && strings.Contains(ch, want) {
			return authz.InvalidToken
		}
		return authz.Allow
	})
	t.Logf("revocation in force after %v (refresh %v)", took, refresh)
	if code, ch := check(revoked); code != 401 || !strings.Contains(ch, want) {
		t.Fatalf("ext_authz, revoked token: %d %q", code, ch)
	}
	if code, _ := forward(other); code != 200 {
		t.Fatalf("forward-auth, another client's token: %d", code)
	}
	if code, _ := check(other); code != 200 {
		t.Fatalf("ext_authz, another client's token: %d", code)
	}
}

// Without a revocation list m2m authz does not start (fail closed) unless
// --revocation-fail-open; --revocation-list=false does not read it at all.
func TestRevocationListFlags(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	iss.FailRevocations(http.StatusServiceUnavailable)
	for _, tc := range []struct {
		args   []string
		starts bool
	}{
		{nil, false},
		{[]string{"--revocation-fail-open"}, true},
		{[]string{"--revocation-list=false"}, true},
	} {
		opts := authz.DefaultOptions()
		fs := flag.NewFlagSet("authz", flag.ContinueOnError)
		opts.BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		v, err := authz.NewVerifier(ctx, iss.URL, "", logr.Discard(), opts.VerifierOptions()...)
		cancel()
		if (err == nil) != tc.starts {
			t.Fatalf("%v: verifier error %v, want a verifier: %v", tc.args, err, tc.starts)
		}
		if v != nil {
			if _, err := v.Verify(context.Background(), iss.Token()); err != nil {
				t.Fatalf("%v: %v", tc.args, err)
			}
			v.Close()
		}
	}
}
