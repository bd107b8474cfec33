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

package credentialplan

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// RevocationInput is what the revocation decision reads: the client's revoke-tokens annotation
// and what the status says was handled, its disabled flag, the record as observed (the durable
// not-before times and the grants tokens were issued under) and the grants it gets now.
type RevocationInput struct {
	Now time.Time
	// Retention is how long a not-before time is kept: the token servers' maximum token TTL
	// plus a leeway. Past it, no token issued before it is still alive.
	Retention time.Duration
	// Requested is the revoke-tokens annotation; Handled is status.revokeTokensHandled (the
	// HandledValue of the last value applied) and RevokedAt status.tokensRevokedAt.
	Requested, Handled string
	RevokedAt          time.Time
	Disabled           bool
	Previous           *credential.Record
	Grants             []credential.AudienceGrant
}

// Revocation is the decision: the record's not-before times, and what the status records.
type Revocation struct {
	TokensNotBefore   int64
	AudienceNotBefore []credential.AudienceNotBefore
	// Handled and RevokedAt go to the status: the annotation value applied (HandledValue) and
	// when (unchanged unless this pass applied a new value).
	Handled   string
	RevokedAt time.Time
	// Expires is when the earliest not-before time may be dropped (a reconcile then shrinks the
	// record); zero when there is none.
	Expires time.Time
}

// maxHandledLen is the longest annotation value kept as is in the status; a longer one is kept
// as its hash (a tenant's value must not grow the status).
const maxHandledLen = 128

// HandledValue is how the status records an annotation value: as is when short, else its
// SHA-256.
func HandledValue(v string) string {
	if len(v) <= maxHandledLen {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// revocationInstant is the not-before time of a revocation decided at now: the next whole
// second. Tokens carry iat in whole seconds, so every token issued up to now (iat ≤ now) has
// iat < it, and the token server dates a token issued later in the same second at it.
func revocationInstant(now time.Time) int64 { return now.Unix() + 1 }

// DecideRevocation decides the record's not-before times. They only grow while they matter,
// and each is dropped once every token issued before it has expired (Retention):
//   - a new value of the revoke-tokens annotation revokes every token issued so far (its time
//     stays in the status, so it is applied once);
//   - disabling or enabling the client revokes every token issued so far (while disabled the
//     token server revokes all of them anyway; enabling keeps the old ones revoked);
//   - an audience whose grant disappears or loses a scope revokes the client's tokens for it.
//
// More than credential.MaxRevokedAudiences audience times are folded into TokensNotBefore:
// revoking more, never less.
func DecideRevocation(in RevocationInput) Revocation {
	now := revocationInstant(in.Now)
	live := func(nb int64) bool { return nb > 0 && in.Now.Before(time.Unix(nb, 0).Add(in.Retention)) }
	d := Revocation{Handled: in.Handled, RevokedAt: in.RevokedAt}
	if in.Requested != "" && HandledValue(in.Requested) != in.Handled {
		d.Handled, d.RevokedAt = HandledValue(in.Requested), time.Unix(now, 0).UTC()
	}
	var tokens int64
	if !d.RevokedAt.IsZero() && live(d.RevokedAt.Unix()) {
		tokens = d.RevokedAt.Unix()
	}
	prev := in.Previous
	audiences := map[string]int64{}
	if prev != nil {
		if live(prev.TokensNotBefore) {
			tokens = max(tokens, prev.TokensNotBefore)
		}
		if prev.Disabled != in.Disabled {
			tokens = max(tokens, now)
		}
		for _, a := range prev.AudienceNotBefore {
			if live(a.NotBefore) {
				audiences[a.Audience] = a.NotBefore
			}
		}
		for _, g := range prev.Grants {
			if narrowed(g, in.Grants) {
				audiences[g.Audience] = max(audiences[g.Audience], now)
			}
		}
	}
	for aud, nb := range audiences {
		if nb <= tokens {
			delete(audiences, aud) // the client-wide time already revokes these
		}
	}
	d.TokensNotBefore = tokens
	if len(audiences) > credential.MaxRevokedAudiences {
		for _, nb := range audiences {
			d.TokensNotBefore = max(d.TokensNotBefore, nb)
		}
		audiences = nil
	}
	for aud, nb := range audiences {
		d.AudienceNotBefore = append(d.AudienceNotBefore, credential.AudienceNotBefore{Audience: aud, NotBefore: nb})
	}
	slices.SortFunc(d.AudienceNotBefore, func(a, b credential.AudienceNotBefore) int { return strings.Compare(a.Audience, b.Audience) })
	d.Expires = d.expires(in.Retention)
	return d
}

// narrowed reports whether the grant g, held before, is gone from grants or lost a scope.
func narrowed(g credential.AudienceGrant, grants []credential.AudienceGrant) bool {
	i := slices.IndexFunc(grants, func(n credential.AudienceGrant) bool { return n.Audience == g.Audience })
	if i < 0 {
		return true
	}
	for _, sc := range g.Scopes {
		if !slices.Contains(grants[i].Scopes, sc) {
			return true
		}
	}
	return false
}

// expires is when the earliest of the decision's not-before times may be dropped.
func (d Revocation) expires(retention time.Duration) time.Time {
	var first int64
	consider := func(nb int64) {
		if nb > 0 && (first == 0 || nb < first) {
			first = nb
		}
	}
	consider(d.TokensNotBefore)
	for _, a := range d.AudienceNotBefore {
		consider(a.NotBefore)
	}
	if first == 0 {
		return time.Time{}
	}
	return time.Unix(first, 0).Add(retention)
}
