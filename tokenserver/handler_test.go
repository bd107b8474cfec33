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
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

func TestIssueWithBasicAndPost(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) { r.Claims = map[string]string{"team": "payments"} })
	jwks := ts.jwks(t)
	post := grant()
	post.Set("client_id", id)
	post.Set("client_secret", secret)
	for name, w := range map[string]*httptest.ResponseRecorder{
		"basic": ts.do(tokenReq(grant(), id, secret)),
		"post":  ts.do(tokenReq(post, "", "")),
	} {
		t.Run(name, func(t *testing.T) {
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
				if got := w.Header().Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			tr := decodeResponse(t, w.Body)
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 900 || tr.Scope != "invoices:read invoices:write" {
				t.Errorf("response %+v", tr)
			}
			hdr, c, raw := verifyToken(t, tr.AccessToken, jwks)
			if hdr.ExtraHeaders["typ"] != "at+jwt" || hdr.Algorithm != "ES256" || hdr.KeyID != ts.set.Keys[0].KID {
				t.Errorf("header %+v", hdr)
			}
			now := testT0.Unix()
			if c.Issuer != testIssuer || c.Subject != id || c.ClientID != id || c.Namespace != "payments" || c.Team != "payments" ||
				c.Scope != "invoices:read invoices:write" || len(c.Audience) != 1 || c.Audience[0] != audBilling {
				t.Errorf("claims %+v", c)
			}
			if _, isString := raw["aud"].(string); !isString {
				t.Errorf("aud is %T, want a single string", raw["aud"])
			}
			if c.IssuedAt.Time().Unix() != now || c.NotBefore.Time().Unix() != now || c.Expiry.Time().Unix() != now+900 {
				t.Errorf("times iat=%v nbf=%v exp=%v", c.IssuedAt, c.NotBefore, c.Expiry)
			}
			if jti, _ := base64.RawURLEncoding.DecodeString(c.ID); len(jti) < 16 {
				t.Errorf("jti %q carries fewer than 128 bits", c.ID)
			}
			parts := strings.Split(tr.AccessToken, ".")
			if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(sig) != 64 {
				t.Errorf("ES256 signature is %d bytes, want raw R||S of 64", len(sig))
			}
		})
	}
}

func TestJTIIsUniquePerToken(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	jwks := ts.jwks(t)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		_, c, _ := verifyToken(t, ts.issue(t, grant(), id, secret).AccessToken, jwks)
		if seen[c.ID] {
			t.Fatalf("jti %s repeated", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestRecordClaimsNeverOverrideRegisteredOnes(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) {
		r.Claims = map[string]string{"sub": "evil", "iss": "evil", "aud": "evil", "scope": "admin", "client_id": "evil",
			"namespace": "kube-system", "exp": "9999999999", "team": "a\"b\\c\n"}
	})
	_, c, raw := verifyToken(t, ts.issue(t, grant(), id, secret).AccessToken, ts.jwks(t))
	if c.Subject != id || c.Issuer != testIssuer || c.Audience[0] != audBilling || c.Scope != "invoices:read invoices:write" ||
		c.ClientID != id || c.Namespace != "payments" || c.Expiry.Time().Unix() != testT0.Unix()+900 {
		t.Fatalf("a record claim overrode a registered claim: %+v", c)
	}
	if raw["team"] != "a\"b\\c\n" {
		t.Errorf("extra claim not escaped faithfully: %q", raw["team"])
	}
}

// TestRecordClaimsNeverSpoofIdentityInAnyCase: a resource server decoding with encoding/json
// struct tags (golang-jwt and most Go code) matches member names case-insensitively, last one
// winning; no case variant of a reserved name, and no pair of names that fold equal, may reach
// a token.
func TestRecordClaimsNeverSpoofIdentityInAnyCase(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) {
		r.Claims = map[string]string{"Sub": "m2mc_victim", "Client_ID": "m2mc_victim", "NAMESPACE": "billing",
			"\u017fcope": "admin", "Act": "x", "Roles": "admin", "AZP": "m2mc_victim", "Team": "a", "team": "b", "tier": "gold"}
	})
	token := ts.issue(t, grant(), id, secret).AccessToken
	_, _, raw := verifyToken(t, token, ts.jwks(t))
	names := map[string][]string{}
	for k := range raw {
		names[authv1alpha1.FoldClaimName(k)] = append(names[authv1alpha1.FoldClaimName(k)], k)
	}
	for fold, ks := range names {
		if len(ks) > 1 {
			t.Errorf("the token holds %v, which fold equal (%q)", ks, fold)
		}
	}
	if raw["tier"] != "gold" {
		t.Errorf("an ordinary claim was lost: %v", raw)
	}
	for _, k := range []string{"Team", "team", "Act", "Roles", "AZP"} {
		if _, ok := raw[k]; ok {
			t.Errorf("claim %q reached the token", k)
		}
	}
	// What a case-insensitive decoder sees.
	var decoded struct {
		Sub       string `json:"sub"`
		ClientID  string `json:"client_id"`
		Namespace string `json:"namespace"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Sub != id || decoded.ClientID != id || decoded.Namespace != "payments" {
		t.Fatalf("encoding/json decodes the identity as %+v, want the client's own", decoded)
	}
}

// TestHostileRequests: malformed or hostile requests, each with its status and error code.
func TestHostileRequests(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxBodyBytes = 1024 })
	id, secret := ts.addClient(t)
	otherID, _ := ts.addClient(t)
	// A PrivateKeyJWT record that also carries a secret hash is broken: the client is refused.
	psRec, psSecret := newRecord(t, func(r *credential.Record) { r.Method = "PrivateKeyJWT" })
	if err := ts.Index().Put("m2m-system/"+psRec.UID, psRec); err == nil {
		t.Fatal("a PrivateKeyJWT record with a secret hash was accepted")
	}
	psID := psRec.ClientID
	form := func(kv ...string) string {
		var b []string
		for i := 0; i < len(kv); i += 2 {
			b = append(b, kv[i]+"="+kv[i+1])
		}
		return strings.Join(b, "&")
	}
	good := "grant_type=client_credentials"
	creds := "&client_id=" + id + "&client_secret=" + secret
	type tc struct {
		name   string
		method string
		ctype  string
		auth   []string
		body   string
		status int
		code   string
	}
	cases := []tc{
		{name: "GET", method: http.MethodGet, status: 405, code: errInvalidRequest},
		{name: "PUT", method: http.MethodPut, body: good + creds, status: 405, code: errInvalidRequest},
		{name: "no content type", ctype: "-", body: good + creds, status: 400, code: errInvalidRequest},
		{name: "JSON content type", ctype: "application/json", body: `{"grant_type":"client_credentials"}`, status: 400, code: errInvalidRequest},
		{name: "multipart", ctype: "multipart/form-data; boundary=x", body: good + creds, status: 400, code: errInvalidRequest},
		{name: "body too large", body: good + creds + "&pad=" + strings.Repeat("a", 2000), status: 413, code: errInvalidRequest},
		{name: "duplicate grant_type", body: good + "&" + good + creds, status: 400, code: errInvalidRequest},
		{name: "duplicate client_id", body: good + creds + "&client_id=" + id, status: 400, code: errInvalidRequest},
		{name: "duplicate empty scope", body: good + creds + "&scope=&scope=", status: 400, code: errInvalidRequest},
		{name: "bad percent-encoding", body: good + creds + "&scope=%zz", status: 400, code: errInvalidRequest},
		{name: "truncated percent-encoding", body: good + creds + "&scope=%4", status: 400, code: errInvalidRequest},
		{name: "bad percent-encoding in a name", body: good + creds + "&sc%ope=x", status: 400, code: errInvalidRequest},
		{name: "too many parameters", body: good + creds + strings.Repeat("&x=1", 100), status: 400, code: errInvalidRequest},
		{name: "missing grant_type", body: "client_id=" + id + "&client_secret=" + secret, status: 400, code: errInvalidRequest},
		{name: "empty grant_type", body: "grant_type=" + creds, status: 400, code: errInvalidRequest},
		{name: "password grant", body: form("grant_type", "password", "username", "a", "password", "b") + creds, status: 400, code: errUnsupportedGrantType},
		{name: "authorization_code grant", body: form("grant_type", "authorization_code", "code", "x") + creds, status: 400, code: errUnsupportedGrantType},
		{name: "both Basic and post", auth: []string{basicAuth(id, secret)}, body: good + creds, status: 400, code: errInvalidRequest},
		{name: "Basic plus other client_id", auth: []string{basicAuth(id, secret)}, body: good + "&client_id=" + otherID, status: 400, code: errInvalidRequest},
		{name: "two Authorization headers", auth: []string{basicAuth(id, secret), basicAuth(id, secret)}, body: good, status: 400, code: errInvalidRequest},
		{name: "bad base64", auth: []string{"Basic !!!notbase64"}, body: good, status: 400, code: errInvalidRequest},
		{name: "base64 without padding", auth: []string{"Basic " + base64.RawStdEncoding.EncodeToString([]byte(id+":x"))}, body: good, status: 400, code: errInvalidRequest},
		{name: "Basic without colon", auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(id))}, body: good, status: 400, code: errInvalidRequest},
		{name: "Basic bad percent-encoding", auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":%G0"))}, body: good, status: 400, code: errInvalidRequest},
		{name: "Bearer scheme", auth: []string{"Bearer abc"}, body: good, status: 401, code: errInvalidClient},
		{name: "no credentials", body: good, status: 400, code: errInvalidClient},
		{name: "client_id without secret", body: good + "&client_id=" + id, status: 400, code: errInvalidClient},
		{name: "secret without client_id", body: good + "&client_secret=" + secret, status: 400, code: errInvalidClient},
		{name: "wrong secret (Basic)", auth: []string{basicAuth(id, otherLastChar(secret))}, body: good, status: 401, code: errInvalidClient},
		{name: "wrong secret (post)", body: good + "&client_id=" + id + "&client_secret=nope", status: 400, code: errInvalidClient},
		{name: "unknown client", auth: []string{basicAuth("m2mc_doesnotexist", secret)}, body: good, status: 401, code: errInvalidClient},
		{name: "another client's secret", auth: []string{basicAuth(otherID, secret)}, body: good, status: 401, code: errInvalidClient},
		{name: "PrivateKeyJWT client with its hash", auth: []string{basicAuth(psID, psSecret)}, body: good, status: 401, code: errInvalidClient},
		{name: "empty secret", auth: []string{basicAuth(id, "")}, body: good, status: 401, code: errInvalidClient},
		{name: "scope not granted", body: good + creds + "&scope=invoices:delete", status: 400, code: errInvalidScope},
		{name: "scope with double space", body: good + creds + "&scope=invoices:read++invoices:write", status: 400, code: errInvalidScope},
		{name: "scope with a quote", body: good + creds + "&scope=%22", status: 400, code: errInvalidScope},
		{name: "scope with a control char", body: good + creds + "&scope=a%00b", status: 400, code: errInvalidScope},
		{name: "trailing space in scope", body: good + creds + "&scope=invoices:read+", status: 400, code: errInvalidScope},
		{name: "unknown resource", body: good + creds + "&resource=https://evil.example", status: 400, code: errInvalidTarget},
		{name: "unknown audience", body: good + creds + "&audience=admin.kube-system", status: 400, code: errInvalidTarget},
		{name: "two resources", body: good + creds + "&resource=" + audBilling + "&resource=" + audBilling, status: 400, code: errInvalidTarget},
		{name: "resource and audience differ", body: good + creds + "&resource=" + audBilling + "&audience=other", status: 400, code: errInvalidRequest},
		{name: "secret in the query only", method: http.MethodPost, body: good + "&client_id=" + id, status: 400, code: errInvalidClient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			target := TokenPath
			if c.name == "secret in the query only" {
				target += "?client_secret=" + url.QueryEscape(secret)
			}
			r := httptest.NewRequest(method, target, strings.NewReader(c.body))
			switch c.ctype {
			case "":
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				r.Header.Set("Content-Type", c.ctype)
			}
			for _, a := range c.auth {
				r.Header.Add("Authorization", a)
			}
			w := ts.do(r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d (body %s)", w.Code, c.status, w.Body)
			}
			tr := decodeResponse(t, w.Body)
			if tr.Error != c.code {
				t.Errorf("error %q, want %q", tr.Error, c.code)
			}
			if tr.AccessToken != "" || strings.Contains(w.Body.String(), secret) {
				t.Errorf("an error response carries a token or the secret: %s", w.Body)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			switch c.status {
			case 405:
				if w.Header().Get("Allow") != http.MethodPost {
					t.Errorf("Allow %q", w.Header().Get("Allow"))
				}
			case 401:
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Basic realm="`) {
					t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
				}
				if len(c.auth) == 0 {
					t.Errorf("401 without an Authorization header (RFC 6749 §5.2: 400 invalid_client)")
				}
			default:
				if v := w.Header().Get("WWW-Authenticate"); v != "" {
					t.Errorf("%d with WWW-Authenticate %q", c.status, v)
				}
			}
		})
	}
	if len(cases) < 20 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
}

func TestBodyTooLargeWithoutContentLength(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxBodyBytes = 100 })
	r := tokenReq(grant(), "", "")
	r.Body = readerOnly{strings.NewReader("grant_type=client_credentials&pad=" + strings.Repeat("x", 500))}
	r.ContentLength = -1
	if w := ts.do(r); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", w.Code)
	}
}

type readerOnly struct{ r *strings.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r readerOnly) Close() error               { return nil }

func TestBasicCredentialsAreFormDecoded(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	// Percent-encode every character of the id: a compliant client may do so (RFC 6749 §2.3.1).
	var enc strings.Builder
	for i := 0; i < len(id); i++ {
		enc.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[id[i]>>4])+string("0123456789abcdef"[id[i]&15])))
	}
	r := tokenReq(grant(), "", "")
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(enc.String()+":"+secret)))
	if w := ts.do(r); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// Basic plus the same client_id in the body is fine.
	form := grant()
	form.Set("client_id", id)
	ts.issue(t, form, id, secret)
}

func TestAudienceAndScopeSelection(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) {
		r.Grants = []credential.AudienceGrant{
			{Audience: audBilling, Scopes: []string{"invoices:read", "shared:x"}},
			{Audience: audReports, Scopes: []string{"reports:read", "shared:x"}},
		}
	})
	jwks := ts.jwks(t)
	type want struct {
		status int
		code   string
		aud    string
		scope  string
	}
	cases := map[string]struct {
		params map[string]string
		want   want
	}{
		"resource picks":              {map[string]string{"resource": audReports}, want{200, "", audReports, "reports:read shared:x"}},
		"audience picks":              {map[string]string{"audience": audBilling}, want{200, "", audBilling, "invoices:read shared:x"}},
		"resource and audience agree": {map[string]string{"audience": audBilling, "resource": audBilling}, want{200, "", audBilling, "invoices:read shared:x"}},
		"scope picks":                 {map[string]string{"scope": "reports:read"}, want{200, "", audReports, "reports:read"}},
		"scope deduplicated":          {map[string]string{"scope": "reports:read shared:x reports:read"}, want{200, "", audReports, "reports:read shared:x"}},
		"scope ambiguous":             {map[string]string{"scope": "shared:x"}, want{400, errInvalidTarget, "", ""}},
		"scope spans audiences":       {map[string]string{"scope": "invoices:read reports:read"}, want{400, errInvalidTarget, "", ""}},
		"nothing named":               {map[string]string{}, want{400, errInvalidTarget, "", ""}},
		"scope not in the audience":   {map[string]string{"resource": audBilling, "scope": "reports:read"}, want{400, errInvalidScope, "", ""}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			form := grant()
			for k, v := range c.params {
				form.Set(k, v)
			}
			w := ts.do(tokenReq(form, id, secret))
			tr := decodeResponse(t, w.Body)
			if w.Code != c.want.status || tr.Error != c.want.code {
				t.Fatalf("status %d error %q, want %d %q", w.Code, tr.Error, c.want.status, c.want.code)
			}
			if w.Code != 200 {
				return
			}
			_, claims, _ := verifyToken(t, tr.AccessToken, jwks)
			if claims.Audience[0] != c.want.aud || claims.Scope != c.want.scope || tr.Scope != c.want.scope {
				t.Errorf("aud %v scope %q (response %q), want %s %q", claims.Audience, claims.Scope, tr.Scope, c.want.aud, c.want.scope)
			}
		})
	}
}

func TestNoAudienceAtAll(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) { r.Grants = nil })
	w := ts.do(tokenReq(grant(), id, secret))
	if tr := decodeResponse(t, w.Body); w.Code != 400 || tr.Error != errInvalidScope || tr.ErrorDescription != "no scope is granted to the client" {
		t.Fatalf("nothing named: status %d error %q %q, want 400 invalid_scope", w.Code, tr.Error, tr.ErrorDescription)
	}
	form := grant()
	form.Set("audience", audBilling)
	if tr := decodeResponse(t, ts.do(tokenReq(form, id, secret)).Body); tr.Error != errInvalidTarget {
		t.Fatalf("an audience named: error %q, want invalid_target", tr.Error)
	}
}

func TestTokenTTL(t *testing.T) {
	cases := []struct {
		name      string
		clientTTL int64
		audMax    int64
		serverMax time.Duration
		want      int64
	}{
		{"server default", 0, 0, 24 * time.Hour, 900},
		{"client TTL", 3600, 0, 24 * time.Hour, 3600},
		{"audience cap", 3600, 600, 24 * time.Hour, 600},
		{"audience cap above client", 600, 3600, 24 * time.Hour, 600},
		{"server maximum", 7200, 0, time.Hour, 3600},
		{"server maximum caps the default", 0, 0, 5 * time.Minute, 300},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) { o.MaxTokenTTL = c.serverMax })
			id, secret := ts.addClient(t, func(r *credential.Record) {
				r.TokenTTLSeconds = c.clientTTL
				r.Grants[0].MaxTokenTTLSeconds = c.audMax
			})
			tr := ts.issue(t, grant(), id, secret)
			_, claims, _ := verifyToken(t, tr.AccessToken, ts.jwks(t))
			if tr.ExpiresIn != c.want || claims.Expiry.Time().Unix()-claims.IssuedAt.Time().Unix() != c.want {
				t.Errorf("expires_in %d, exp-iat %d, want %d", tr.ExpiresIn, claims.Expiry.Time().Unix()-claims.IssuedAt.Time().Unix(), c.want)
			}
		})
	}
}

func TestDisabledClientIsRefusedOnlyAfterAuthentication(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t, func(r *credential.Record) { r.Disabled = true })
	w := ts.do(tokenReq(grant(), id, secret))
	if tr := decodeResponse(t, w.Body); w.Code != 400 || tr.Error != errUnauthorizedClient {
		t.Fatalf("correct secret: status %d error %q, want 400 unauthorized_client", w.Code, tr.Error)
	}
	w = ts.do(tokenReq(grant(), id, "m2ms_wrong"))
	if tr := decodeResponse(t, w.Body); w.Code != 401 || tr.Error != errInvalidClient {
		t.Fatalf("wrong secret: status %d error %q, want 401 invalid_client (nothing revealed)", w.Code, tr.Error)
	}
}

func TestSecretNotAfter(t *testing.T) {
	ts := newTestServer(t)
	oldSecret, _ := credential.NewSecret()
	graceEnd := testT0.Add(time.Hour)
	id, newSecret := ts.addClient(t, func(r *credential.Record) {
		r.Secrets = append(r.Secrets, credential.SecretHash{SHA256: credential.HashSecret(oldSecret).String(), NotAfter: &graceEnd})
	})
	ts.issue(t, grant(), id, oldSecret)
	ts.issue(t, grant(), id, newSecret)
	ts.clock.Set(graceEnd)
	if w := ts.do(tokenReq(grant(), id, oldSecret)); w.Code != 401 {
		t.Fatalf("old secret after its notAfter: status %d, want 401", w.Code)
	}
	ts.issue(t, grant(), id, newSecret)
}

func TestIssuanceRateLimit(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.RateLimit, o.RateBurst = 0.001, 3 })
	id, secret := ts.addClient(t)
	for i := 0; i < 3; i++ {
		ts.issue(t, grant(), id, secret)
	}
	w := ts.do(tokenReq(grant(), id, secret))
	tr := decodeResponse(t, w.Body)
	if w.Code != http.StatusTooManyRequests || tr.Error != errSlowDown || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d error %q Retry-After %q", w.Code, tr.Error, w.Header().Get("Retry-After"))
	}
	// Another client is unaffected.
	id2, secret2 := ts.addClient(t)
	ts.issue(t, grant(), id2, secret2)
}

func TestRateLimitSurvivesARecordUpdate(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.RateLimit, o.RateBurst = 0.001, 1 })
	rec, secret := newRecord(t)
	if err := ts.Index().Put("m2m-system/x", rec); err != nil {
		t.Fatal(err)
	}
	ts.issue(t, grant(), rec.ClientID, secret)
	rec.Claims = map[string]string{"team": "new"}
	if err := ts.Index().Put("m2m-system/x", rec); err != nil {
		t.Fatal(err)
	}
	if w := ts.do(tokenReq(grant(), rec.ClientID, secret)); w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: an update must not refill the bucket", w.Code)
	}
}

func TestRepeatedAuthFailuresSlowDownButNeverLockOut(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.AuthFailureRate, o.AuthFailureBurst = 0.001, 3 })
	id, secret := ts.addClient(t)
	for i := 0; i < 3; i++ {
		if w := ts.do(tokenReq(grant(), id, "wrong")); w.Code != 401 {
			t.Fatalf("failure %d: status %d, want 401", i, w.Code)
		}
	}
	w := ts.do(tokenReq(grant(), id, "wrong"))
	if tr := decodeResponse(t, w.Body); w.Code != 429 || tr.Error != errSlowDown || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d error %q, want 429 slow_down with Retry-After", w.Code, tr.Error)
	}
	// The real client, holding the secret, is not locked out by someone else's failures.
	ts.issue(t, grant(), id, secret)
	// Unknown ids use the fixed failure table: no per-id state grows.
	before := ts.Index().Len()
	for i := 0; i < 200; i++ {
		ts.do(tokenReq(grant(), "m2mc_unknown"+strings.Repeat("x", i%50), "s"))
	}
	if ts.Index().Len() != before {
		t.Fatal("unknown ids changed the index")
	}
}

func TestInFlightCap(t *testing.T) {
	// The audit line is written inside the slot: a writer that blocks holds the slot.
	audit := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	ts := newTestServer(t, func(o *Options) { o.MaxInFlight, o.AuditLog = 1, audit })
	id, secret := ts.addClient(t)
	done := make(chan int)
	go func() { done <- ts.do(tokenReq(grant(), id, secret)).Code }()
	<-audit.entered
	// The refusal is audited too, so it answers once its line, queued behind the blocked
	// write, is written.
	refused := make(chan *httptest.ResponseRecorder)
	go func() { refused <- ts.do(tokenReq(grant(), id, secret)) }()
	waitPendingAuditLines(t, ts.Server, 1)
	close(audit.release)
	w := <-refused
	if tr := decodeResponse(t, w.Body); w.Code != 503 || tr.Error != errTemporarilyUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d error %q, want 503 with Retry-After", w.Code, tr.Error)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the held request got %d", code)
	}
	ts.issue(t, grant(), id, secret)
}

// TestSlowBodyHoldsNoSlot: a request whose body has not arrived yet holds no in-flight slot.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxInFlight = 1 })
	id, secret := ts.addClient(t)
	entered, release := make(chan struct{}), make(chan struct{})
	blocked := tokenReq(grant(), id, secret)
	blocked.Body = &blockingBody{r: strings.NewReader("grant_type=client_credentials"), entered: entered, release: release}
	blocked.ContentLength = -1
	done := make(chan int)
	go func() { done <- ts.do(blocked).Code }()
	<-entered
	ts.issue(t, grant(), id, secret)
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("the slow request got %d", code)
	}
}

// blockingWriter blocks its first Write until released.
type blockingWriter struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	return len(p), nil
}

type blockingBody struct {
	r        *strings.Reader
	entered  chan struct{}
	release  chan struct{}
	signaled bool
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if !b.signaled {
		b.signaled = true
		close(b.entered)
		<-b.release
	}
	return b.r.Read(p)
}
func (b *blockingBody) Close() error { return nil }

func TestNoSigningKeyMeans503AndNotReady(t *testing.T) {
	s, err := New(Options{Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s}
	id, secret := ts.addClient(t)
	w := ts.do(tokenReq(grant(), id, secret))
	if w.Code != 503 {
		t.Fatalf("status %d, want 503 without a key", w.Code)
	}
	rz := ts.probe("/readyz")
	if rz.Code != 503 {
		t.Fatalf("readyz %d before sync and keys", rz.Code)
	}
	if hz := ts.probe("/healthz"); hz.Code != 200 {
		t.Fatalf("healthz %d", hz.Code)
	}
	s.MarkSynced()
	if rz := ts.probe("/readyz"); rz.Code != 503 {
		t.Fatalf("readyz %d without an active key", rz.Code)
	}
	if err := s.SetKeys(activeKeySet(t, "EdDSA", testT0)); err != nil {
		t.Fatal(err)
	}
	if rz := ts.probe("/readyz"); rz.Code != 200 {
		t.Fatalf("readyz %d when ready", rz.Code)
	}
}

func TestEveryAlgorithmVerifies(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			ts := newTestServer(t)
			if err := ts.SetKeys(activeKeySet(t, alg, testT0)); err != nil {
				t.Fatal(err)
			}
			id, secret := ts.addClient(t)
			hdr, _, _ := verifyToken(t, ts.issue(t, grant(), id, secret).AccessToken, ts.jwks(t))
			if hdr.Algorithm != alg {
				t.Fatalf("alg %s", hdr.Algorithm)
			}
		})
	}
}

func TestJWKSCachingHeaders(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.JWKSMaxAge = 300 * time.Second })
	w := ts.do(httptest.NewRequest(http.MethodGet, JWKSPath, nil))
	etag := w.Header().Get("ETag")
	if w.Code != 200 || !strings.HasPrefix(etag, `"`) || w.Header().Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("status %d ETag %q Cache-Control %q", w.Code, etag, w.Header().Get("Cache-Control"))
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || len(doc.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", w.Body, err)
	}
	k := doc.Keys[0]
	if k["kid"] != ts.set.Keys[0].KID || k["use"] != "sig" || k["alg"] != "ES256" || k["d"] != nil {
		t.Errorf("key %v", k)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		r := httptest.NewRequest(http.MethodGet, JWKSPath, nil)
		r.Header.Set("If-None-Match", inm)
		if w := ts.do(r); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: status %d", inm, w.Code)
		}
	}
	r := httptest.NewRequest(http.MethodGet, JWKSPath, nil)
	r.Header.Set("If-None-Match", `"stale"`)
	if w := ts.do(r); w.Code != 200 {
		t.Errorf("stale ETag: status %d", w.Code)
	}
	if w := ts.do(httptest.NewRequest(http.MethodPost, JWKSPath, nil)); w.Code != 405 || w.Header().Get("Allow") == "" {
		t.Errorf("POST JWKS: status %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	// A key change changes the ETag.
	if err := ts.SetKeys(activeKeySet(t, "ES256", testT0)); err != nil {
		t.Fatal(err)
	}
	if w := ts.do(httptest.NewRequest(http.MethodGet, JWKSPath, nil)); w.Header().Get("ETag") == etag {
		t.Error("ETag unchanged after a key change")
	}
}

func TestMetadata(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{ASMetadataPath, OIDCMetadataPath} {
		w := ts.do(httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: status %d", path, w.Code)
		}
		var md map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"issuer":                                testIssuer,
			"token_endpoint":                        testIssuer + "/oauth2/token",
			"jwks_uri":                              testIssuer + "/.well-known/jwks.json",
			"introspection_endpoint":                testIssuer + "/oauth2/introspect",
			"grant_types_supported":                 []any{"client_credentials"},
			"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "private_key_jwt"},
			"token_endpoint_auth_signing_alg_values_supported":         []any{"ES256", "EdDSA", "Ed25519", "RS256", "PS256"},
			"introspection_endpoint_auth_signing_alg_values_supported": []any{"ES256", "EdDSA", "Ed25519", "RS256", "PS256"},
			// What go-oidc's default verifier, oauth2-proxy and Authlib's validators need
			// (see buildMetadata): the key's algorithm first, RS256 as OIDC Discovery §3 requires.
			"id_token_signing_alg_values_supported": []any{"ES256", "RS256"},
			"subject_types_supported":               []any{"public"},
			"response_types_supported":              []any{"id_token"},
			"dpop_signing_alg_values_supported":     []any{"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		}
		for k, v := range want {
			got, _ := json.Marshal(md[k])
			exp, _ := json.Marshal(v)
			if string(got) != string(exp) {
				t.Errorf("%s: %s = %s, want %s", path, k, got, exp)
			}
		}
		for _, absent := range []string{"scopes_supported", "authorization_endpoint", "userinfo_endpoint"} {
			if _, ok := md[absent]; ok {
				t.Errorf("%s: %s should be omitted", path, absent)
			}
		}
	}
}

// TestMetadataFollowsSigningKeys: id_token_signing_alg_values_supported names the algorithm of
// every published key, the active one first, through a change of algorithm; before any key is
// loaded, every algorithm the server may sign with (never a list without the coming key's).
func TestMetadataFollowsSigningKeys(t *testing.T) {
	bare, err := New(Options{Issuer: testIssuer, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	w := httptest.NewRecorder()
	bare.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, OIDCMetadataPath, nil))
	if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil || strings.Join(md.Algs, " ") != "ES256 RS256 EdDSA" {
		t.Fatalf("before any key is loaded: %d %v %v, want every algorithm the server may sign with", w.Code, md.Algs, err)
	}
	ts := newTestServer(t)
	algs := func() string {
		var md struct {
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		w := ts.do(httptest.NewRequest(http.MethodGet, OIDCMetadataPath, nil))
		if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil {
			t.Fatal(err)
		}
		return strings.Join(md.Algs, " ")
	}
	if got := algs(); got != "ES256 RS256" {
		t.Fatalf("ES256 key: %s", got)
	}
	policy := signingkey.Policy{Algorithm: signingkey.EdDSA, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 25 * time.Hour}
	now := ts.clock.Now()
	for _, step := range []struct {
		at   time.Time
		want string
	}{
		{now, "ES256 EdDSA RS256"},                    // EdDSA published ahead
		{now.Add(2 * time.Hour), "EdDSA ES256 RS256"}, // EdDSA signs, ES256 retired
	} {
		res, err := signingkey.Advance(ts.set, step.at, policy, signingkey.Generate)
		if err != nil {
			t.Fatal(err)
		}
		ts.set = res.Set
		if err := ts.SetKeys(res.Set); err != nil {
			t.Fatal(err)
		}
		if got := algs(); got != step.want {
			t.Errorf("at +%s: %s, want %s", step.at.Sub(now), got, step.want)
		}
	}
	rs := activeKeySet(t, signingkey.RS256, now)
	if err := ts.SetKeys(rs); err != nil {
		t.Fatal(err)
	}
	if got := algs(); got != "RS256" {
		t.Errorf("RS256 key: %s", got)
	}
}

func TestIssuerWithPath(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Issuer = "https://example.test/tenant1/" })
	for path, want := range map[string]int{
		"/tenant1/oauth2/token":                           405,
		"/tenant1/.well-known/jwks.json":                  200,
		"/.well-known/oauth-authorization-server/tenant1": 200,
		"/tenant1/.well-known/openid-configuration":       200,
		"/oauth2/token":                                   404,
	} {
		if w := ts.do(httptest.NewRequest(http.MethodGet, path, nil)); w.Code != want {
			t.Errorf("%s: status %d, want %d", path, w.Code, want)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	ts := newTestServer(t)
	id, secret := ts.addClient(t)
	ts.issue(t, grant(), id, secret)
	ts.do(tokenReq(grant(), id, "wrong"))
	ts.Index().PutBroken("m2m-system/broken", "m2mc_broken", nil)
	body := ts.probe("/metrics").Body.String()
	for _, want := range []string{
		`m2m_tokenserver_tokens_issued_total{audience="billing.billing"} 1`,
		`m2m_tokenserver_token_requests_refused_total{reason="invalid_client"} 1`,
		`m2m_tokenserver_token_request_duration_seconds_count 2`,
		`m2m_tokenserver_clients_loaded 1`,
		`m2m_tokenserver_broken_records 1`,
		`m2m_tokenserver_signing_key_age_seconds{kid="` + ts.set.Keys[0].KID + `",state="active"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestValidateOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"relative issuer":   {Issuer: "/token"},
		"issuer with query": {Issuer: "https://x.test/?a=b"},
		"ftp issuer":        {Issuer: "ftp://x.test"},
		"negative rate":     {RateLimit: -1},
		"tiny TTL":          {DefaultTokenTTL: time.Millisecond},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// otherLastChar changes the secret's last character, whatever it is (a fixed replacement
// would equal the original one time in 62).
func otherLastChar(secret string) string {
	last := byte('x')
	if secret[len(secret)-1] == last {
		last = 'y'
	}
	return secret[:len(secret)-1] + string(last)
}
