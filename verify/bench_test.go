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
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// Run with: go test ./verify -run x -bench . -benchmem -cpu 1
//
// Goals: BenchmarkVerifyCold within 10% of BenchmarkGoJoseES256 (the bare signature check
// dominates); BenchmarkVerifyHot at or under 1 µs/op (1,000,000 verifications/s per core).

func benchSetup(b *testing.B, opts ...Option) (*Verifier, *verifytest.Issuer, string) {
	b.Helper()
	iss := verifytest.NewIssuer(b)
	v, err := New(context.Background(), iss.URL, iss.Audience, append([]Option{WithHTTPClient(iss.Client())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	tok := iss.Token(verifytest.Scope("invoices:read invoices:write"), verifytest.Claim("team", "payments"))
	return v, iss, tok
}

// BenchmarkVerifyCold is a full verification of an ES256 token with the cache off.
func BenchmarkVerifyCold(b *testing.B) {
	v, _, tok := benchSetup(b, WithCacheSize(0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoJoseES256 is the floor: go-jose parsing and verifying the same token, with no
// header, claim or policy checks at all.
func BenchmarkGoJoseES256(b *testing.B) {
	_, iss, tok := benchSetup(b)
	key, _ := iss.Key(iss.SigningKeyID())
	algs := []jose.SignatureAlgorithm{jose.ES256}
	b.ReportAllocs()
	for b.Loop() {
		jws, err := jose.ParseSignedCompact(tok, algs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(key.Key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHot verifies a token that is already cached.
func BenchmarkVerifyHot(b *testing.B) {
	v, _, tok := benchSetup(b)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHotParallel is the hot path from all cores at once (run without -cpu 1).
func BenchmarkVerifyHotParallel(b *testing.B) {
	v, _, tok := benchSetup(b)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMiddlewareHot is one request through the HTTP middleware with a cached token.
func BenchmarkMiddlewareHot(b *testing.B) {
	v, _, tok := benchSetup(b)
	h := v.Middleware("invoices:read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/invoices", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	if w.Code != http.StatusOK {
		b.Fatalf("status %d", w.Code)
	}
}

// BenchmarkVerifyHotRevocation is BenchmarkVerifyHot with the revocation list on, the list
// holding 1,000 revoked clients (not this token's): the check adds one atomic load and one
// map lookup, no allocation.
func BenchmarkVerifyHotRevocation(b *testing.B) {
	benchRevocation(b, WithCacheSize(DefaultCacheSize))
}

// BenchmarkVerifyColdRevocation is BenchmarkVerifyCold with the revocation list on.
func BenchmarkVerifyColdRevocation(b *testing.B) {
	benchRevocation(b, WithCacheSize(0))
}

func benchRevocation(b *testing.B, opts ...Option) {
	iss := verifytest.NewIssuer(b)
	for i := range 1000 {
		iss.RevokeTokens(fmt.Sprintf("m2mc_revoked%021d", i), time.Now().Unix())
	}
	v, err := New(context.Background(), iss.URL, iss.Audience, append([]Option{WithHTTPClient(iss.Client()), WithRevocationList()}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	tok := iss.Token(verifytest.Scope("invoices:read invoices:write"), verifytest.Claim("team", "payments"))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDPoPHot is a DPoP-bound token already cached, with a fresh proof per request
// (signed with the timer stopped): the proof's signature check is the cost DPoP adds to
// BenchmarkVerifyHot.
func BenchmarkVerifyDPoPHot(b *testing.B) {
	_, iss, _ := benchSetup(b)
	v, err := New(context.Background(), iss.URL, iss.Audience, WithHTTPClient(iss.Client()))
	if err != nil {
		b.Fatal(err)
	}
	key, _ := dpop.GenerateKey()
	s, _ := dpop.NewSigner(key)
	tok := iss.Token(verifytest.Scope("invoices:read"), verifytest.Claim("cnf", map[string]any{"jkt": s.Thumbprint()}))
	ctx := context.Background()
	const url = "https://api.example.com/invoices"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		proof, err := s.Proof("GET", url, tok, "", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := v.VerifyDPoP(ctx, tok, proof, "GET", url); err != nil {
			b.Fatal(err)
		}
	}
}
