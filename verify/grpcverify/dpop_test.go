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
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/grpcverify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// TestUnaryInterceptorDPoP: a bound token passes only as DPoP with a proof for the configured
// URL and this method; as Bearer, without a proof, for another method, or replayed it fails.
func TestUnaryInterceptorDPoP(t *testing.T) {
	v, iss := newVerifier(t)
	const base = "https://billing.example.com"
	const method = "/billing.Invoices/Get"
	intercept := grpcverify.UnaryServerInterceptor(v, grpcverify.DPoPURL(base+"/"))
	bearerOnly := grpcverify.UnaryServerInterceptor(v)
	key, _ := dpop.GenerateKey()
	s, _ := dpop.NewSigner(key)
	tok := iss.Token(verifytest.Claim("cnf", map[string]any{"jkt": s.Thumbprint()}))
	proof := func(url string) string {
		p, err := s.Proof("POST", url, tok, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	call := func(i grpc.UnaryServerInterceptor, m string, kv ...string) codes.Code {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
		_, err := i(ctx, nil, &grpc.UnaryServerInfo{FullMethod: m}, func(context.Context, any) (any, error) { return "ok", nil })
		return status.Code(err)
	}
	used := proof(base + method)
	if got := call(intercept, method, "authorization", "DPoP "+tok, "dpop", used); got != codes.OK {
		t.Fatalf("valid DPoP call: %v", got)
	}
	for name, got := range map[string]codes.Code{
		"bound token as Bearer":      call(intercept, method, "authorization", "Bearer "+tok),
		"no proof":                   call(intercept, method, "authorization", "DPoP "+tok),
		"replayed proof":             call(intercept, method, "authorization", "DPoP "+tok, "dpop", used),
		"proof for another method":   call(intercept, method, "authorization", "DPoP "+tok, "dpop", proof(base+"/billing.Invoices/Delete")),
		"proof for another host":     call(intercept, method, "authorization", "DPoP "+tok, "dpop", proof("https://evil.example.com"+method)),
		"DPoP without DPoPURL":       call(bearerOnly, method, "authorization", "DPoP "+tok, "dpop", proof(base+method)),
		"two proofs":                 call(intercept, method, "authorization", "DPoP "+tok, "dpop", proof(base+method), "dpop", proof(base+method)),
		"unbound token with a proof": call(intercept, method, "authorization", "DPoP "+iss.Token(), "dpop", proof(base+method)),
	} {
		if got != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, got)
		}
	}
}
