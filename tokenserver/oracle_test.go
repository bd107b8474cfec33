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

// No client-id oracle: a known id with wrong credentials and an unknown id answer the same,
// byte for byte, before and after failure budgets are spent.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// answer is everything a response says.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func answerOf(w *httptest.ResponseRecorder) answer {
	return answer{code: w.Code, header: w.Header().Clone(), body: w.Body.Bytes()}
}

func (a answer) String() string { return fmt.Sprintf("%d %v %s", a.code, a.header, a.body) }

func sameAnswers(t *testing.T, what string, known, unknown answer) {
	t.Helper()
	if known.code != unknown.code || !reflect.DeepEqual(known.header, unknown.header) || !bytes.Equal(known.body, unknown.body) {
		t.Fatalf("%s: a known id and an unknown id answer differently:\nknown:   %s\nunknown: %s", what, known, unknown)
	}
}

// freshIDs returns n client-id-shaped ids whose failure slots differ from each other and
// from those of avoid, so that no two ids of a test share a budget by chance.
func freshIDs(slot func(string) int, n int, avoid ...string) []string {
	used := map[int]bool{}
	for _, id := range avoid {
		used[slot(id)] = true
	}
	var ids []string
	for len(ids) < n {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := "m2mc_" + hex.EncodeToString(b[:])
		if s := slot(id); !used[s] {
			used[s] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// probe sends the same failing request for a known and an unknown id, and compares them.
type probe func(id string) answer

// checkNoOracle spends the failures an attacker would spend on other unknown ids, then
// compares known and unknown before and after their own budgets are spent. slot maps an id to
// its failure slot.
func checkNoOracle(t *testing.T, slot func(string) int, burst int, known string, wantStatus int, send probe) {
	t.Helper()
	ids := freshIDs(slot, 101, known)
	unknown, spray := ids[0], ids[1:]
	for i := 0; i < 10; i++ { // 1,000 failures: more than any shared budget of unknown ids
		for _, id := range spray {
			send(id)
		}
	}
	first := send(known)
	sameAnswers(t, "after other ids' failures", first, send(unknown))
	if first.code != wantStatus {
		t.Fatalf("first failure answered %s, want %d", first, wantStatus)
	}
	for i := 1; i < burst; i++ {
		send(known)
		send(unknown)
	}
	spent := send(known)
	sameAnswers(t, "after their own budgets were spent", spent, send(unknown))
	if spent.code != http.StatusTooManyRequests || spent.header.Get("Retry-After") == "" {
		t.Fatalf("once the budget is spent the answer is %s, want 429 with Retry-After", spent)
	}
}

func slowFailures(o *Options) { o.AuthFailureRate, o.AuthFailureBurst = 0.001, 3 }

// TestClientSecretFailuresAreNoOracle: client_secret_basic and client_secret_post.
func TestClientSecretFailuresAreNoOracle(t *testing.T) {
	for _, basic := range []bool{true, false} {
		t.Run(fmt.Sprint("basic=", basic), func(t *testing.T) {
			ts := newTestServer(t, slowFailures)
			known, secret := ts.addClient(t)
			want := http.StatusBadRequest // RFC 6749 §5.2: 401 only when the Authorization header was used
			if basic {
				want = http.StatusUnauthorized
			}
			checkNoOracle(t, ts.failures.slot, 3, known, want, func(id string) answer {
				if basic {
					return answerOf(ts.do(tokenReq(grant(), id, otherLastChar(secret))))
				}
				f := grant()
				f.Set("client_id", id)
				f.Set("client_secret", otherLastChar(secret))
				return answerOf(ts.do(tokenReq(f, "", "")))
			})
			ts.issue(t, grant(), known, secret) // the right secret is never slowed down
		})
	}
}

// TestPrivateKeyJWTFailuresAreNoOracle: an assertion signed with a key the client does not
// have, for a known private_key_jwt client and for an unknown id.
func TestPrivateKeyJWTFailuresAreNoOracle(t *testing.T) {
	ts := newTestServer(t, slowFailures)
	key, wrong := newClientKey(t, jose.ES256, "k1"), newClientKey(t, jose.ES256, "k1")
	known := ts.addKeyClient(t, key)
	checkNoOracle(t, ts.failures.slot, 3, known, http.StatusBadRequest, func(id string) answer {
		return answerOf(ts.do(tokenReq(assertionForm(wrong.sign(t, assertionClaimsFor(id, ts.clock.Now()))), "", "")))
	})
	if got := ts.status(t, assertionForm(key.sign(t, assertionClaimsFor(known, ts.clock.Now())))); got != "200 " {
		t.Fatalf("the client's own assertion after the failures: %s", got)
	}
}

// TestServiceAccountFailuresAreNoOracle: against the genuine API server, a forged token naming
// a ServiceAccount bound to a client and one naming a ServiceAccount bound to none.
func TestServiceAccountFailuresAreNoOracle(t *testing.T) {
	f := newSAFixture(t, slowFailures)
	f.serviceAccount(t, f.ns, "robot")
	f.bind(t, f.ns, "robot")
	genuine := f.token(t, f.ns, "robot", f.url)
	subject := func(name string) string { return serviceAccountPrefix + f.ns + ":" + name }
	// The failure slot of a ServiceAccount token is that of its subject.
	slot := func(name string) int { return f.failures.slot(subject(name)) }
	checkNoOracle(t, slot, 3, "robot", http.StatusBadRequest, func(name string) answer {
		return answerOf(f.do(tokenReq(assertionForm(forgeWithSubject(t, genuine, subject(name))), "", "")))
	})
	if code, tr := f.exchange(t, genuine); code != 200 {
		t.Fatalf("robot's genuine token after the failures: %d %s", code, tr.Error)
	}
}

// forgeWithSubject re-signs a genuine ServiceAccount token with its sub replaced, with a key of
// its own (same kid and alg).
func forgeWithSubject(t *testing.T, genuine, sub string) string {
	t.Helper()
	parts := strings.Split(genuine, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = sub
	p, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return forgeServiceAccountToken(t, strings.Join(parts, "."))
}
