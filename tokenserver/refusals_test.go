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
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr/funcr"
	dto "github.com/prometheus/client_model/go"
)

// refusedCountOf reads the client_assertion_refused_total series of a reason.
func refusedCountOf(t *testing.T, s *Server, why refusal) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.metrics.assertionRefused.WithLabelValues(string(why)).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// logLines captures a server's log lines as JSON objects.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

// refusals returns the "client assertion refused" lines, decoded.
func (l *logLines) refusals(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m["msg"] == "client assertion refused" {
			out = append(out, m)
		}
	}
	return out
}

func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func capturingLogger(l *logLines) func(*Options) {
	return func(o *Options) { o.Logger = funcr.NewJSON(l.add, funcr.Options{}) }
}

// TestRefusedAssertionsAreLoggedAndCountedByReason: every refused client assertion answers the
// same 400 invalid_client, and is logged at info with its reason and the client id — never the
// assertion or a secret — and counted by reason.
func TestRefusedAssertionsAreLoggedAndCountedByReason(t *testing.T) {
	logs := &logLines{}
	ts := newTestServer(t, manyFailures, capturingLogger(logs))
	key := newClientKey(t, jose.ES256, "k1")
	id := ts.addKeyClient(t, key)
	secretID, secret := ts.addClient(t)
	now := ts.clock.Now()
	with := func(mut func(map[string]any)) string {
		c := assertionClaimsFor(id, now)
		mut(c)
		return key.sign(t, c)
	}
	used := key.sign(t, assertionClaimsFor(id, now))
	if got := ts.status(t, assertionForm(used)); got != "200 " {
		t.Fatalf("a valid assertion: %s", got)
	}
	stranger := newClientKey(t, jose.ES256, "k1")
	cases := []struct {
		reason    refusal
		client    string
		assertion string
	}{
		{refusedMalformed, "", base64.RawURLEncoding.EncodeToString([]byte("{not json")) + "." + randomJTI() + randomJTI() + "." + randomJTI() + randomJTI()},
		{refusedClientMismatch, id, with(func(c map[string]any) { c["sub"] = "someone" })},
		{refusedUnknownClient, "m2mc_unknown", key.sign(t, assertionClaimsFor("m2mc_unknown", now))},
		{refusedWrongMethod, secretID, key.sign(t, assertionClaimsFor(secretID, now))},
		{refusedNoMatchingKey, id, signEd25519Name(newClientKey(t, jose.EdDSA, "k1"), assertionClaimsFor(id, now))},
		{refusedBadSignature, id, stranger.sign(t, assertionClaimsFor(id, now))},
		{refusedWrongAudience, id, with(func(c map[string]any) { c["aud"] = "https://elsewhere.example.test" })},
		{refusedExpired, id, with(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() })},
		{refusedNotYetValid, id, with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })},
		{refusedLifetime, id, with(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() })},
		{refusedMissingJTI, id, with(func(c map[string]any) { delete(c, "jti") })},
		{refusedReplayed, id, used},
	}
	for _, c := range cases {
		t.Run(string(c.reason), func(t *testing.T) {
			before := len(logs.refusals(t))
			n := refusedCountOf(t, ts.Server, c.reason)
			w := ts.do(tokenReq(assertionForm(c.assertion), "", ""))
			if tr := decodeResponse(t, w.Body); w.Code != 400 || tr.Error != errInvalidClient || tr.ErrorDescription != "client authentication failed" {
				t.Fatalf("answered %d %s %q, want the one 400 invalid_client", w.Code, tr.Error, tr.ErrorDescription)
			}
			if got := refusedCountOf(t, ts.Server, c.reason) - n; got != 1 {
				t.Errorf("counter for %s grew by %v, want 1", c.reason, got)
			}
			lines := logs.refusals(t)
			if len(lines) != before+1 {
				t.Fatalf("%d refusal lines logged, want 1", len(lines)-before)
			}
			line := lines[len(lines)-1]
			if line["reason"] != string(c.reason) || line["level"] != float64(0) {
				t.Errorf("logged %v, want reason %s at info", line, c.reason)
			}
			if c.client != "" && line["clientID"] != c.client {
				t.Errorf("logged client %v, want %s", line["clientID"], c.client)
			}
		})
	}
	all := logs.all()
	for _, c := range cases {
		if parts := strings.Split(c.assertion, "."); len(parts) == 3 && (strings.Contains(all, parts[1]) || strings.Contains(all, parts[2])) {
			t.Errorf("the log holds (part of) the %s assertion", c.reason)
		}
	}
	if strings.Contains(all, secret) {
		t.Error("the log holds a client secret")
	}
	body := ts.probe("/metrics").Body.String()
	for _, r := range refusalReasons {
		if !strings.Contains(body, `m2m_tokenserver_client_assertion_refused_total{reason="`+string(r)+`"}`) {
			t.Errorf("/metrics lacks the %s series", r)
		}
	}
}

// TestRefusalLogIsRateLimited: a flood of forged assertions logs at most the burst, while the
// counter counts every one.
func TestRefusalLogIsRateLimited(t *testing.T) {
	logs := &logLines{}
	ts := newTestServer(t, manyFailures, capturingLogger(logs))
	const flood = 3 * refusalLogBurst
	for i := 0; i < flood; i++ {
		ts.do(tokenReq(assertionForm("not.a.jws"), "", ""))
	}
	if n := len(logs.refusals(t)); n < refusalLogBurst || n > refusalLogBurst+refusalLogRate {
		t.Errorf("%d lines for %d refusals, want about the burst (%d)", n, flood, refusalLogBurst)
	}
	if got := refusedCountOf(t, ts.Server, refusedMalformed); got != flood {
		t.Errorf("counter %v, want %d", got, flood)
	}
}

// TestServiceAccountRefusalsAreLogged: against the genuine API server, refused ServiceAccount
// tokens are logged with the ServiceAccount and the reason, never the token.
func TestServiceAccountRefusalsAreLogged(t *testing.T) {
	logs := &logLines{}
	f := newSAFixture(t, capturingLogger(logs))
	f.serviceAccount(t, f.ns, "robot")
	f.serviceAccount(t, f.ns, "loner") // bound to no client
	f.bind(t, f.ns, "robot")
	genuine := f.token(t, f.ns, "robot", f.url)
	for _, c := range []struct {
		reason refusal
		sa     string
		token  string
	}{
		{refusedBadSignature, "robot", forgeServiceAccountToken(t, genuine)},
		{refusedWrongAudience, "robot", f.token(t, f.ns, "robot", "https://other.example.test")},
		{refusedUnknownClient, "loner", f.token(t, f.ns, "loner", f.url)},
	} {
		before := refusedCountOf(t, f.Server, c.reason)
		if code, tr := f.exchange(t, c.token); code != 400 || tr.Error != errInvalidClient {
			t.Fatalf("%s: %d %s", c.reason, code, tr.Error)
		}
		lines := logs.refusals(t)
		last := lines[len(lines)-1]
		if last["reason"] != string(c.reason) || last["serviceAccount"] != serviceAccountPrefix+f.ns+":"+c.sa {
			t.Errorf("logged %v, want reason %s for %s", last, c.reason, c.sa)
		}
		if refusedCountOf(t, f.Server, c.reason) != before+1 {
			t.Errorf("%s not counted", c.reason)
		}
		if strings.Contains(logs.all(), strings.Split(c.token, ".")[2]) {
			t.Errorf("%s: the log holds the token's signature", c.reason)
		}
	}
}
