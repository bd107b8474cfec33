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

package grpcverify_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/grpcverify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const (
	checkMethod = "/grpc.health.v1.Health/Check"
	watchMethod = "/grpc.health.v1.Health/Watch"
)

func newVerifier(t *testing.T) (*verify.Verifier, *verifytest.Issuer) {
	t.Helper()
	iss := verifytest.NewIssuer(t)
	v, err := verify.NewWithKeySource(iss.URL, iss.Audience, iss)
	if err != nil {
		t.Fatal(err)
	}
	return v, iss
}

func withToken(token string) context.Context {
	md := metadata.Pairs()
	if token != "" {
		md = metadata.Pairs("authorization", "Bearer "+token)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestUnaryInterceptor(t *testing.T) {
	v, iss := newVerifier(t)
	intercept := grpcverify.UnaryServerInterceptor(v,
		grpcverify.RequireScopes("invoices:read"),
		grpcverify.RequireMethodScopes("/billing.Invoices/Create", "invoices:write"),
		grpcverify.SkipMethods(checkMethod))
	var seen *verify.Claims
	handler := func(ctx context.Context, _ any) (any, error) {
		seen, _ = verify.FromContext(ctx)
		return "ok", nil
	}
	reader := iss.Token(verifytest.Scope("invoices:read"))
	cases := []struct {
		name, method string
		ctx          context.Context
		want         codes.Code
		wantClaims   bool
	}{
		{"valid", "/billing.Invoices/Get", withToken(reader), codes.OK, true},
		{"wildcard", "/billing.Invoices/Create", withToken(iss.Token(verifytest.Scope("invoices:*"))), codes.OK, true},
		{"missing", "/billing.Invoices/Get", withToken(""), codes.Unauthenticated, false},
		{"no metadata", "/billing.Invoices/Get", context.Background(), codes.Unauthenticated, false},
		{"not bearer", "/billing.Invoices/Get", metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Basic eDp5")), codes.Unauthenticated, false},
		{"two values", "/billing.Invoices/Get", metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+reader, "authorization", "Bearer "+reader)), codes.Unauthenticated, false},
		{"invalid", "/billing.Invoices/Get", withToken(reader + "x"), codes.Unauthenticated, false},
		{"expired", "/billing.Invoices/Get", withToken(iss.Token(verifytest.TTL(-time.Hour))), codes.Unauthenticated, false},
		{"method scope", "/billing.Invoices/Create", withToken(reader), codes.PermissionDenied, false},
		{"skipped", checkMethod, context.Background(), codes.OK, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen = nil
			_, err := intercept(c.ctx, nil, &grpc.UnaryServerInfo{FullMethod: c.method}, handler)
			if got := status.Code(err); got != c.want {
				t.Fatalf("code %v, want %v (%v)", got, c.want, err)
			}
			if (seen != nil) != c.wantClaims {
				t.Fatalf("claims in handler context: %v", seen)
			}
		})
	}
}

// fakeStream is a server stream with a given context.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestStreamInterceptor(t *testing.T) {
	v, iss := newVerifier(t)
	intercept := grpcverify.StreamServerInterceptor(v, grpcverify.RequireScopes("invoices:read"))
	var seen *verify.Claims
	handler := func(_ any, ss grpc.ServerStream) error {
		seen, _ = verify.FromContext(ss.Context())
		return nil
	}
	info := &grpc.StreamServerInfo{FullMethod: watchMethod, IsServerStream: true}
	if err := intercept(nil, fakeStream{ctx: withToken(iss.Token())}, info, handler); err != nil || seen == nil {
		t.Fatalf("valid: %v, claims %v", err, seen)
	}
	seen = nil
	err := intercept(nil, fakeStream{ctx: withToken(iss.Token(verifytest.Scope("other:read")))}, info, handler)
	if status.Code(err) != codes.PermissionDenied || seen != nil {
		t.Fatalf("insufficient scope: %v", err)
	}
	err = intercept(nil, fakeStream{ctx: withToken("")}, info, handler)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("missing: %v", err)
	}
}

// TestOverTheWire runs the interceptors in a real gRPC server (in memory) with the standard
// health service: unary Check and server-streaming Watch.
func TestOverTheWire(t *testing.T) {
	v, iss := newVerifier(t)
	client := startServer(t, v)
	tok := iss.Token()
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)

	resp, err := client.Check(authed, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check with a token: %v %v", resp, err)
	}
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Check without a token: %v", err)
	}
	stream, err := client.Watch(authed, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch with a token: %v %v", msg, err)
	}
	denied := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+iss.Token(verifytest.Scope("x:y")))
	stream, err = client.Watch(denied, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Watch without the scope: %v", err)
	}
}

func startServer(t *testing.T, v *verify.Verifier) healthpb.HealthClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(grpcverify.UnaryServerInterceptor(v, grpcverify.RequireScopes("invoices:read"))),
		grpc.StreamInterceptor(grpcverify.StreamServerInterceptor(v, grpcverify.RequireScopes("invoices:read"))),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// TestUnaryInterceptorRefusesRevokedTokens: the revocation list reaches gRPC through the same
// Verifier: a revoked client's token is Unauthenticated, another client's passes.
func TestUnaryInterceptorRefusesRevokedTokens(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	const revoked = "m2mc_revoked0000000000000000000000"
	iss.RevokeTokens(revoked, time.Now().Unix()+1)
	v, err := verify.New(context.Background(), iss.URL, iss.Audience, verify.WithHTTPClient(iss.Client()), verify.WithRevocationList())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	intercept := grpcverify.UnaryServerInterceptor(v)
	handler := func(context.Context, any) (any, error) { return "ok", nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/billing.Invoices/Get"}
	tok := iss.Token(verifytest.Claim("sub", revoked), verifytest.Claim("client_id", revoked))
	if _, err := intercept(withToken(tok), nil, info, handler); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a revoked token: %v", err)
	}
	if _, err := intercept(withToken(iss.Token()), nil, info, handler); err != nil {
		t.Fatalf("another client's token: %v", err)
	}
}
