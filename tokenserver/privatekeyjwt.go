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

// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): the client signs an assertion with
// its own private key; the server holds only the public JWKS the controller copied from the
// M2MClient into the record.
//
// Rules: iss = sub = the client id; aud names this server's issuer or its token endpoint URL;
// exp is in the future and at most 5 minutes (plus the clock-skew leeway) ahead; nbf and iat,
// when present, are not in the future; jti is required and is accepted once. Algorithms
// ES256, EdDSA, RS256 and PS256, each bound to its key type; never HS* or none. A kid, when the
// header has one, selects the key; without one, every key of the JWKS that fits the algorithm
// is tried.
//
// Replay: each replica remembers (client id, jti) until the assertion's exp, in a bounded map.
// This stops a replay to the same replica. It does not stop one replay per other replica
// within the assertion's lifetime (at most 5 minutes): replicas share no state. A client's
// issuance rate limit applies per replica too. Strict single use across replicas would need
// shared state, which this server deliberately does not have; keep assertion lifetimes short.

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

const (
	// maxAssertionLifetime is how far ahead a private_key_jwt assertion's exp may be.
	maxAssertionLifetime = 5 * time.Minute
	// maxReplayEntries bounds the replay cache of one replica.
	maxReplayEntries = 100000
)

// authenticatePrivateKeyJWT authenticates a private_key_jwt assertion.
func (s *Server) authenticatePrivateKeyJWT(req *tokenRequest, a *assertion, now time.Time) (*Client, *oauthError) {
	if a.iss != a.sub || (len(req.id) > 0 && string(req.id) != a.iss) {
		return nil, s.authFailed(nil)
	}
	c := s.index.lookup([]byte(a.iss))
	if c == nil || c.method != credential.MethodPrivateKeyJWT {
		return nil, s.authFailed(c)
	}
	if !c.verifyAssertion(a) || !s.assertionClaimsValid(a, now) {
		return nil, s.authFailed(c)
	}
	switch s.replay.remember(c.id, a.jti, time.Unix(a.exp, 0), now) {
	case replayFull:
		return nil, errReplayCacheFull
	case replaySeen:
		return nil, s.authFailed(c)
	}
	return c, nil
}

// verifyAssertion checks the signature against the client's keys.
func (c *Client) verifyAssertion(a *assertion) bool {
	for i := range c.keys {
		k := &c.keys[i]
		if (a.kid != "" && k.KID != a.kid) || !contains(k.Algs, a.alg) {
			continue
		}
		if verifySignature(a.alg, k.Key, a.signingInput, a.sig) {
			return true
		}
	}
	return false
}

// assertionClaimsValid checks aud, exp (future, and at most 5 minutes ahead), nbf, iat and jti.
func (s *Server) assertionClaimsValid(a *assertion, now time.Time) bool {
	if a.jti == "" || !a.hasAudience(s.opts.Issuer, s.opts.Issuer+TokenPath) || !timesValid(a, now) {
		return false
	}
	return a.exp <= now.Add(maxAssertionLifetime+assertionLeeway).Unix()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

type replayAnswer int

const (
	replayNew replayAnswer = iota
	replaySeen
	replayFull
)

// replayCache remembers the jti of each accepted assertion until it expires.
type replayCache struct {
	mu      sync.Mutex
	entries map[[32]byte]time.Time
}

// remember records (client, jti) until exp, reporting whether it was seen before, or that the
// cache is full of unexpired entries (the caller refuses rather than forget one).
func (rc *replayCache) remember(clientID, jti string, exp, now time.Time) replayAnswer {
	h := sha256.New()
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [32]byte
	h.Sum(key[:0])
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.entries == nil {
		rc.entries = map[[32]byte]time.Time{}
	}
	if until, ok := rc.entries[key]; ok && now.Before(until) {
		return replaySeen
	}
	if len(rc.entries) >= maxReplayEntries {
		rc.sweep(now)
		if len(rc.entries) >= maxReplayEntries {
			return replayFull
		}
	}
	rc.entries[key] = exp
	return replayNew
}

func (rc *replayCache) sweep(now time.Time) {
	for k, until := range rc.entries {
		if !now.Before(until) {
			delete(rc.entries, k)
		}
	}
}
