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
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

const inactive = `{"active":false}`

// introspectReq builds an introspection request: form body, optional Basic credentials.
func introspectReq(form url.Values, basicID, basicSecret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, IntrospectionPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		r.Header.Set("Authorization", basicAuth(basicID, basicSecret))
	}
	return r
}

// introspect asks about token as the client id/secret and returns the 200 body.
func (ts *testServer) introspect(t *testing.T, token, id, secret string) string {
	t.Helper()
	w := ts.do(introspectReq(url.Values{"token": {token}}, id, secret))
	if w.Code != http.StatusOK {
		t.Fatalf("introspection status %d, body %s", w.Code, w.Body)
	}
	if ct, cc := w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Fatalf("Content-Type %q, Cache-Control %q", ct, cc)
	}
	return w.Body.String()
}

type introspected struct {
	Active    bool   `json:"active"`
	ClientID  string `json:"client_id"`
	Sub       string `json:"sub"`
	Aud       string `json:"aud"`
	Iss       string `json:"iss"`
	Exp       int64  `json:"exp"`
	Iat       int64  `json:"iat"`
	Nbf       int64  `json:"nbf"`
	JTI       string `json:"jti"`
	Scope     string `json:"scope"`
	TokenType string `json:"token_type"`
	Namespace string `json:"namespace"`
	Cnf       *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

func decodeIntrospection(t *testing.T, body string) introspected {
	t.Helper()
	var got introspected
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("introspection answer %s: %v", body, err)
	}
	return got
}

// TestIntrospectionRefusesEveryAttackToken forges the verify attack table against the server's
// own issuer and signing key, for a client that exists, and introspects each as that client.
func TestIntrospectionRefusesEveryAttackToken(t *testing.T) {
	// A large body cap lets the 300 KB token reach the verifier's own size check.
	ts := newTestServer(t, func(o *Options) { o.MaxBodyBytes = 1 << 20 })
	id, secret := ts.addClient(t, func(r *credential.Record) {
		r.ClientID = verifytest.DefaultClientID
		r.Namespace = verifytest.DefaultNamespace
		r.Grants = []credential.AudienceGrant{{Audience: verifytest.DefaultAudience, Scopes: []string{verifytest.DefaultScope}, PolicyNamespace: "billing"}}
	})
	active := ts.set.Find(signingkey.StateActive)
	signer, err := active.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss := verifytest.NewIssuer(t,
		verifytest.WithSigningKey(active.KID, jose.SignatureAlgorithm(active.Algorithm), signer),
		verifytest.WithIssuerURL(testIssuer), verifytest.WithAudience(verifytest.DefaultAudience),
		verifytest.WithClock(ts.clock.Now))

	// The control: the same claims, signed as the issuer would, are active for this client.
	if got := decodeIntrospection(t, ts.introspect(t, iss.Token(), id, secret)); !got.Active || got.ClientID != id {
		t.Fatalf("the valid forged-issuer token is not active: %+v", got)
	}
	for _, a := range verifytest.AttackTokens(iss) {
		t.Run(a.Name, func(t *testing.T) {
			if body := ts.introspect(t, a.Token, id, secret); body != inactive {
				t.Fatalf("answer %s", body)
			}
		})
	}
}

// TestIntrospectionWhoMayAsk: the token's own client and clients in the audience owner's
// namespace see an active token; anyone else gets {"active":false}.
func TestIntrospectionWhoMayAsk(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) {
		r.Grants[0].PolicyNamespace = "billing"
	})
	rsID, rsSecret := ts.addClient(t, func(r *credential.Record) { r.Namespace = "billing"; r.Name = "billing-api"; r.Grants = nil })
	otherID, otherSecret := ts.addClient(t, func(r *credential.Record) { r.Namespace = "elsewhere" })
	tok := ts.issue(t, grant(), id, secret).AccessToken

	got := decodeIntrospection(t, ts.introspect(t, tok, id, secret))
	now := testT0.Unix()
	want := introspected{Active: true, ClientID: id, Sub: id, Aud: audBilling, Iss: testIssuer, Exp: now + 900, Iat: now, Nbf: now,
		JTI: got.JTI, Scope: "invoices:read invoices:write", TokenType: "Bearer", Namespace: "payments"}
	if got != want || got.JTI == "" {
		t.Fatalf("own client:\n got %+v\nwant %+v", got, want)
	}
	if got := decodeIntrospection(t, ts.introspect(t, tok, rsID, rsSecret)); got != want {
		t.Fatalf("audience owner's namespace: %+v", got)
	}
	if body := ts.introspect(t, tok, otherID, otherSecret); body != inactive {
		t.Fatalf("unrelated client: %s", body)
	}
	// client_secret_post works the same.
	w := ts.do(introspectReq(url.Values{"token": {tok}, "client_id": {rsID}, "client_secret": {rsSecret}, "token_type_hint": {"refresh_token"}}, "", ""))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Body.String(), `{"active":true`) {
		t.Fatalf("client_secret_post: %d %s", w.Code, w.Body)
	}
}

// TestIntrospectionRevocation: a token stops being active when its client is disabled or
// removed, loses the audience or a scope, or expires.
func TestIntrospectionRevocation(t *testing.T) {
	for name, change := range map[string]func(*testServer, *credential.Record){
		"disabled":       func(_ *testServer, r *credential.Record) { r.Disabled = true },
		"grant removed":  func(_ *testServer, r *credential.Record) { r.Grants = nil },
		"scope removed":  func(_ *testServer, r *credential.Record) { r.Grants[0].Scopes = []string{"invoices:read"} },
		"expired":        func(ts *testServer, _ *credential.Record) { ts.clock.Add(16 * time.Minute) },
		"tokens revoked": func(ts *testServer, r *credential.Record) { r.TokensNotBefore = ts.clock.Now().Unix() + 1 },
		"audience revoked": func(ts *testServer, r *credential.Record) {
			r.AudienceNotBefore = []credential.AudienceNotBefore{{Audience: audBilling, NotBefore: ts.clock.Now().Unix() + 1}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t)
			rec, secret := newRecord(t)
			src := "m2m-system/" + rec.UID
			if err := ts.Index().Put(src, rec); err != nil {
				t.Fatal(err)
			}
			tok := ts.issue(t, grant(), rec.ClientID, secret).AccessToken
			rsID, rsSecret := ts.addClient(t, func(r *credential.Record) { r.Namespace = "billing" })
			rec.Grants[0].PolicyNamespace = "billing"
			if err := ts.Index().Put(src, rec); err != nil {
				t.Fatal(err)
			}
			if body := ts.introspect(t, tok, rsID, rsSecret); !strings.HasPrefix(body, `{"active":true`) {
				t.Fatalf("before: %s", body)
			}
			changed := *rec
			changed.Grants = append([]credential.AudienceGrant(nil), rec.Grants...)
			change(ts, &changed)
			if err := ts.Index().Put(src, &changed); err != nil {
				t.Fatal(err)
			}
			if body := ts.introspect(t, tok, rsID, rsSecret); body != inactive {
				t.Fatalf("after: %s", body)
			}
		})
	}
	t.Run("removed", func(t *testing.T) {
		ts := newTestServer(t)
		rec, secret := newRecord(t)
		if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
			t.Fatal(err)
		}
		tok := ts.issue(t, grant(), rec.ClientID, secret).AccessToken
		rsID, rsSecret := ts.addClient(t)
		ts.Index().Remove("m2m-system/" + rec.UID)
		if body := ts.introspect(t, tok, rsID, rsSecret); body != inactive {
			t.Fatalf("after removal: %s", body)
		}
	})
}

// TestIntrospectionFollowsKeyRotation: tokens of a retired key stay active while it is
// published, and stop when it is not.
func TestIntrospectionFollowsKeyRotation(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	tok := ts.issue(t, grant(), id, secret).AccessToken
	if err := ts.SetKeys(activeKeySet(t, signingkey.ES256, ts.clock.Now())); err != nil {
		t.Fatal(err)
	}
	if body := ts.introspect(t, tok, id, secret); body != inactive {
		t.Fatalf("a token of an unpublished key: %s", body)
	}
	if err := ts.SetKeys(ts.set); err != nil {
		t.Fatal(err)
	}
	if body := ts.introspect(t, tok, id, secret); !strings.HasPrefix(body, `{"active":true`) {
		t.Fatalf("the key is published again: %s", body)
	}
}

// TestIntrospectionRequestErrors: the request rules of the token endpoint, and the token
// parameter.
func TestIntrospectionRequestErrors(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	tok := ts.issue(t, grant(), id, secret).AccessToken
	withCT := func(ct string) *http.Request {
		r := introspectReq(url.Values{"token": {tok}}, id, secret)
		r.Header.Set("Content-Type", ct)
		return r
	}
	for name, tc := range map[string]struct {
		r      *http.Request
		status int
		code   string
	}{
		"no credentials":      {introspectReq(url.Values{"token": {tok}}, "", ""), 400, errInvalidClient},
		"wrong secret (post)": {introspectReq(url.Values{"token": {tok}, "client_id": {id}, "client_secret": {"wrong"}}, "", ""), 400, errInvalidClient},
		"wrong secret":        {introspectReq(url.Values{"token": {tok}}, id, "wrong"), 401, errInvalidClient},
		"unknown client":      {introspectReq(url.Values{"token": {tok}}, "m2mc_nobody", secret), 401, errInvalidClient},
		"token missing":       {introspectReq(url.Values{}, id, secret), 400, errInvalidRequest},
		"token repeated":      {introspectReq(url.Values{"token": {tok, tok}}, id, secret), 400, errInvalidRequest},
		"two auth ways":       {introspectReq(url.Values{"token": {tok}, "client_secret": {secret}}, id, secret), 400, errInvalidRequest},
		"content type":        {withCT("application/json"), 400, errInvalidRequest},
		"GET":                 {httptest.NewRequest(http.MethodGet, IntrospectionPath+"?token="+tok, nil), 405, errInvalidRequest},
		"body over limit":     {introspectReq(url.Values{"token": {strings.Repeat("A", DefaultMaxBodyBytes)}}, id, secret), 413, errInvalidRequest},
	} {
		t.Run(name, func(t *testing.T) {
			w := ts.do(tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := decodeResponse(t, w.Body); got.Error != tc.code {
				t.Fatalf("error %q, want %q", got.Error, tc.code)
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if tc.status != 401 && w.Header().Get("WWW-Authenticate") != "" {
				t.Fatalf("%d with WWW-Authenticate", tc.status)
			}
		})
	}
}

// TestIntrospectionByDisabledCaller: a disabled client is refused as at the token endpoint.
func TestIntrospectionByDisabledCaller(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	tok := ts.issue(t, grant(), id, secret).AccessToken
	offID, offSecret := ts.addClient(t, func(r *credential.Record) { r.Disabled = true })
	w := ts.do(introspectReq(url.Values{"token": {tok}}, offID, offSecret))
	if w.Code != http.StatusBadRequest || decodeResponse(t, w.Body).Error != errUnauthorizedClient {
		t.Fatalf("status %d", w.Code)
	}
}

// TestIntrospectionFailuresSlowDown: failed authentications at introspection spend the same
// per-client budget as at the token endpoint.
func TestIntrospectionFailuresSlowDown(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.AuthFailureRate = 0.001; o.AuthFailureBurst = 2 })
	id, secret := ts.addClient(t)
	codes := []int{}
	for range 3 {
		codes = append(codes, ts.do(introspectReq(url.Values{"token": {"x"}}, id, "wrong")).Code)
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 429 {
		t.Fatalf("codes %v", codes)
	}
	if body := ts.introspect(t, "", id, secret); body != inactive {
		t.Fatalf("the right secret is still accepted: %s", body)
	}
}

func TestMetadataAdvertisesIntrospection(t *testing.T) {
	ts := newTestServer(t)
	w := ts.do(httptest.NewRequest(http.MethodGet, ASMetadataPath, nil))
	var md map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if md["introspection_endpoint"] != testIssuer+IntrospectionPath {
		t.Fatalf("introspection_endpoint %v", md["introspection_endpoint"])
	}
	methods, _ := md["introspection_endpoint_auth_methods_supported"].([]any)
	if len(methods) != 3 || methods[0] != "client_secret_basic" || methods[1] != "client_secret_post" || methods[2] != "private_key_jwt" {
		t.Fatalf("introspection_endpoint_auth_methods_supported %v", methods)
	}
}

// FuzzIntrospectToken introspects arbitrary tokens, mutated from a real one, as their own
// client: no panic, no 5xx; the answer is {"active":false} or an active answer about the
// client itself.
func FuzzIntrospectToken(f *testing.F) {
	ts := fuzzTarget(f)
	form := grant()
	form.Set("resource", audBilling)
	tok := ts.issue(f, form, fuzzID, fuzzSecret).AccessToken
	for _, s := range []string{tok, tok + ".", strings.Replace(tok, ".", "..", 1), "", "a.b.c", "e30.e30.", strings.ToUpper(tok)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		w := ts.do(introspectReq(url.Values{"token": {token}}, fuzzID, fuzzSecret))
		if w.Code != http.StatusOK && w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Code != http.StatusOK || w.Body.String() == inactive {
			return
		}
		var got introspected
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || !got.Active || got.ClientID != fuzzID {
			t.Fatalf("answer %s (%v)", w.Body, err)
		}
	})
}
