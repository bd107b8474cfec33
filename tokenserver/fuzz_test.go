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

package tokenserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *testServer
	fuzzID     string
	fuzzSecret string
)

// fuzzTarget is one server with a disabled and an enabled client, shared by every input.
func fuzzTarget(t testing.TB) *testServer {
	fuzzOnce.Do(func() {
		fuzzServer = newTestServer(t, func(o *Options) { o.MaxBodyBytes = 4096 })
		fuzzID, fuzzSecret = fuzzServer.addClient(t, func(r *credential.Record) {
			r.Grants = append(r.Grants, credential.AudienceGrant{Audience: audReports, Scopes: []string{"reports:read"}, MaxTokenTTLSeconds: 60})
			r.Claims = map[string]string{"team": "x\u2028\"y"}
		})
		fuzzServer.addClient(t, func(r *credential.Record) { r.Disabled = true })
	})
	return fuzzServer
}

// FuzzTokenRequest feeds arbitrary form bodies, Authorization headers and content types to the
// token endpoint: request parsing and client authentication. Whatever the input: no panic, no
// 5xx, and a well-formed JSON answer (a token, or an RFC 6749 error).
func FuzzTokenRequest(f *testing.F) {
	ts := fuzzTarget(f)
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	seeds := [][3]string{
		{"grant_type=client_credentials&client_id=" + fuzzID + "&client_secret=" + fuzzSecret, "", "application/x-www-form-urlencoded"},
		{"grant_type=client_credentials&scope=invoices%3Aread&resource=billing.billing", basic(fuzzID + ":" + fuzzSecret), "application/x-www-form-urlencoded"},
		{"grant_type=client_credentials&audience=reports.analytics", basic(fuzzID + ":" + fuzzSecret), "application/x-www-form-urlencoded; charset=utf-8"},
		{"grant_type=client_credentials&scope=a++b&scope=c", basic("a%zz:b"), "application/x-www-form-urlencoded"},
		{"%&=&&==%2&grant_type=%", "Basic ====", "APPLICATION/X-WWW-FORM-URLENCODED"},
		{"grant_type=client_credentials", "bAsIc " + base64.StdEncoding.EncodeToString([]byte(":")), "application/x-www-form-urlencoded"},
		{"grant_type=password&username=u&password=p", "Bearer x", "application/json"},
		{"grant_type=client_credentials&client_id=" + fuzzID + "&client_secret=" + fuzzSecret + "&client_secret=x", "", "application/x-www-form-urlencoded"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, body, auth, contentType string) {
		r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(body))
		if contentType != "" {
			r.Header["Content-Type"] = []string{contentType}
		}
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		w := httptest.NewRecorder()
		ts.Handler().ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q auth %q type %q: %s", w.Code, body, auth, contentType, w.Body)
		}
		var resp map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d, answer is not JSON: %q", w.Code, w.Body)
		}
		_, hasToken := resp["access_token"]
		_, hasError := resp["error"]
		if hasToken == hasError || (w.Code == 200) != hasToken {
			t.Fatalf("status %d, answer %q", w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control %q", w.Header().Get("Cache-Control"))
		}
	})
}

// FuzzUnescapeForm checks the in-place form decoder against net/url.
func FuzzUnescapeForm(f *testing.F) {
	for _, s := range []string{"a+b", "%41%2b", "%", "%4", "%zz", "abc", "%e2%80%a8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := unescapeForm([]byte(s))
		want, err := urlQueryUnescape(s)
		if ok != (err == nil) {
			t.Fatalf("%q: ok=%v, net/url err=%v", s, ok, err)
		}
		if ok && string(got) != want {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	})
}

var (
	assertionOnce   sync.Once
	assertionServer *testServer
	assertionKey    clientKey
	assertionID     string
)

// assertionTarget is one server with a private_key_jwt client, shared by every input.
func assertionTarget(t testing.TB) *testServer {
	assertionOnce.Do(func() {
		assertionServer = newTestServer(t, func(o *Options) { o.AuthFailureBurst = 1 << 30; o.AuthFailureRate = 1e9 })
		assertionKey = newClientKey(t, jose.ES256, "k1")
		assertionID = assertionServer.addKeyClient(t, assertionKey)
	})
	return assertionServer
}

// FuzzClientAssertion feeds arbitrary client assertions, seeded with valid, replayed, unsigned
// and hostile ones, to the parser and to the token endpoint. Whatever the input: no panic; the
// parser's output respects its bounds; the endpoint answers 200 with a token, or 400/401 with
// an RFC 6749 error and never a 5xx; a token is only ever issued for the one client with a key,
// and only when the assertion parses.
func FuzzClientAssertion(f *testing.F) {
	ts := assertionTarget(f)
	now := ts.clock.Now()
	valid := assertionKey.sign(f, assertionClaimsFor(assertionID, now))
	f.Add(valid)
	f.Add(valid) // replay
	many := assertionClaimsFor(assertionID, now)
	many["aud"] = []string{"x", testIssuer + TokenPath}
	f.Add(assertionKey.sign(f, many))
	f.Add(unsigned(`{"alg":"none"}`, assertionClaimsFor(assertionID, now), func(string) []byte { return nil }))
	f.Add(unsigned(`{"alg":"HS256","kid":"k1"}`, assertionClaimsFor(assertionID, now), hs256([]byte("k"))))
	f.Add(unsigned(`{"alg":"ES256","kid":"k1","crit":["exp"]}`, map[string]any{"iss": 1, "exp": "x"}, func(string) []byte { return []byte{1} }))
	f.Add(unsigned(`{"alg":"RS256","kid":"k"}`, map[string]any{"iss": "system:serviceaccount:a:b", "sub": "system:serviceaccount:a:b", "aud": []any{}, "exp": 1e300}, func(string) []byte { return nil }))
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "e30.e30.AA", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", strings.Repeat("A", maxAssertionSize+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := parseAssertion([]byte(raw))
		if err == nil {
			if a.iss == "" || a.sub == "" || len(a.aud) == 0 || len(a.aud) > maxAssertionAudiences || a.exp <= 0 || a.alg == "" {
				t.Fatalf("parsed an assertion outside its bounds: %+v", a)
			}
			if len(a.signingInput) >= len(raw) || !strings.HasPrefix(raw, a.signingInput+".") {
				t.Fatalf("signing input %q is not the head of %q", a.signingInput, raw)
			}
		}
		w := ts.do(tokenReq(assertionForm(raw), "", ""))
		switch w.Code {
		case http.StatusOK:
			if err != nil {
				t.Fatalf("a token for an assertion that does not parse: %q", raw)
			}
			tr := decodeResponse(t, w.Body)
			_, c, _ := verifyToken(t, tr.AccessToken, ts.jwks(t))
			if c.ClientID != assertionID {
				t.Fatalf("token for %q", c.ClientID)
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
			if e := decodeResponse(t, w.Body).Error; e != errInvalidClient && e != errInvalidRequest {
				t.Fatalf("status %d error %q", w.Code, e)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, raw, w.Body)
		}
	})
}
