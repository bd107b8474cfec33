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
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

func TestBrokenRecordFailsClosed(t *testing.T) {
	ts := newTestServer(t)
	rec, secret := newRecord(t)
	ix := ts.Index()
	if err := ix.Put("ns/a", rec); err != nil {
		t.Fatal(err)
	}
	ts.issue(t, grant(), rec.ClientID, secret)
	// The same source turns broken: the client is unknown, not served from the old version.
	ix.PutBroken("ns/a", rec.ClientID, errors.New("bad json"))
	if w := ts.do(tokenReq(grant(), rec.ClientID, secret)); w.Code != 401 {
		t.Fatalf("broken record: status %d, want 401", w.Code)
	}
	if ix.Len() != 0 {
		t.Fatalf("Len %d", ix.Len())
	}
	// Fixed again: served again.
	if err := ix.Put("ns/a", rec); err != nil {
		t.Fatal(err)
	}
	ts.issue(t, grant(), rec.ClientID, secret)
	// A record that does not validate is kept as broken by Put itself.
	bad := *rec
	bad.Grants = []credential.AudienceGrant{{Audience: audBilling, Scopes: []string{"has space"}}}
	if err := ix.Put("ns/a", &bad); err == nil {
		t.Fatal("Put accepted a malformed scope")
	}
	if w := ts.do(tokenReq(grant(), rec.ClientID, secret)); w.Code != 401 {
		t.Fatalf("invalid record: status %d, want 401", w.Code)
	}
}

func TestDuplicateClientIDFailsClosed(t *testing.T) {
	ts := newTestServer(t)
	rec, secret := newRecord(t)
	ix := ts.Index()
	if err := ix.Put("ns/a", rec); err != nil {
		t.Fatal(err)
	}
	impostor, impostorSecret := newRecord(t, func(r *credential.Record) { r.ClientID = rec.ClientID })
	if err := ix.Put("ns/b", impostor); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, impostorSecret} {
		if w := ts.do(tokenReq(grant(), rec.ClientID, s)); w.Code != 401 {
			t.Fatalf("two records claim one id: status %d, want 401", w.Code)
		}
	}
	ix.Remove("ns/b")
	ts.issue(t, grant(), rec.ClientID, secret)
	ix.Remove("ns/a")
	if ix.Lookup(rec.ClientID) || ix.Len() != 0 {
		t.Fatal("removed client still loaded")
	}
}

// TestAudiencesInterned: clients granted an audience alike share one compiled audience (what
// keeps the index small at 10,000 clients); a grant differing in any field gets its own, and
// the last client to go takes its audience, and the audience's issued-token series, with it.
func TestAudiencesInterned(t *testing.T) {
	ts := newTestServer(t)
	ix := ts.Index()
	put := func(source string, mut ...func(*credential.Record)) (*credential.Record, string) {
		t.Helper()
		rec, secret := newRecord(t, mut...)
		if err := ix.Put(source, rec); err != nil {
			t.Fatal(err)
		}
		return rec, secret
	}
	aud := func(id string) *audience { return ix.lookup([]byte(id)).audiences[0] }
	a, _ := put("ns/a")
	b, secretB := put("ns/b")
	if aud(a.ClientID) != aud(b.ClientID) {
		t.Fatal("two clients granted alike hold two compiled audiences")
	}
	for name, mut := range map[string]func(*credential.Record){
		"scopes":          func(r *credential.Record) { r.Grants[0].Scopes = []string{"invoices:read"} },
		"maxTokenTTL":     func(r *credential.Record) { r.Grants[0].MaxTokenTTLSeconds = 60 },
		"policyNamespace": func(r *credential.Record) { r.Grants[0].PolicyNamespace = "other" },
		// Not the grant's, the client's own: a revocation dates its new tokens (issuedAt).
		"tokensNotBefore": func(r *credential.Record) { r.TokensNotBefore = time.Now().Unix() },
	} {
		c, _ := put("ns/"+name, mut)
		if aud(c.ClientID) == aud(a.ClientID) {
			t.Errorf("a grant with other %s shares the audience", name)
		}
		ix.Remove("ns/" + name)
	}
	// Tokens still carry what the shared audience grants, and are counted for it.
	ts.issue(t, grant(), b.ClientID, secretB)
	if got := ts.issuedByAudience(t)[audBilling]; got != "1" {
		t.Fatalf("issued for %s = %q, want 1", audBilling, got)
	}
	ix.Remove("ns/a")
	if aud(b.ClientID) == nil || len(ix.audiences) != 1 {
		t.Fatalf("removing one client dropped the audience another uses (%d interned)", len(ix.audiences))
	}
	ix.Remove("ns/b")
	if len(ix.audiences) != 0 {
		t.Fatalf("%d audiences interned after the last client went", len(ix.audiences))
	}
	if got := ts.issuedByAudience(t); len(got) != 0 {
		t.Fatalf("issued series %v left after the last client of the audience went", got)
	}
}

func TestIndexManyClientsAndConcurrentReaders(t *testing.T) {
	ts := newTestServer(t)
	ix := ts.Index()
	recs := make([]*credential.Record, 2000)
	for i := range recs {
		recs[i], _ = newRecord(t)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // readers never block and never see a torn state
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				ix.lookup([]byte(recs[0].ClientID))
			}
		}
	}()
	for i, r := range recs {
		if err := ix.Put(fmt.Sprintf("ns/%d", i), r); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if ix.Len() != len(recs) {
		t.Fatalf("Len %d, want %d", ix.Len(), len(recs))
	}
	for _, r := range recs {
		if !ix.Lookup(r.ClientID) {
			t.Fatalf("client %s missing", r.ClientID)
		}
	}
}

// TestAuditLogLine: exactly one JSON line per issued token, with what it was issued for, one
// per refused request, and no secret, token or hash in them or in any other log line.
func TestAuditLogLine(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{})
	var audit strings.Builder
	ts := newTestServer(t, func(o *Options) { o.Logger = logger; o.AuditLog = &audit })
	rec, secret := newRecord(t)
	if err := ts.Index().Put("ns/a", rec); err != nil {
		t.Fatal(err)
	}
	ts.Index().PutBroken("ns/b", "m2mc_b", errors.New("broken"))
	tr := ts.issue(t, grant(), rec.ClientID, secret)
	ts.do(tokenReq(grant(), rec.ClientID, "wrong"))
	_, claims, _ := verifyToken(t, tr.AccessToken, ts.jwks(t))

	lines := strings.Split(strings.TrimSuffix(audit.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2 (issued, refused): %q", len(lines), lines)
	}
	var refused map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &refused); err != nil || refused["event"] != "refused" {
		t.Fatalf("second audit line %s (%v), want event refused", lines[1], err)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("audit line is not JSON: %v", err)
	}
	for k, want := range map[string]any{"clientID": rec.ClientID, "audience": audBilling, "scope": "invoices:read invoices:write",
		"jti": claims.ID, "exp": float64(claims.Expiry.Time().Unix()), "msg": "token issued", "event": "issued", "namespace": "payments"} {
		if line[k] != want {
			t.Errorf("audit %s = %v, want %v", k, line[k], want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range append(logs, lines...) {
		for _, secretish := range []string{secret, tr.AccessToken, rec.Secrets[0].SHA256, strings.Split(tr.AccessToken, ".")[2]} {
			if strings.Contains(l, secretish) {
				t.Fatalf("a log line holds secret material: %s", l)
			}
		}
	}
}

// TestKeyRotationWithInjectedClock drives the signing-key state machine with a fake clock and
// checks what verifiers see: the next key is published before it signs, tokens from the old key
// verify until they expire, and the retired key then leaves the JWKS.
func TestKeyRotationWithInjectedClock(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxTokenTTL = time.Hour; o.DefaultTokenTTL = time.Hour })
	id, secret := ts.addClient(t)
	p := signingkey.Policy{Algorithm: signingkey.ES256, RotationInterval: 24 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: time.Hour + 5*time.Minute}
	advance := func(now time.Time) signingkey.Result {
		t.Helper()
		ts.clock.Set(now)
		res, err := signingkey.Advance(ts.set, now, p, signingkey.Generate)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.SetKeys(res.Set); err != nil {
			t.Fatal(err)
		}
		ts.set = res.Set
		return res
	}
	res := advance(testT0)
	oldKID := ts.set.Find(signingkey.StateActive).KID

	// Publish ahead: the next key is in the JWKS, but tokens are still signed by the old key.
	res = advance(res.NextTransition)
	nextKID := ts.set.Find(signingkey.StateNext).KID
	jwksBefore := ts.jwks(t)
	if !strings.Contains(string(jwksBefore), nextKID) {
		t.Fatal("the next key is not published ahead")
	}
	hdr, _, _ := verifyToken(t, ts.issue(t, grant(), id, secret).AccessToken, jwksBefore)
	if hdr.KeyID != oldKID {
		t.Fatalf("signed with %s before activation, want %s", hdr.KeyID, oldKID)
	}
	oldToken := ts.issue(t, grant(), id, secret).AccessToken

	// Activation: new tokens use the new key, which a verifier that cached the JWKS from before
	// already knows.
	activation := res.NextTransition
	res = advance(activation)
	hdr, _, _ = verifyToken(t, ts.issue(t, grant(), id, secret).AccessToken, jwksBefore)
	if hdr.KeyID != nextKID {
		t.Fatalf("signed with %s after activation, want %s", hdr.KeyID, nextKID)
	}
	// The old token still verifies against the current JWKS, until it expires.
	_, c, _ := verifyToken(t, oldToken, ts.jwks(t))
	if c.Expiry.Time().After(ts.set.Find(signingkey.StateRetired).RemoveAt.Add(-5 * time.Minute)) {
		t.Fatalf("the old token expires at %v, after its key is removed", c.Expiry.Time())
	}
	ts.clock.Set(c.Expiry.Time().Add(-time.Second))
	verifyToken(t, oldToken, ts.jwks(t))

	// Removal: after every token of the old key has expired.
	removal := *ts.set.Find(signingkey.StateRetired).RemoveAt
	if !removal.After(c.Expiry.Time()) {
		t.Fatalf("removal %v is not after the last expiry %v", removal, c.Expiry.Time())
	}
	advance(removal)
	if strings.Contains(string(ts.jwks(t)), oldKID) {
		t.Fatal("the retired key is still published after its removal time")
	}
	if w := ts.do(tokenReq(grant(), id, secret)); w.Code != http.StatusOK {
		t.Fatalf("status %d after the rotation", w.Code)
	}
}
