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
	"slices"
	"testing"
	"time"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// BenchmarkDecision is one forward-auth decision for a cached token: the handler as nginx
// calls it (headers in, status and identity headers out), the verifier's cache warm. It also
// reports the p50 and p99 of single decisions.
func BenchmarkDecision(b *testing.B) {
	iss := verifytest.NewIssuer(b)
	d := benchDecider(b, iss)
	h := authz.ForwardAuth(d, "X-M2M-Audience")
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	r.Header.Set("Authorization", "Bearer "+iss.Token(verifytest.Scope("invoices:read")))
	r.Header.Set("X-Original-Method", "GET")
	r.Header.Set("X-Original-URI", "/invoices/42?page=2")
	r.Header.Set("X-M2M-Audience", aud)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm the token cache
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		start := time.Now()
		h.ServeHTTP(w, r)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}

func benchDecider(b *testing.B, iss *verifytest.Issuer) *authz.Decider {
	b.Helper()
	v, err := verify.New(context.Background(), iss.URL, "", verify.WithAnyAudience(), verify.WithHTTPClient(iss.Client()))
	if err != nil {
		b.Fatal(err)
	}
	d := authz.NewDecider(v, nil)
	d.SetTable(authz.Compile([]authv1alpha1.ScopePolicy{policy("billing", time.Now(), "", billingRoutes...)}, nil))
	return d
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
