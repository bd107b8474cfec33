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

// Command api is the billing API: each route accepts only access tokens of the token server
// for audience billing.billing that carry the route's scope, verified locally by
// github.com/m2m-dev/m2m-operator/verify (go get github.com/m2m-dev/m2m-operator/verify).
//
//	go run ./examples/go/api            # against make dev: the issuer is read from .dev/credentials
//	go run ./examples/go/api -issuer https://m2m-tokenserver.m2m-system.svc -ca ca.crt
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/verify"
)

func main() {
	addr := flag.String("addr", envOr("BILLING_ADDR", "127.0.0.1:8081"), "listen address")
	issuer := flag.String("issuer", os.Getenv("M2M_ISSUER"), "the token server's issuer, exactly as in credential Secrets (default: the issuer file of m2m dev's credentials)")
	issuerFile := flag.String("issuer-file", ".dev/credentials/payments/billing-worker/issuer", "where to read the issuer when -issuer is not set")
	audience := flag.String("audience", "billing.billing", "this API's audience (its ScopePolicy's)")
	caFile := flag.String("ca", "", "PEM CA to trust for the token server (in a cluster: ca.crt of a credential Secret)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *addr, *issuer, *issuerFile, *audience, *caFile)
	stop() // before log.Fatal, which exits without running deferred calls
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, issuer, issuerFile, audience, caFile string) error {
	if issuer == "" {
		b, err := os.ReadFile(issuerFile)
		if err != nil {
			return fmt.Errorf("no -issuer, and reading %s: %w", issuerFile, err)
		}
		issuer = strings.TrimSpace(string(b))
	}
	var opts []verify.Option
	if caFile != "" {
		hc, err := trusting(caFile)
		if err != nil {
			return err
		}
		opts = append(opts, verify.WithHTTPClient(hc))
	}
	// Refuse tokens revoked since they were issued (auth.m2m.dev/revoke-tokens, a client
	// disabled, a grant removed) within seconds; fail closed after 5 min without a fresh list.
	opts = append(opts, verify.WithRevocationList())
	// Reads the issuer's RFC 8414 metadata and its JWKS; keys are refreshed when their max-age
	// runs out or a token names an unknown kid.
	v, err := verify.New(ctx, issuer, audience, opts...)
	if err != nil {
		return fmt.Errorf("discovering the token server's keys: %w", err)
	}
	mux := http.NewServeMux()
	// No or bad token: 401 invalid_token. A valid token without the scope: 403 insufficient_scope.
	mux.Handle("GET /invoices", v.Middleware("invoices:read")(http.HandlerFunc(listInvoices)))
	mux.Handle("POST /invoices", v.Middleware("invoices:write")(http.HandlerFunc(createInvoice)))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Printf("billing API on http://%s (issuer %s, audience %s)", addr, issuer, audience)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func listInvoices(w http.ResponseWriter, r *http.Request) {
	claims, _ := verify.FromContext(r.Context()) // ClientID, Namespace, Scopes, Extra["team"], ...
	fmt.Fprintf(w, "invoices for %s/%s\n", claims.Namespace, claims.ClientID)
}

func createInvoice(w http.ResponseWriter, r *http.Request) {
	claims, _ := verify.FromContext(r.Context())
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "invoice created by %s/%s\n", claims.Namespace, claims.ClientID)
}

func trusting(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
