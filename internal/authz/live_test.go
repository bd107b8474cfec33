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

// Against a real API server (envtest): the informers put a policy's routes in force, an edit
// takes effect within a second, and both gateway protocols answer from the same table.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

var (
	envCfg *rest.Config
	envK8s client.Client
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// The pure tests run without a control plane; the envtest ones say why they skip.
		os.Exit(m.Run())
	}
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	envCfg = cfg
	if envK8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func apiServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	if envCfg == nil {
		t.Skip("KUBEBUILDER_ASSETS is not set: no control plane for this test (see docs: make test)")
	}
	return envCfg, envK8s
}

// live is a Decider fed by the informers, with its policy in namespace billing.
func live(t *testing.T) (*authz.Decider, *verifytest.Issuer, client.Client) {
	t.Helper()
	cfg, k8s := apiServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "billing"}}
	if err := client.IgnoreAlreadyExists(k8s.Create(ctx, ns)); err != nil {
		t.Fatal(err)
	}
	d, iss := newDecider(t)
	p, err := authz.NewPolicies(cfg, d, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("policies: %v", err)
		}
	})
	select {
	case <-p.Synced():
	case err := <-done:
		t.Fatal(err)
	}
	return d, iss, k8s
}

// eventually polls decide every 5 ms until it returns want, for at most limit; it returns how
// long that took.
func eventually(t *testing.T, limit time.Duration, want authz.Outcome, decide func() authz.Outcome) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var got authz.Outcome
	for {
		if got = decide(); got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("after %v: decision %v, want %v", limit, got, want)
		}
		<-tick.C
	}
}

func TestPolicyEditInForceWithinOneSecond(t *testing.T) {
	d, iss, k8s := live(t)
	ctx := context.Background()
	p := policy("billing", time.Time{}, "", rt("/invoices", nil, "invoices:write"))
	p.ResourceVersion = ""
	if err := k8s.Create(ctx, &p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), &p) })
	req := &authz.Request{Method: "GET", URI: "/invoices/1", Host: "billing.billing", Authorization: []string{"Bearer " + iss.Token(verifytest.Scope("invoices:read"))}}
	decide := func() authz.Outcome { return d.Decide(ctx, req).Outcome }
	eventually(t, 5*time.Second, authz.InsufficientScope, decide)

	p.Spec.Routes[0].Scopes = []authv1alpha1.ScopeToken{"invoices:read"}
	if err := k8s.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, time.Second, authz.Allow, decide)
	t.Logf("the edited route was in force %v after the update returned", took)

	if err := k8s.Delete(ctx, &p); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, authz.UnknownAudience, decide)
}

// The ext_authz service over a real gRPC connection, as Envoy calls it.
func TestExtAuthz(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	c := extAuthzClient(t, d)
	check := func(method, path, token string) *authv3.CheckResponse {
		t.Helper()
		headers := map[string]string{"x-m2m-audience": aud, "x-m2m-client-id": "m2mc_forged", "x-m2m-admin": "yes"}
		if token != "" {
			headers["authorization"] = "Bearer " + token
		}
		res, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Path: path, Host: "ignored.example.com", Headers: headers,
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	ok := check("GET", "/invoices?page=2", iss.Token(verifytest.Scope("invoices:read")))
	if codes.Code(ok.GetStatus().GetCode()) != codes.OK || ok.GetOkResponse() == nil {
		t.Fatalf("allowed: %v", ok)
	}
	got := map[string]string{}
	for _, h := range ok.GetOkResponse().GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		if h.GetAppendAction().String() != "OVERWRITE_IF_EXISTS_OR_ADD" {
			t.Errorf("header %s appended, not overwritten", h.GetHeader().GetKey())
		}
	}
	if got["x-m2m-client-id"] != verifytest.DefaultClientID || got["x-m2m-namespace"] != verifytest.DefaultNamespace || got["x-m2m-scopes"] != "invoices:read" {
		t.Fatalf("identity headers %v", got)
	}
	if rm := ok.GetOkResponse().GetHeadersToRemove(); !slices.Contains(rm, "x-m2m-admin") || !slices.Contains(rm, "x-m2m-audience") {
		t.Fatalf("headers_to_remove %v: the client's x-m2m-* headers would reach the API", rm)
	}

	// The route's context extension names the audience, over the client's header.
	res, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{authz.ContextExtensionAudience: aud},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/invoices", Host: "ignored.example.com",
			Headers: map[string]string{"x-m2m-audience": "shipping.shipping", "authorization": "Bearer " + iss.Token()},
		}},
	}})
	if err != nil || res.GetOkResponse() == nil {
		t.Fatalf("audience from the context extension: %v %v", res, err)
	}

	for _, tc := range []struct {
		name, method, path, token string
		status                    int32
		code                      codes.Code
		challenge                 string
	}{
		{"missing scope", "POST", "/invoices", iss.Token(verifytest.Scope("invoices:read")), 403, codes.PermissionDenied, `error="insufficient_scope", scope="invoices:read invoices:write"`},
		{"expired", "GET", "/invoices", iss.Token(verifytest.TTL(-time.Hour)), 401, codes.Unauthenticated, `error="invalid_token"`},
		{"no token", "GET", "/invoices", "", 401, codes.Unauthenticated, `Bearer realm="billing.billing"`},
		{"no route", "GET", "/admin", iss.Token(), 403, codes.PermissionDenied, "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := check(tc.method, tc.path, tc.token)
			den := res.GetDeniedResponse()
			if codes.Code(res.GetStatus().GetCode()) != tc.code || den == nil || int32(den.GetStatus().GetCode()) != tc.status {
				t.Fatalf("got %v", res)
			}
			var challenge string
			for _, h := range den.GetHeaders() {
				if h.GetHeader().GetKey() == "www-authenticate" {
					challenge = h.GetHeader().GetValue()
				}
			}
			if !strings.Contains(challenge, tc.challenge) {
				t.Fatalf("WWW-Authenticate %q, want %q", challenge, tc.challenge)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Run, as `m2m authz` runs it: not ready until the issuer's keys and the policies are loaded,
// then forward-auth, ext_authz and /metrics on their own ports, and a clean stop.
func TestRun(t *testing.T) {
	cfg, k8s := apiServer(t)
	ctx := context.Background()
	if err := client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "billing"}})); err != nil {
		t.Fatal(err)
	}
	p := policy("billing", time.Time{}, "", billingRoutes...)
	p.Name = "run"
	if err := k8s.Create(ctx, &p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), &p) })
	iss := verifytest.NewIssuer(t)
	opts := authz.DefaultOptions()
	opts.Issuer, opts.Addr, opts.GRPCAddr, opts.MetricsAddr = iss.URL, freeAddr(t), freeAddr(t), freeAddr(t)
	opts.AudienceHeader = "X-M2M-Audience"
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- authz.Run(runCtx, cfg, opts, logr.Discard()) }()

	metrics := "http://" + opts.MetricsAddr
	eventually(t, 10*time.Second, authz.Allow, func() authz.Outcome {
		resp, err := http.Get(metrics + "/readyz")
		if err != nil {
			return authz.NoToken
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return authz.NoToken
		}
		return authz.Allow
	})
	forward := func(method, uri string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+opts.Addr+"/", nil)
		req.Header.Set("Authorization", "Bearer "+iss.Token(verifytest.Scope("invoices:read")))
		req.Header.Set("X-Original-Method", method)
		req.Header.Set("X-Original-URI", uri)
		req.Header.Set("X-M2M-Audience", aud)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := forward("GET", "/invoices"); got != http.StatusOK {
		t.Fatalf("forward-auth GET /invoices: %d", got)
	}
	if got := forward("POST", "/invoices"); got != http.StatusForbidden {
		t.Fatalf("forward-auth POST /invoices: %d", got)
	}
	conn, err := grpc.NewClient(opts.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/invoices", Headers: map[string]string{"x-m2m-audience": aud, "authorization": "Bearer " + iss.Token()},
		}},
	}})
	if err != nil || res.GetOkResponse() == nil {
		t.Fatalf("ext_authz: %v %v", res, err)
	}
	resp, err := http.Get(metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), `m2m_authz_decisions_total{audience="billing.billing",decision="allow"} 2`) {
		t.Errorf("metrics do not count the two allowed decisions:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
