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
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

func (ts *testServer) revocations(t *testing.T, etag string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, RevocationsPath, nil)
	if etag != "" {
		r.Header.Set("If-None-Match", etag)
	}
	return ts.do(r)
}

// revocationPayload verifies a list against the server's JWKS and returns its header type and
// payload.
func (ts *testServer) revocationPayload(t *testing.T, list string) (string, map[string]json.RawMessage) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(ts.jwks(t), &set); err != nil {
		t.Fatal(err)
	}
	sig, err := jose.ParseSignedCompact(list, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parsing the list: %v", err)
	}
	keys := set.Key(sig.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the list's kid is not in the JWKS")
	}
	payload, err := sig.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("the list's signature: %v", err)
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	typ, _ := sig.Signatures[0].Protected.ExtraHeaders["typ"].(string)
	return typ, p
}

func TestRevocationListContent(t *testing.T) {
	ts := newTestServer(t)
	now := ts.clock.Now().Unix()
	revoked, _ := ts.addClient(t, func(r *credential.Record) { r.TokensNotBefore = now })
	perAudience, _ := ts.addClient(t, func(r *credential.Record) {
		r.AudienceNotBefore = []credential.AudienceNotBefore{{Audience: audReports, NotBefore: now - 5}}
	})
	disabled, _ := ts.addClient(t, func(r *credential.Record) { r.Disabled = true })
	ts.addClient(t) // nothing revoked: not listed

	w := ts.revocations(t, "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/m2m-revocation+jwt" ||
		w.Header().Get("Cache-Control") != "public, max-age=1" || !strings.HasPrefix(w.Header().Get("ETag"), `W/"`) {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	typ, p := ts.revocationPayload(t, w.Body.String())
	if typ != RevocationListType {
		t.Fatalf("typ %q", typ)
	}
	want := map[string]string{
		"iss": `"` + testIssuer + `"`,
		"iat": jsonInt(now),
		"exp": jsonInt(now + 300),
		"revoked": `{"` + disabled + `":{"disabled":true},"` + perAudience + `":{"audiences":{"` + audReports + `":` + jsonInt(now-5) +
			`}},"` + revoked + `":{"not_before":` + jsonInt(now) + `}}`,
	}
	if len(p) != len(want) {
		t.Fatalf("payload members %v", p)
	}
	for k, v := range want {
		if got := string(p[k]); !sameJSON(t, got, v) {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// TestRevocationListETag: the ETag depends on the state only (the same across re-signing and
// across replicas with other keys), If-None-Match answers 304, a change changes it.
func TestRevocationListETag(t *testing.T) {
	ts, replica := newTestServer(t), newTestServer(t)
	rec, _ := newRecord(t, func(r *credential.Record) { r.TokensNotBefore = ts.clock.Now().Unix() })
	for _, s := range []*testServer{ts, replica} {
		if err := s.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
			t.Fatal(err)
		}
	}
	first := ts.revocations(t, "")
	etag := first.Header().Get("ETag")
	if other := replica.revocations(t, "").Header().Get("ETag"); other != etag {
		t.Fatalf("replicas disagree on the ETag of one state: %s, %s", etag, other)
	}
	if w := ts.revocations(t, etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: status %d", w.Code)
	}
	ts.clock.Add(2 * time.Minute) // re-signed with fresh times, same state
	again := ts.revocations(t, "")
	if again.Header().Get("ETag") != etag || again.Body.String() == first.Body.String() {
		t.Fatal("re-signing changed the ETag, or did not re-sign")
	}
	_, p := ts.revocationPayload(t, again.Body.String())
	if string(p["iat"]) != jsonInt(ts.clock.Now().Unix()) {
		t.Fatalf("iat %s after re-signing", p["iat"])
	}
	ts.addClient(t, func(r *credential.Record) { r.Disabled = true })
	if w := ts.revocations(t, etag); w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Fatalf("a changed state answered %d with the old ETag", w.Code)
	}
}

// TestTokensAfterARevocationAreValid: a token issued in the second of a revocation, after it,
// is dated at the not-before time, so the revocation never reaches it; one issued before is
// revoked.
func TestTokensAfterARevocationAreValid(t *testing.T) {
	ts := newTestServer(t)
	ts.clock.Set(testT0.Add(300 * time.Millisecond))
	rec, secret := newRecord(t)
	src := "m2m-system/" + rec.UID
	if err := ts.Index().Put(src, rec); err != nil {
		t.Fatal(err)
	}
	rsID, rsSecret := ts.addClient(t, func(r *credential.Record) { r.Namespace = "billing" })
	before := ts.issue(t, grant(), rec.ClientID, secret).AccessToken
	rec.TokensNotBefore = testT0.Unix() + 1 // the controller rounds a revocation up
	rec.Grants[0].PolicyNamespace = "billing"
	if err := ts.Index().Put(src, rec); err != nil {
		t.Fatal(err)
	}
	after := ts.issue(t, grant(), rec.ClientID, secret).AccessToken
	if body := ts.introspect(t, before, rsID, rsSecret); body != inactive {
		t.Fatalf("a token issued before the revocation: %s", body)
	}
	got := decodeIntrospection(t, ts.introspect(t, after, rsID, rsSecret))
	if !got.Active || got.Iat != rec.TokensNotBefore || got.Nbf != rec.TokensNotBefore {
		t.Fatalf("a token issued after the revocation: %+v", got)
	}
	ts.clock.Set(testT0.Add(10 * time.Second)) // later tokens keep their own time
	later := decodeIntrospection(t, ts.introspect(t, ts.issue(t, grant(), rec.ClientID, secret).AccessToken, rsID, rsSecret))
	if !later.Active || later.Iat != testT0.Unix()+10 {
		t.Fatalf("a later token: %+v", later)
	}
}

func TestMetadataNamesTheRevocationList(t *testing.T) {
	ts := newTestServer(t)
	w := ts.do(httptest.NewRequest(http.MethodGet, ASMetadataPath, nil))
	var md map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if md["m2m_revocation_list_uri"] != testIssuer+RevocationsPath {
		t.Fatalf("m2m_revocation_list_uri = %v", md["m2m_revocation_list_uri"])
	}
}

// TestRevocationListSurvivesABrokenRecord: a record that can no longer be read makes its client
// unknown, but its revocations stay listed (fail closed); a removed record takes them away.
func TestRevocationListSurvivesABrokenRecord(t *testing.T) {
	ts := newTestServer(t)
	rec, _ := newRecord(t, func(r *credential.Record) { r.TokensNotBefore = ts.clock.Now().Unix() })
	src := "m2m-system/" + rec.UID
	if err := ts.Index().Put(src, rec); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		_, p := ts.revocationPayload(t, ts.revocations(t, "").Body.String())
		return strings.Contains(string(p["revoked"]), rec.ClientID)
	}
	if !listed() {
		t.Fatal("not listed")
	}
	ts.Index().PutBroken(src, rec.ClientID, nil)
	if ts.Index().Lookup(rec.ClientID) || !listed() {
		t.Fatal("a broken record's client is still known, or its revocation left the list")
	}
	ts.Index().Remove(src)
	if listed() {
		t.Fatal("a removed record's revocation is still listed")
	}
}
