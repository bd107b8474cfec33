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

// The ServiceAccount method: a pod presents its projected ServiceAccount token, with the token
// server's issuer as audience, as an RFC 7523 client assertion.
//
// Choices:
//   - The token's signature is checked against the cluster's service-account issuer keys, read
//     by OIDC discovery from the API server itself (/.well-known/openid-configuration for the
//     issuer, /openid/v1/jwks for the keys, through the token server's own API client: its
//     ServiceAccount may read both through the default system:service-account-issuer-discovery
//     binding, so no RBAC is added for them). A jwks_uri elsewhere in the discovery document is
//     not followed. Keys are cached and fetched again on an unknown kid, at most once per
//     cooldown.
//   - Then iss, aud (must include this server's issuer), exp and nbf are checked, and the token
//     is confirmed once with the TokenReview API (audiences = [issuer]): a token bound to a pod
//     or ServiceAccount that no longer exists is refused. The positive answer is cached by the
//     token's SHA-256 until the token's exp, and never longer than a minute, so a deleted pod's
//     token stops working within a minute, and a hot token costs one hash and two map lookups.
//   - "system:serviceaccount:<ns>:<name>" maps to the client through an index of the client
//     index; the namespace is part of the key, so another namespace's ServiceAccount of the
//     same name never matches. Two clients bound to one ServiceAccount are both refused for it.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// serviceAccountPrefix starts the username (and sub) of every ServiceAccount token.
const serviceAccountPrefix = "system:serviceaccount:"

// serviceAccountAlgorithms are the algorithms the API server signs ServiceAccount tokens with.
var serviceAccountAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512}

// serviceAccountToken is the ServiceAccount method.
type serviceAccountToken struct{}

func (serviceAccountToken) record() string { return credential.MethodServiceAccount }

// advertised: none of its own; private_key_jwt covers it (a JWT signed by the cluster, sent the
// same way as a client's own).
func (serviceAccountToken) advertised() []string { return nil }

// compile keys the client by its ServiceAccount.
func (serviceAccountToken) compile(c *Client, rec *credential.Record) error {
	c.subject = rec.Namespace + "/" + rec.ServiceAccountName
	return nil
}

// presented: a client assertion whose sub is a ServiceAccount.
func (serviceAccountToken) presented(req *tokenRequest) bool {
	return req.jwt != nil && isServiceAccountSubject(req.jwt.sub)
}

// authenticate checks a ServiceAccount token assertion; a refusal is logged with its reason
// (refusals.go).
func (serviceAccountToken) authenticate(ctx context.Context, s *Server, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	a := req.jwt
	sa := s.serviceAccounts.Load()
	if sa == nil {
		return nil, s.refuseAssertion(refusedNoCluster, a.sub, a)
	}
	key, ok := subjectKey(a.sub)
	if !ok {
		return nil, s.refuseAssertion(refusedMalformed, a.sub, a)
	}
	c := s.index.lookupSubject(key)
	switch {
	case c == nil:
		return nil, s.refuseAssertion(refusedUnknownClient, a.sub, a)
	case len(req.id) > 0 && string(req.id) != c.id:
		return nil, s.refuseAssertion(refusedClientMismatch, a.sub, a)
	}
	if why := s.serviceAccountTokenRefusal(ctx, sa, a, now); why != "" {
		return nil, s.refuseAssertion(why, a.sub, a)
	}
	if !sa.confirm(ctx, string(req.assertion), req.assertionHash, a, s.opts.Issuer, now) {
		return nil, s.refuseAssertion(refusedTokenReview, a.sub, a)
	}
	return c, nil
}

// cached answers from the TokenReview cache: the client bound to the ServiceAccount of a token
// confirmed less than a minute ago and not yet expired.
func (serviceAccountToken) cached(s *Server, req *tokenRequest, now time.Time) *Client {
	sa := s.serviceAccounts.Load()
	if sa == nil {
		return nil
	}
	key, ok := sa.cache.get(&req.assertionHash, now)
	if !ok {
		return nil
	}
	c := s.index.lookupSubject(key)
	if c == nil || (len(req.id) > 0 && string(req.id) != c.id) {
		return nil
	}
	return c
}

// serviceAccountTokenRefusal checks the signature with the cluster's keys, then iss, aud, exp
// and nbf: "" when they hold.
func (s *Server) serviceAccountTokenRefusal(ctx context.Context, sa *serviceAccounts, a *assertion, now time.Time) refusal {
	if !slices.Contains(serviceAccountAlgorithms, jose.SignatureAlgorithm(a.alg)) || a.kid == "" {
		return refusedNoMatchingKey
	}
	key, _ := sa.keys.Lookup(ctx, a.kid) // a failed fetch is logged by fetchKeys
	switch {
	case key == nil || (key.Algorithm != "" && key.Algorithm != a.alg):
		return refusedNoMatchingKey
	case a.iss != sa.issuer():
		return refusedWrongIssuer
	case a.token.Verify(key) != nil:
		return refusedBadSignature
	case !a.hasAudience(s.opts.Issuer):
		return refusedWrongAudience
	}
	return timesRefusal(a, now)
}

// confirm asks TokenReview once per token (concurrent first uses share one call) and caches
// a positive answer until min(exp, now + reviewCacheTTL).
func (sa *serviceAccounts) confirm(ctx context.Context, token string, h [32]byte, a *assertion, audience string, now time.Time) bool {
	v, err, _ := sa.reviews.Do(string(h[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
		defer cancel()
		return sa.api.review(rctx, token, audience)
	})
	if err != nil {
		if !errors.Is(err, errNotAuthenticated) {
			sa.log.Error(err, "TokenReview failed; refusing the ServiceAccount token")
		}
		return false
	}
	if v.(string) != a.sub {
		return false
	}
	deadline := now.Add(reviewCacheTTL)
	if exp := time.Unix(a.exp, 0); exp.Before(deadline) {
		deadline = exp
	}
	key, _ := subjectKey(a.sub)
	sa.cache.put(h, key, deadline, now)
	return true
}

// subjectKey turns "system:serviceaccount:<ns>:<name>" into "<ns>/<name>".
func subjectKey(sub string) (string, bool) {
	rest, ok := strings.CutPrefix(sub, serviceAccountPrefix)
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, ":/") || strings.Contains(ns, "/") {
		return "", false
	}
	return ns + "/" + name, true
}

// isServiceAccountSubject reports whether an assertion is a ServiceAccount token.
func isServiceAccountSubject(sub string) bool { return strings.HasPrefix(sub, serviceAccountPrefix) }
