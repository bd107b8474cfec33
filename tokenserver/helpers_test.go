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
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

const (
	testIssuer = "https://m2m.example.test"
	audBilling = "billing.billing"
	audReports = "reports.analytics"
)

var testT0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for token times and secret expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: testT0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// testServer is a server fed directly, with one ES256 key.
type testServer struct {
	*Server
	clock *fakeClock
	set   *signingkey.Set
}

func newTestServer(t testing.TB, mut ...func(*Options)) *testServer {
	t.Helper()
	clock := newFakeClock()
	opts := Options{Issuer: testIssuer, Clock: clock.Now, Logger: logr.Discard(), AuditLog: io.Discard, RateLimit: 1e6, RateBurst: 1e6}
	for _, m := range mut {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := &testServer{Server: s, clock: clock}
	ts.set = activeKeySet(t, signingkey.ES256, clock.Now())
	if err := s.SetKeys(ts.set); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	s.MarkSynced()
	return ts
}

func activeKeySet(t testing.TB, alg string, now time.Time) *signingkey.Set {
	t.Helper()
	res, err := signingkey.Advance(nil, now, signingkey.Policy{Algorithm: alg, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 25 * time.Hour}, signingkey.Generate)
	if err != nil {
		t.Fatalf("generating keys: %v", err)
	}
	return res.Set
}

// newRecord returns a valid record for a new client, and its secret.
func newRecord(t testing.TB, mut ...func(*credential.Record)) (*credential.Record, string) {
	t.Helper()
	secret, err := credential.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	uid := hex.EncodeToString(b[:])
	rec := &credential.Record{
		Version:   credential.RecordVersion,
		ClientID:  credential.ClientIDFor(uid),
		Namespace: "payments",
		Name:      "billing-worker",
		UID:       uid,
		Method:    "ClientSecret",
		Secrets:   []credential.SecretHash{{SHA256: credential.HashSecret(secret).String()}},
		Grants:    []credential.AudienceGrant{{Audience: audBilling, Scopes: []string{"invoices:read", "invoices:write"}}},
	}
	for _, m := range mut {
		m(rec)
	}
	return rec, secret
}

// addClient loads a new client into the server and returns its id and secret.
func (ts *testServer) addClient(t testing.TB, mut ...func(*credential.Record)) (string, string) {
	t.Helper()
	rec, secret := newRecord(t, mut...)
	if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return rec.ClientID, secret
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// tokenReq builds a token request: form body, optional Basic credentials.
func tokenReq(form url.Values, basicID, basicSecret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		r.Header.Set("Authorization", basicAuth(basicID, basicSecret))
	}
	return r
}

func (ts *testServer) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, r)
	return w
}

// probe asks the metrics port's handler (/healthz, /readyz, /metrics).
func (ts *testServer) probe(path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ts.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func decodeResponse(t testing.TB, body io.Reader) tokenResponse {
	t.Helper()
	var tr tokenResponse
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil {
		t.Fatalf("response is not the expected JSON: %v", err)
	}
	return tr
}

// issue requests a token and fails the test unless one is issued.
func (ts *testServer) issue(t testing.TB, form url.Values, id, secret string) tokenResponse {
	t.Helper()
	w := ts.do(tokenReq(form, id, secret))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	return decodeResponse(t, w.Body)
}

func grant() url.Values { return url.Values{"grant_type": {"client_credentials"}} }

// accessClaims are the claims of an RFC 9068 access token issued here.
type accessClaims struct {
	jwt.Claims
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope"`
	Namespace string `json:"namespace"`
	Team      string `json:"team"`
}

// verifyToken verifies a token against a JWKS document and returns its header and claims.
func verifyToken(t testing.TB, token string, jwks []byte) (jose.Header, accessClaims, map[string]any) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parsing token: %v", err)
	}
	hdr := tok.Headers[0]
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS once (%d)", hdr.KeyID, len(keys))
	}
	var c accessClaims
	raw := map[string]any{}
	if err := tok.Claims(keys[0].Key, &c, &raw); err != nil {
		t.Fatalf("verifying token: %v", err)
	}
	return hdr, c, raw
}

func (ts *testServer) jwks(t testing.TB) []byte {
	t.Helper()
	w := ts.do(httptest.NewRequest(http.MethodGet, JWKSPath, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("JWKS status %d", w.Code)
	}
	return w.Body.Bytes()
}

func urlQueryUnescape(s string) (string, error) { return url.QueryUnescape(s) }
