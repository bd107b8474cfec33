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

package verify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// A resource server discovers the token server's keys once at start-up and then verifies
// tokens locally.
func ExampleNew() {
	issuer := verifytest.NewServer() // stands in for the m2m token server
	defer issuer.Close()

	v, err := verify.New(context.Background(), issuer.URL, "billing.billing",
		verify.WithHTTPClient(issuer.Client()))
	if err != nil {
		log.Fatal(err)
	}
	token := issuer.Token(verifytest.Scope("invoices:read invoices:write"))

	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.ClientID, claims.Namespace, claims.Scopes)
	// Output: m2mc_0testclient0000000000000000 payments [invoices:read invoices:write]
}

// Errors are classified by sentinel errors; test them with errors.Is.
func ExampleVerifier_Verify() {
	issuer := verifytest.NewServer()
	defer issuer.Close()
	v, err := verify.New(context.Background(), issuer.URL, "billing.billing",
		verify.WithHTTPClient(issuer.Client()))
	if err != nil {
		log.Fatal(err)
	}

	expired := issuer.Token(verifytest.TTL(-time.Hour))
	_, err = v.Verify(context.Background(), expired)
	fmt.Println(errors.Is(err, verify.ErrExpired))

	forOtherAPI := issuer.Token(verifytest.Claim("aud", "payments.payments"))
	_, err = v.Verify(context.Background(), forOtherAPI)
	fmt.Println(errors.Is(err, verify.ErrAudience))
	// Output:
	// true
	// true
}

// The middleware answers RFC 6750 challenges and hands the claims to the handler.
func ExampleVerifier_Middleware() {
	issuer := verifytest.NewServer()
	defer issuer.Close()
	v, err := verify.New(context.Background(), issuer.URL, "billing.billing",
		verify.WithHTTPClient(issuer.Client()))
	if err != nil {
		log.Fatal(err)
	}

	invoices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "invoices for %s", claims.ClientID)
	})
	handler := v.Middleware("invoices:read")(invoices)

	call := func(token string) {
		req := httptest.NewRequest(http.MethodGet, "/invoices", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			fmt.Println(rec.Code, rec.Body.String())
			return
		}
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	call(issuer.Token(verifytest.Scope("invoices:*")))
	call("")
	call("not-a-token")
	call(issuer.Token(verifytest.Scope("payments:read")))
	// Output:
	// 200 invoices for m2mc_0testclient0000000000000000
	// 401 Bearer realm="billing.billing"
	// 401 Bearer realm="billing.billing", error="invalid_token", error_description="the access token is invalid"
	// 403 Bearer realm="billing.billing", error="insufficient_scope", scope="invoices:read"
}

// The token server's introspection endpoint uses the same validation with its own keys and
// any audience; the caller decides what to do with the audience.
func ExampleNewWithKeySource() {
	issuer := verifytest.NewServer() // its in-memory key set serves as the KeySource
	defer issuer.Close()
	v, err := verify.NewWithKeySource(issuer.URL, "", issuer, verify.WithAnyAudience())
	if err != nil {
		log.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), issuer.Token(verifytest.Claim("aud", "payments.payments")))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Audience)
	// Output: [payments.payments]
}

// Held wildcard scopes cover every action on their resource; nothing else is a wildcard.
func ExampleScopeMatches() {
	fmt.Println(verify.ScopeMatches("invoices:*", "invoices:read"))
	fmt.Println(verify.ScopeMatches("invoices:*", "payments:read"))
	fmt.Println(verify.ScopeMatches("invoices:read", "invoices:*"))
	fmt.Println(verify.ScopeMatches("*", "invoices:read"))
	fmt.Println(verify.ScopeMatches("*", "*"))
	// Output:
	// true
	// false
	// false
	// false
	// true
}

func ExampleClaims_HasScope() {
	claims := &verify.Claims{Scopes: []string{"invoices:*", "payments:read"}}
	fmt.Println(claims.HasScope("invoices:write"))
	fmt.Println(claims.HasScope("payments:write"))
	fmt.Println(claims.HasAllScopes("invoices:read", "payments:read"))
	// Output:
	// true
	// false
	// true
}
