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
	"fmt"
	"log"
	"net"

	"google.golang.org/grpc"
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

// A gRPC server requires a token with a scope on every call except the health check that the
// kubelet probes.
func Example() {
	issuer := verifytest.NewServer() // stands in for the m2m token server
	defer issuer.Close()
	v, err := verify.New(context.Background(), issuer.URL, "billing.billing",
		verify.WithHTTPClient(issuer.Client()))
	if err != nil {
		log.Fatal(err)
	}

	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcverify.UnaryServerInterceptor(v,
			grpcverify.RequireScopes("invoices:read"),
			grpcverify.SkipMethods("/grpc.health.v1.Health/List"))),
		grpc.ChainStreamInterceptor(grpcverify.StreamServerInterceptor(v,
			grpcverify.RequireScopes("invoices:read"))),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(1 << 20) // in memory; a real server listens on TCP
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///billing",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	check := func(ctx context.Context) {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			fmt.Println(status.Code(err))
			return
		}
		fmt.Println(resp.GetStatus())
	}
	bearer := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	check(bearer(issuer.Token(verifytest.Scope("invoices:read"))))
	check(context.Background())
	check(bearer(issuer.Token(verifytest.Scope("payments:read"))))
	// Output:
	// SERVING
	// Unauthenticated
	// PermissionDenied
}
