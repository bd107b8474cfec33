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

// Checks of client authentication that another one hides: each assertion here is signed by
// the client's real key, so the signature check cannot be what refuses it
// (docs/security.md, "Each defence guarded on its own").

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// TestAssertionSignedByTheClientsOwnKeyStillObeysEveryRule: a private_key_jwt assertion that
// the client's registered key really signed is refused when it breaks one rule.
func TestAssertionSignedByTheClientsOwnKeyStillObeysEveryRule(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	key := newClientKey(t, jose.ES256, "k1")
	id := ts.addKeyClient(t, key)
	now := ts.clock.Now()
	pubJWK, _ := json.Marshal(jose.JSONWebKey{Key: key.priv.Public(), KeyID: "k1"})
	signed := func(header string, claims map[string]any) string {
		return unsigned(header, claims, func(in string) []byte { return rawES256(t, key, in) })
	}
	if got := ts.status(t, assertionForm(signed(`{"alg":"ES256","kid":"k1"}`, assertionClaimsFor(id, now)))); got != "200 " {
		t.Fatalf("the control, a hand-made valid assertion: %s", got)
	}
	header := func(extra string) string { return `{"alg":"ES256","kid":"k1",` + extra + `}` }
	refused := map[string]func() string{
		"jwk header carrying the client's own key": func() string {
			return signed(header(`"jwk":`+string(pubJWK)), assertionClaimsFor(id, now))
		},
		"jku header": func() string {
			return signed(header(`"jku":"https://attacker.example/jwks"`), assertionClaimsFor(id, now))
		},
		"x5u header": func() string {
			return signed(header(`"x5u":"https://attacker.example/cert"`), assertionClaimsFor(id, now))
		},
		"x5c header":  func() string { return signed(header(`"x5c":["MIIB"]`), assertionClaimsFor(id, now)) },
		"crit header": func() string { return signed(header(`"crit":["x"],"x":1`), assertionClaimsFor(id, now)) },
		"b64 header":  func() string { return signed(header(`"b64":true`), assertionClaimsFor(id, now)) },
		"zip header":  func() string { return signed(header(`"zip":"DEF"`), assertionClaimsFor(id, now)) },
		"sub differs from iss": func() string {
			c := assertionClaimsFor(id, now)
			c["sub"] = "m2mc_someoneelse"
			return key.sign(t, c)
		},
		"larger than 8 KiB": func() string {
			c := assertionClaimsFor(id, now)
			c["pad"] = strings.Repeat("x", maxAssertionSize)
			return key.sign(t, c)
		},
		"signature with a zero byte slipped in": func() string {
			tok := key.sign(t, assertionClaimsFor(id, now))
			i := strings.LastIndexByte(tok, '.')
			sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
			// s as 33 bytes with a leading zero: the same integer, another spelling.
			odd := append(append(append([]byte{}, sig[:32]...), 0), sig[32:]...)
			return tok[:i+1] + base64.RawURLEncoding.EncodeToString(odd)
		},
	}
	for name, make := range refused {
		t.Run(name, func(t *testing.T) {
			if got := ts.status(t, assertionForm(make())); got != "400 invalid_client" {
				t.Fatalf("got %s, want 400 invalid_client (a client assertion: no Authorization header, RFC 6749 §5.2)", got)
			}
		})
	}
}

// TestAssertionAlgorithmBoundToTheDeclaredAlg: a client key published with "alg": "RS256"
// verifies RS256 only; a PS256 assertion that the same key genuinely signed is refused.
func TestAssertionAlgorithmBoundToTheDeclaredAlg(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	rs := newClientKey(t, jose.RS256, "rsa")
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rs.priv.Public(), KeyID: "rsa", Use: "sig", Algorithm: "RS256"}}})
	id, _ := ts.addClient(t, func(r *credential.Record) { r.Method, r.Secrets, r.JWKS = credential.MethodPrivateKeyJWT, nil, doc })
	now := ts.clock.Now()
	if got := ts.status(t, assertionForm(rs.sign(t, assertionClaimsFor(id, now)))); got != "200 " {
		t.Fatalf("RS256: %s", got)
	}
	ps := rs
	ps.alg = jose.PS256
	if got := ts.status(t, assertionForm(ps.sign(t, assertionClaimsFor(id, now)))); got != "400 invalid_client" {
		t.Fatalf("PS256 by a key declared RS256: %s", got)
	}
}

// TestEmptySecretNeverMatches: a record that somehow holds the hash of the empty secret does
// not let an empty secret in.
func TestEmptySecretNeverMatches(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	id, _ := ts.addClient(t, func(r *credential.Record) {
		r.Secrets = []credential.SecretHash{{SHA256: credential.HashSecret("").String()}}
	})
	// invalid_client is 401 when the client used the Authorization header, else 400 (§5.2).
	for name, tc := range map[string]struct {
		req  func() string
		want string
	}{
		"basic": {func() string { return fmt.Sprint(ts.do(tokenReq(grant(), id, "")).Code) }, "401"},
		"post": {func() string {
			f := grant()
			f.Set("client_id", id)
			f.Set("client_secret", "")
			return fmt.Sprint(ts.do(tokenReq(f, "", "")).Code)
		}, "400"},
	} {
		if got := tc.req(); got != tc.want {
			t.Errorf("%s with an empty secret: %s, want %s", name, got, tc.want)
		}
	}
}

// TestSecretlessRecordHoldingASecretIsRefused: the layer under the method check of secret
// authentication. A ServiceAccount or PrivateKeyJWT record that carries a secret hash is
// broken (it fails closed), so its secret never authenticates.
func TestSecretlessRecordHoldingASecretIsRefused(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	for _, method := range []string{credential.MethodServiceAccount, credential.MethodPrivateKeyJWT} {
		rec, secret := newRecord(t, func(r *credential.Record) { r.Method, r.ServiceAccountName = method, "robot" })
		if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err == nil {
			t.Errorf("%s record with a secret hash was accepted", method)
		}
		if w := ts.do(tokenReq(grant(), rec.ClientID, secret)); w.Code != 401 {
			t.Errorf("%s record's secret: status %d", method, w.Code)
		}
	}
}
