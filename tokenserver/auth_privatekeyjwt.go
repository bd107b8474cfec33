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
// exp is in the future and at most Options.MaxAssertionLifetime (default 1 hour, the most
// Okta accepts and what Authlib sets; plus the clock-skew leeway) ahead; nbf and iat,
// when present, are not in the future; jti is required and is accepted once. Algorithms
// ES256, EdDSA (also named Ed25519, RFC 9864), RS256 and PS256, each bound to its key type;
// never HS* or none. A kid, when the
// header has one, selects the key; without one, every key of the JWKS that fits the algorithm
// is tried.
//
// Replay protection: replay.go.

import (
	"context"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// privateKeyJWT is the PrivateKeyJWT method.
type privateKeyJWT struct{}

func (privateKeyJWT) record() string { return credential.MethodPrivateKeyJWT }

func (privateKeyJWT) advertised() []string { return []string{"private_key_jwt"} }

// compile reads the client's public keys; a client without any has every assertion refused.
func (privateKeyJWT) compile(c *Client, rec *credential.Record) error {
	if len(rec.JWKS) == 0 {
		return nil
	}
	keys, err := credential.ParseClientJWKS(rec.JWKS)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	c.keys = keys
	return nil
}

// presented: any client assertion (methods before this one in clientAuthMethods claim theirs).
func (privateKeyJWT) presented(req *tokenRequest) bool { return req.jwt != nil }

// authenticate checks a private_key_jwt assertion; a refusal is logged with its reason
// (refusals.go).
func (privateKeyJWT) authenticate(_ context.Context, s *Server, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	a := req.jwt
	if a.iss != a.sub || (len(req.id) > 0 && string(req.id) != a.iss) {
		return nil, s.refuseAssertion(refusedClientMismatch, a.iss, a)
	}
	c := s.index.lookup([]byte(a.iss))
	if c == nil {
		return nil, s.refuseAssertion(refusedUnknownClient, a.iss, a)
	}
	if _, ownMethod := c.auth.(privateKeyJWT); !ownMethod {
		return nil, s.refuseAssertion(refusedWrongMethod, a.iss, a)
	}
	if why := c.verifyAssertion(a); why != "" {
		return nil, s.refuseAssertion(why, a.iss, a)
	}
	if why := s.assertionClaimsRefusal(a, now); why != "" {
		return nil, s.refuseAssertion(why, a.iss, a)
	}
	switch ans, retryAfter := c.replay.remember(s.replayLimits, a.jti, a.exp, now.Unix()); ans {
	case replayFull:
		return nil, replayLimited(retryAfter)
	case replaySeen:
		return nil, s.refuseAssertion(refusedReplayed, a.iss, a)
	}
	return c, nil
}

// verifyAssertion checks the signature against the client's keys: "" when one verifies it,
// else whether no key fitted the header's kid and alg or none verified. k.Algs already holds
// the key's declared alg when it has one (credential.ParseClientJWKS); jws binds the
// algorithm to the key's type.
func (c *Client) verifyAssertion(a *assertion) refusal {
	why := refusedNoMatchingKey
	for i := range c.keys {
		k := &c.keys[i]
		if (a.kid != "" && k.KID != a.kid) || !slices.Contains(k.Algs, a.alg) {
			continue
		}
		if a.token.Verify(&jose.JSONWebKey{Key: k.Key}) == nil {
			return ""
		}
		why = refusedBadSignature
	}
	return why
}

// assertionClaimsRefusal checks jti, aud, exp (future, and at most MaxAssertionLifetime
// ahead), nbf and iat: "" when they hold.
func (s *Server) assertionClaimsRefusal(a *assertion, now time.Time) refusal {
	switch {
	case a.jti == "":
		return refusedMissingJTI
	case !a.hasAudience(s.opts.Issuer, s.opts.Issuer+TokenPath):
		return refusedWrongAudience
	}
	if why := timesRefusal(a, now); why != "" {
		return why
	}
	if a.exp > now.Add(s.opts.MaxAssertionLifetime+assertionLeeway).Unix() {
		return refusedLifetime
	}
	return ""
}
