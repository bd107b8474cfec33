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
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// auditBuffer is an audit sink that keeps every line.
type auditBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *auditBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines written so far and forgets them.
func (b *auditBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	b.buf.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// onlyLine returns the one line written since the last call, decoded.
func (b *auditBuffer) onlyLine(t *testing.T) (string, map[string]any) {
	t.Helper()
	lines := b.lines()
	if len(lines) != 1 {
		t.Fatalf("%d audit lines, want 1: %q", len(lines), lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("audit line is not JSON: %v: %s", err, lines[0])
	}
	return lines[0], m
}

// TestRefusalsAreAudited: every kind of refusal of the token endpoint writes one audit line
// with the event, the reason (the metrics' label), the remote address, the client only when it
// authenticated or presented a known id, and the parameters asked; never a secret, an assertion
// or its hash, and never an unknown presented id.
func TestRefusalsAreAudited(t *testing.T) {
	sink := &auditBuffer{}
	ts := newTestServer(t, manyFailures, func(o *Options) { o.AuditLog = sink })
	id, secret := ts.addClient(t)
	disabledID, disabledSecret := ts.addClient(t, func(r *credential.Record) { r.Disabled = true })
	key := newClientKey(t, jose.ES256, "k1")
	keyID := ts.addKeyClient(t, key)
	forged := newClientKey(t, jose.ES256, "k1").sign(t, assertionClaimsFor(keyID, ts.clock.Now()))
	const unknownID = "m2m_attacker-chosen\"id"
	const wrongSecret = "not-the-secret-but-still-secret-material"

	withScope := func(f url.Values, scope, aud string) url.Values {
		if scope != "" {
			f.Set("scope", scope)
		}
		if aud != "" {
			f.Set("audience", aud)
		}
		return f
	}
	cases := []struct {
		name      string
		req       *http.Request
		reason    string
		client    string // "" when the line must name no client
		authed    bool
		fields    map[string]any
		forbidden []string
	}{
		{name: "unknown client id", req: tokenReq(grant(), unknownID, wrongSecret), reason: errInvalidClient,
			forbidden: []string{unknownID, "attacker-chosen", wrongSecret}},
		{name: "known client, wrong secret", req: tokenReq(grant(), id, wrongSecret), reason: errInvalidClient, client: id,
			forbidden: []string{wrongSecret, secret, credential.HashSecret(wrongSecret).String()}},
		{name: "scope not granted", req: tokenReq(withScope(grant(), "invoices:delete", ""), id, secret), reason: errInvalidScope, client: id, authed: true,
			fields: map[string]any{"scope": "invoices:delete", "grantType": "client_credentials"}, forbidden: []string{secret}},
		{name: "audience not held", req: tokenReq(withScope(grant(), "", "hr.people"), id, secret), reason: errInvalidTarget, client: id, authed: true,
			fields: map[string]any{"audience": "hr.people"}, forbidden: []string{secret}},
		{name: "disabled client", req: tokenReq(grant(), disabledID, disabledSecret), reason: errUnauthorizedClient, client: disabledID, authed: true,
			forbidden: []string{disabledSecret}},
		{name: "unsupported grant (a known id, not authenticated yet)", req: tokenReq(url.Values{"grant_type": {"password"}}, id, secret), reason: errUnsupportedGrantType, client: id,
			fields: map[string]any{"grantType": "password"}, forbidden: []string{secret}},
		{name: "forged assertion", req: tokenReq(assertionForm(forged), "", ""), reason: errInvalidClient, client: keyID,
			forbidden: []string{forged, strings.Split(forged, ".")[2]}},
		{name: "not a POST", req: httptest.NewRequest(http.MethodGet, TokenPath, nil), reason: errInvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := ts.do(c.req)
			if w.Code < 400 {
				t.Fatalf("status %d, want a refusal", w.Code)
			}
			line, m := sink.onlyLine(t)
			want := map[string]any{"event": "refused", "msg": "token refused", "reason": c.reason, "remoteAddr": c.req.RemoteAddr}
			for k, v := range c.fields {
				want[k] = v
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v (line %s)", k, m[k], v, line)
				}
			}
			if _, err := time.Parse(time.RFC3339Nano, m["ts"].(string)); err != nil {
				t.Errorf("ts: %v", err)
			}
			switch {
			case c.client == "" && m["clientID"] != nil:
				t.Errorf("clientID %v, want none (line %s)", m["clientID"], line)
			case c.client != "" && (m["clientID"] != c.client || m["authenticated"] != c.authed):
				t.Errorf("clientID %v authenticated %v, want %s %v (line %s)", m["clientID"], m["authenticated"], c.client, c.authed, line)
			}
			for _, f := range c.forbidden {
				if strings.Contains(line, f) {
					t.Errorf("the audit line repeats %q: %s", f, line)
				}
			}
		})
	}
}

// TestRefusalAuditIsBounded: request values repeated in a refusal line are cut to their bounds
// and JSON-escaped, so that no request can write an arbitrary or unbounded line.
func TestRefusalAuditIsBounded(t *testing.T) {
	sink := &auditBuffer{}
	ts := newTestServer(t, func(o *Options) { o.AuditLog = sink })
	id, secret := ts.addClient(t)
	f := grant()
	f.Set("scope", strings.Repeat("a", 4000)+"\n{\"event\":\"issued\"}")
	f.Set("audience", strings.Repeat("b", 4000))
	if w := ts.do(tokenReq(f, id, secret)); w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
	line, m := sink.onlyLine(t)
	if len(line) > 2000 {
		t.Errorf("refusal line of %d bytes, want it bounded", len(line))
	}
	if s := m["scope"].(string); !strings.HasSuffix(s, "…") || len(s) > maxAuditScope+len("…") {
		t.Errorf("scope not cut to %d bytes: %d bytes", maxAuditScope, len(s))
	}
	if a := m["audience"].(string); len(a) > maxAuditAudience+len("…") {
		t.Errorf("audience not cut to %d bytes: %d bytes", maxAuditAudience, len(a))
	}
}

// TestRefusalFloodDoesNotStallIssuance: past the refusal budget, refusals are answered without
// an audit line and counted in audit_refusals_dropped_total (and in the next line's
// droppedBefore); issuances are audited as ever.
func TestRefusalFloodDoesNotStallIssuance(t *testing.T) {
	sink := &auditBuffer{}
	ts := newTestServer(t, manyFailures, func(o *Options) { o.AuditLog = sink })
	id, secret := ts.addClient(t)
	const flood = auditRefusalBurst + 300
	for range flood {
		if w := ts.do(tokenReq(grant(), id, "wrong")); w.Code == http.StatusOK {
			t.Fatal("a wrong secret got a token")
		}
	}
	if n := len(sink.lines()); n != auditRefusalBurst {
		t.Errorf("%d refusal lines at one instant, want the burst %d", n, auditRefusalBurst)
	}
	if v := ts.metricLine("m2m_tokenserver_audit_refusals_dropped_total"); v != "300" {
		t.Errorf("audit_refusals_dropped_total %s, want 300", v)
	}
	ts.issue(t, grant(), id, secret)
	_, issued := sink.onlyLine(t)
	if issued["event"] != "issued" || issued["clientID"] != id {
		t.Errorf("issuance line %v, want event issued for %s", issued, id)
	}
	ts.clock.Add(time.Second) // the budget refills
	ts.do(tokenReq(grant(), id, "wrong"))
	if _, m := sink.onlyLine(t); m["droppedBefore"] != float64(300) {
		t.Errorf("droppedBefore %v, want 300", m["droppedBefore"])
	}
}

// TestAuditLogPath: --audit-log names a file (created 0600, appended to) or "-" for stdout;
// an AuditLog writer set by the caller wins.
func TestAuditLogPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("{\"earlier\":true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("tokenserver", flag.ContinueOnError)
	var o Options
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--audit-log", path}); err != nil {
		t.Fatal(err)
	}
	closeFn, err := o.openAuditLog()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(opts *Options) { opts.AuditLog = o.AuditLog })
	id, secret := ts.addClient(t)
	ts.issue(t, grant(), id, secret)
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"event":"issued"`) {
		t.Errorf("audit file %q, want the earlier line then the issued one", lines)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v (%v), want 0600", st.Mode(), err)
	}

	stdout := Options{AuditLogPath: "-"}
	if _, err := stdout.openAuditLog(); err != nil || stdout.AuditLog != os.Stdout {
		t.Errorf("--audit-log=-: %v (%v), want stdout", stdout.AuditLog, err)
	}
	own := &auditBuffer{}
	set := Options{AuditLogPath: path, AuditLog: own}
	if _, err := set.openAuditLog(); err != nil || set.AuditLog != own {
		t.Errorf("a writer set by the caller was replaced: %v (%v)", set.AuditLog, err)
	}
}
