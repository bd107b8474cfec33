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

package verifytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// RevocationListType is the "typ" of the m2m token server's revocation list.
const RevocationListType = "m2m-revocation+jwt"

// revocationState is what the fake issuer's revocation list says, as the token server
// publishes it: per client id, disabled, a not-before time, and per-audience not-before times.
type revocationState struct {
	mu       sync.Mutex
	entries  map[string]*RevocationEntry
	status   int
	override func(list string) string
	requests atomic.Int64
}

// RevocationEntry is one client's entry of the revocation list.
type RevocationEntry struct {
	Disabled  bool             `json:"disabled,omitempty"`
	NotBefore int64            `json:"not_before,omitempty"`
	Audiences map[string]int64 `json:"audiences,omitempty"`
}

func (iss *Issuer) revEntry(clientID string) *RevocationEntry {
	if iss.rev.entries == nil {
		iss.rev.entries = map[string]*RevocationEntry{}
	}
	e := iss.rev.entries[clientID]
	if e == nil {
		e = &RevocationEntry{}
		iss.rev.entries[clientID] = e
	}
	return e
}

// RevokeTokens revokes the client's tokens issued before notBefore (unix seconds).
func (iss *Issuer) RevokeTokens(clientID string, notBefore int64) {
	iss.rev.mu.Lock()
	defer iss.rev.mu.Unlock()
	iss.revEntry(clientID).NotBefore = notBefore
}

// RevokeAudience revokes the client's tokens for audience issued before notBefore.
func (iss *Issuer) RevokeAudience(clientID, audience string, notBefore int64) {
	iss.rev.mu.Lock()
	defer iss.rev.mu.Unlock()
	e := iss.revEntry(clientID)
	if e.Audiences == nil {
		e.Audiences = map[string]int64{}
	}
	e.Audiences[audience] = notBefore
}

// DisableClient revokes every token of the client.
func (iss *Issuer) DisableClient(clientID string) {
	iss.rev.mu.Lock()
	defer iss.rev.mu.Unlock()
	iss.revEntry(clientID).Disabled = true
}

// FailRevocations makes the revocation endpoint answer status (0 restores it).
func (iss *Issuer) FailRevocations(status int) {
	iss.rev.mu.Lock()
	defer iss.rev.mu.Unlock()
	iss.rev.status = status
}

// OverrideRevocationList serves f(the list it would serve) instead of the list (nil restores
// it): a forged, re-signed or tampered list.
func (iss *Issuer) OverrideRevocationList(f func(list string) string) {
	iss.rev.mu.Lock()
	defer iss.rev.mu.Unlock()
	iss.rev.override = f
}

// RevocationRequests counts requests to the revocation endpoint.
func (iss *Issuer) RevocationRequests() int64 { return iss.rev.requests.Load() }

// RevocationList returns the revocation list the issuer serves now, signed by the current
// signing key, with its ETag (which depends on the entries only).
func (iss *Issuer) RevocationList() (list, etag string) {
	iss.rev.mu.Lock()
	revoked, _ := json.Marshal(iss.rev.entries)
	iss.rev.mu.Unlock()
	if string(revoked) == "null" {
		revoked = []byte("{}")
	}
	sum := sha256.Sum256(revoked)
	now := iss.now().Unix()
	kid := iss.SigningKeyID()
	claims := map[string]any{"iss": iss.URL, "iat": now, "exp": now + int64(5*time.Minute/time.Second), "revoked": json.RawMessage(revoked)}
	header := map[string]any{"typ": RevocationListType, "kid": kid, "alg": string(iss.mustKey(kid).alg)}
	return iss.SignJWS(kid, header, claims), `W/"` + hex.EncodeToString(sum[:8]) + `"`
}

func (iss *Issuer) serveRevocations(w http.ResponseWriter, r *http.Request) {
	iss.rev.requests.Add(1)
	iss.rev.mu.Lock()
	status, override := iss.rev.status, iss.rev.override
	iss.rev.mu.Unlock()
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	list, etag := iss.RevocationList()
	if override != nil {
		list = override(list)
		sum := sha256.Sum256([]byte(list))
		etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "public, max-age=1")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/"+RevocationListType)
	_, _ = w.Write([]byte(list))
}
