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

// Revocation of tokens already issued, for verifiers that validate locally.
//
// The facts live in the credential records (credential.Record.TokensNotBefore and
// AudienceNotBefore, written by the controller), so every replica publishes the same state and
// a restart forgets nothing. A token is revoked when its client is disabled, or its iat is
// lower than the client's not-before time, or than the not-before time of its audience. The
// times are whole seconds and the controller rounds the instant of a revocation up to the next
// second, so a token issued before the revocation, in the same second, has iat < notBefore;
// and a token issued after it is dated notBefore (issuedAt), so it is never revoked by it.
//
// GET /oauth2/revocations serves the revocation list: a JWS (typ m2m-revocation+jwt, signed by
// the active signing key) of {"iss","iat","exp","revoked":{client id: entry}}. The list is
// rebuilt only after a record change (Index.revGen) or when its signature gets old, never per
// request. Its ETag hashes the "revoked" member only, so every replica gives the same ETag to
// the same state; the signature, iat and exp differ between replicas, so the ETag is weak
// (RFC 9110 §8.8.1; If-None-Match compares weakly, so 304 works the same).

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

const (
	// RevocationsPath serves the revocation list.
	RevocationsPath = "/oauth2/revocations"
	// RevocationListType is the JOSE "typ" of the revocation list.
	RevocationListType = "m2m-revocation+jwt"
	// revocationListLifetime is the list's exp − iat: a copy replayed later than that is
	// refused by verifiers, which fetch a fresh one every few seconds.
	revocationListLifetime = 5 * time.Minute
	// revocationListResign is the age at which the served list is signed again with fresh
	// times (the state unchanged).
	revocationListResign = time.Minute
	// revocationListMaxAge is the Cache-Control max-age: short, since the list is meant to be
	// fetched again every few seconds (with If-None-Match).
	revocationListMaxAge = "public, max-age=1"
	// maxIATLift is how far ahead of the clock a new token's iat may be moved to reach a
	// not-before time: the controller rounds revocations up to the next whole second.
	maxIATLift = 1
)

// compileRevocations copies the record's revocation times into the compiled client.
func compileRevocations(c *Client, rec *credential.Record) {
	c.notBefore = rec.TokensNotBefore
	if len(rec.AudienceNotBefore) > 0 {
		c.revokedAudiences = make(map[string]int64, len(rec.AudienceNotBefore))
		for _, a := range rec.AudienceNotBefore {
			c.revokedAudiences[a.Audience] = a.NotBefore
		}
	}
	for _, a := range c.audiences {
		a.notBefore = max(c.notBefore, c.revokedAudiences[a.name])
		if a.notBefore != 0 { // the client's own value: only clients with the same one may share
			a.key += "\x00notBefore=" + strconv.FormatInt(a.notBefore, 10)
		}
	}
}

// revokes reports whether the client's token for aud issued at iat (unix seconds) is revoked.
// A map lookup at most; no allocation.
func (c *Client) revokes(aud string, iat int64) bool {
	if c.disabled || iat < c.notBefore {
		return true
	}
	nb, ok := c.revokedAudiences[aud]
	return ok && iat < nb
}

// hasRevocations reports whether the client belongs in the revocation list.
func (c *Client) hasRevocations() bool {
	return c != nil && (c.disabled || c.notBefore > 0 || len(c.revokedAudiences) > 0)
}

// issuedAt dates a new token: now, or the audience's not-before time when that is at most
// maxIATLift ahead (a token issued in the second of a revocation, after it), so that no token
// issued after a revocation is revoked by it.
func issuedAt(now time.Time, aud *audience) int64 {
	iat := now.Unix()
	if nb := aud.notBefore; nb > iat && nb-iat <= maxIATLift {
		return nb
	}
	return iat
}

// trackRevocations keeps Index.revoked to the clients that revoke tokens as id is published as
// c (nil: unpublished), and counts its changes. A client unpublished while a record still
// claims its id (the record broken, or two records claiming it) keeps its last revocations in
// the list: an unreadable record must not revive revoked tokens. Called with ix.mu held.
func (ix *Index) trackRevocations(id string, c *Client) {
	if c == nil && len(ix.owners[id]) > 0 {
		return
	}
	old, had := ix.revoked[id]
	switch {
	case c.hasRevocations():
		ix.revoked[id] = c
	case had:
		delete(ix.revoked, id)
	default:
		return
	}
	if old != c {
		ix.revGen.Add(1)
	}
}

// revocationEntry is one client's entry in the list: Disabled revokes every token of the
// client; NotBefore (unix seconds) those with a lower iat; Audiences the same per audience.
type revocationEntry struct {
	Disabled  bool             `json:"disabled,omitempty"`
	NotBefore int64            `json:"not_before,omitempty"`
	Audiences map[string]int64 `json:"audiences,omitempty"`
}

// revocationState snapshots the revocation entries and the generation they belong to.
func (ix *Index) revocationState() (map[string]revocationEntry, uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	out := make(map[string]revocationEntry, len(ix.revoked))
	for id, c := range ix.revoked {
		out[id] = revocationEntry{Disabled: c.disabled, NotBefore: c.notBefore, Audiences: c.revokedAudiences}
	}
	return out, ix.revGen.Load()
}

// revocationList is one signed version of the list, served until the state changes or it
// gets old.
type revocationList struct {
	gen      uint64
	kid      string
	signedAt time.Time
	// etag is the opaque-tag (quoted), served weak.
	etag string
	body []byte
}

// revocationLists builds and caches the served list. Building takes the index lock only to
// copy the entries, and signs outside any lock.
type revocationLists struct {
	mu  sync.Mutex
	cur *revocationList
}

// currentRevocationList returns a list for the current state, signed by the active key, building one when
// the state, the key or the age asks for it.
func (s *Server) currentRevocationList(now time.Time) (*revocationList, error) {
	sig := s.keys.Load().active
	if sig == nil {
		return nil, errNoListKey
	}
	gen := s.index.revGen.Load()
	s.revocations.mu.Lock()
	cur := s.revocations.cur
	s.revocations.mu.Unlock()
	if cur != nil && cur.gen == gen && cur.kid == sig.kid && now.Sub(cur.signedAt) < revocationListResign && !now.Before(cur.signedAt) {
		return cur, nil
	}
	next, err := s.buildRevocationList(sig, now)
	if err != nil {
		return nil, err
	}
	s.revocations.mu.Lock()
	if s.revocations.cur == nil || s.revocations.cur.gen <= next.gen {
		s.revocations.cur = next
	}
	s.revocations.mu.Unlock()
	return next, nil
}

var errNoListKey = errors.New("no active signing key to sign the revocation list")

// buildRevocationList encodes and signs the list of the index's current state.
func (s *Server) buildRevocationList(sig *signer, now time.Time) (*revocationList, error) {
	entries, gen := s.index.revocationState()
	revoked, err := json.Marshal(entries) // map keys sorted: one encoding per state
	if err != nil {
		return nil, fmt.Errorf("encoding the revocation list: %w", err)
	}
	sum := sha256.Sum256(revoked)
	iat := now.Unix()
	payload := appendJSONString([]byte(`{"iss":`), s.opts.Issuer)
	payload = strconv.AppendInt(append(payload, `,"iat":`...), iat, 10)
	payload = strconv.AppendInt(append(payload, `,"exp":`...), iat+int64(revocationListLifetime/time.Second), 10)
	payload = append(append(append(payload, `,"revoked":`...), revoked...), '}')
	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{sig.alg, sig.kid, RevocationListType})
	if err != nil {
		return nil, fmt.Errorf("encoding the revocation list header: %w", err)
	}
	enc := base64.RawURLEncoding
	body := enc.AppendEncode(nil, hdr)
	body = enc.AppendEncode(append(body, '.'), payload)
	signature, err := sig.sign(nil, body)
	if err != nil {
		return nil, fmt.Errorf("signing the revocation list: %w", err)
	}
	body = enc.AppendEncode(append(body, '.'), signature)
	return &revocationList{
		gen: gen, kid: sig.kid, signedAt: now, body: body,
		etag: `"` + enc.EncodeToString(sum[:18]) + `"`,
	}, nil
}

// handleRevocations serves GET /oauth2/revocations.
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	l, err := s.currentRevocationList(s.opts.Clock())
	if err != nil {
		s.log.Error(err, "serving the revocation list")
		http.Error(w, "revocation list unavailable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h["Etag"] = []string{"W/" + l.etag}
	h["Cache-Control"] = []string{revocationListMaxAge}
	if etagMatches(r.Header["If-None-Match"], l.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = []string{"application/" + RevocationListType}
	h["Content-Length"] = []string{strconv.Itoa(len(l.body))}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(l.body)
}
