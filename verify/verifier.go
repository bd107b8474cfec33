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

package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// KeySource supplies trusted verification keys by key ID. The keys must be public keys (private
// keys are reduced to their public half). Implementations must be safe for concurrent use and
// should return the same *jose.JSONWebKey for a key that has not changed, which keeps token
// cache hits cheap.
type KeySource interface {
	// Key returns the trusted key with this kid, if any.
	Key(kid string) (*jose.JSONWebKey, bool)
}

// Verifier validates access tokens for one issuer and one audience. It is safe for concurrent
// use. Build it with [New] (keys discovered from the issuer) or [NewWithKeySource].
type Verifier struct {
	issuer      string
	audience    string
	anyAudience bool
	leeway      time.Duration
	now         func() time.Time
	algorithms  []jose.SignatureAlgorithm
	maxSize     int
	realm       string

	keys   KeySource
	remote *remoteKeySet // nil when the caller supplied the keys
	cache  *tokenCache   // nil when caching is off
	// revocations is the issuer's revocation list; nil without WithRevocationList.
	revocations *revocations

	dpop   dpopConfig
	replay *dpop.ReplayCache
}

// New returns a Verifier for tokens issued by issuer for audience. It reads the issuer's RFC
// 8414 metadata at <issuer>/.well-known/oauth-authorization-server (for an issuer with a path,
// the RFC 8414 §3.1 location, then the appended one), checks that the metadata's "issuer" is
// exactly issuer, and fetches the key set named by "jwks_uri".
//
// ctx bounds this initial discovery only. Afterwards the key set is refreshed in the
// background when the JWKS response's Cache-Control max-age runs out, and on demand (with a
// cooldown) when a token names an unknown kid; both are driven by calls to [Verifier.Verify],
// so an idle Verifier does no work and needs no Close.
func New(ctx context.Context, issuer, audience string, opts ...Option) (*Verifier, error) {
	cfg, err := buildConfig(issuer, audience, opts)
	if err != nil {
		return nil, err
	}
	v := newVerifier(issuer, audience, cfg)
	md, err := discover(ctx, cfg.httpClient, issuer)
	if err != nil {
		return nil, err
	}
	remote := newRemoteKeySet(md.JWKSURI, cfg, v.cache.purge)
	if err := remote.set.Refresh(ctx); err != nil {
		return nil, asKeySetError(err)
	}
	if remote.set.Len() == 0 {
		return nil, fail(ErrKeySet, "the key set has no usable signing key (check WithAllowedAlgorithms)")
	}
	v.keys, v.remote = remote, remote
	if cfg.revocation.enabled {
		if err := v.startRevocations(ctx, md, cfg); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// startRevocations fetches the revocation list named by the metadata and starts its refresh.
func (v *Verifier) startRevocations(ctx context.Context, md *metadata, cfg *config) error {
	if md.RevocationListURI == "" {
		return fail(ErrRevocationList, "the issuer's metadata names no m2m_revocation_list_uri")
	}
	if err := checkDocumentURI("m2m_revocation_list_uri", md.RevocationListURI, v.issuer); err != nil {
		return wrap(ErrRevocationList, "", err)
	}
	audience := v.audience
	if v.anyAudience {
		audience = "" // keep every audience's revocations: the token's aud picks them
	}
	r := &revocations{
		url: md.RevocationListURI, issuer: v.issuer, audience: audience, client: cfg.httpClient,
		now: cfg.now, leeway: cfg.leeway, keys: v.remote, cfg: cfg.revocation,
	}
	if err := r.start(ctx); err != nil {
		return err
	}
	v.revocations = r
	stopWhenUnreachable(v, r)
	return nil
}

// Close stops the background refresh of the revocation list ([WithRevocationList]); a
// Verifier nobody references stops it too. Verify keeps answering after Close, with the last
// list until it is stale. Close is a no-op for other verifiers.
func (v *Verifier) Close() {
	if v.revocations != nil {
		v.revocations.close()
	}
}

// NewWithKeySource returns a Verifier that takes its keys from src instead of discovering
// them, for the token server itself (its introspection endpoint validates tokens with exactly
// the same rules as resource servers). The HTTP and refresh options have no effect.
//
// Cached tokens are re-checked against src on every hit, so a key that src stops returning
// stops its tokens at once.
func NewWithKeySource(issuer, audience string, src KeySource, opts ...Option) (*Verifier, error) {
	if src == nil {
		return nil, errors.New("verify: nil key source")
	}
	cfg, err := buildConfig(issuer, audience, opts)
	if err != nil {
		return nil, err
	}
	if cfg.revocation.enabled {
		return nil, errors.New("verify: WithRevocationList needs New (the list is discovered from the issuer's metadata)")
	}
	v := newVerifier(issuer, audience, cfg)
	v.keys = src
	return v, nil
}

// buildConfig applies the options and checks the arguments.
func buildConfig(issuer, audience string, opts []Option) (*config, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(cfg); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	if issuer == "" {
		return nil, errors.New("verify: empty issuer")
	}
	if audience == "" && !cfg.anyAudience {
		return nil, errors.New("verify: empty audience (use WithAnyAudience for introspection)")
	}
	if cfg.revocation.staleness < cfg.revocation.refresh {
		return nil, errors.New("verify: the revocation staleness bound is shorter than the refresh interval")
	}
	return cfg, nil
}

func newVerifier(issuer, audience string, cfg *config) *Verifier {
	realm := cfg.realm
	if realm == "" {
		realm = audience
	}
	return &Verifier{
		issuer:      issuer,
		audience:    audience,
		anyAudience: cfg.anyAudience,
		leeway:      cfg.leeway,
		now:         cfg.now,
		algorithms:  cfg.algorithms,
		maxSize:     cfg.maxSize,
		realm:       realm,
		cache:       newTokenCache(cfg.cacheSize),
		dpop:        cfg.dpop,
		replay:      dpop.NewReplayCache(cfg.dpop.perKey, cfg.dpop.total),
	}
}

// Issuer returns the issuer this Verifier accepts.
func (v *Verifier) Issuer() string { return v.issuer }

// Audience returns the audience this Verifier requires ("" with [WithAnyAudience]).
func (v *Verifier) Audience() string { return v.audience }

// Refresh fetches the key set now, ignoring the cooldown; concurrent calls share one request.
// It is a no-op for a Verifier built with [NewWithKeySource]. Verification never needs it:
// it is for operators and tests that want to pick up a rotation immediately.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v.remote == nil {
		return nil
	}
	return v.remote.set.Refresh(ctx)
}

// Verify validates a token and returns its claims. The token is the bare JWS, without the
// "Bearer " prefix. ctx bounds the wait for a key set refresh when the token names a kid that
// is not yet known.
//
// A DPoP-bound token (cnf.jkt) is refused with ErrTokenBinding: it is only accepted with its
// proof, by [Verifier.VerifyDPoP]. With [WithDPoPRequired] every token is.
//
// Every error is an [*Error]; test it with errors.Is against the sentinel errors (ErrExpired,
// ErrSignature, ...). The returned claims may be shared: do not modify them.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verifyAny(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := v.bindingForBearer(c); err != nil {
		return nil, err
	}
	return c, nil
}

// verifyAny validates a token, bound or not, through the cache.
func (v *Verifier) verifyAny(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.maxSize {
		return nil, failf(ErrMalformed, "token larger than %d bytes", v.maxSize)
	}
	now := v.now()
	if v.remote != nil {
		v.remote.maybeRefresh(now)
	}
	if c := v.cache.lookup(token, now.UnixNano(), v.keys); c != nil {
		return v.checkRevoked(c, now)
	}
	c, kid, key, err := v.verifyToken(ctx, token, now)
	if err != nil {
		return nil, err
	}
	v.cache.store(token, c, kid, key, v.cacheDeadline(c, now), now.UnixNano())
	return v.checkRevoked(c, now)
}

// checkRevoked applies the revocation list, when there is one, to a token otherwise valid; a
// cached token too, so a revocation reaches hot tokens at once.
func (v *Verifier) checkRevoked(c *Claims, now time.Time) (*Claims, error) {
	if v.revocations == nil {
		return c, nil
	}
	if err := v.revocations.check(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// maxCacheLifetime bounds how long one verified token stays cached even if it lives longer;
// it also keeps deadlines far from int64 nanosecond overflow.
const maxCacheLifetime = time.Hour

// cacheDeadline is the instant from which a cached token is no longer accepted: the same
// instant at which the full check would call it expired.
func (v *Verifier) cacheDeadline(c *Claims, now time.Time) int64 {
	deadline := c.Expiry.Add(v.leeway)
	if limit := now.Add(maxCacheLifetime); deadline.After(limit) {
		deadline = limit
	}
	return deadline.UnixNano()
}

// verifyToken is the one full validation, shared by every constructor. It returns the claims
// and the kid and key that verified them.
func (v *Verifier) verifyToken(ctx context.Context, token string, now time.Time) (*Claims, string, *jose.JSONWebKey, error) {
	t, err := v.parse(token)
	if err != nil {
		return nil, "", nil, err
	}
	alg, kid := t.Header.Algorithm, t.Header.KeyID
	key, err := v.key(ctx, kid)
	if err != nil {
		return nil, "", nil, err
	}
	if !jws.Fits(alg, key) {
		return nil, "", nil, failf(ErrAlgorithm, "%s does not fit the key", excerpt(alg))
	}
	if err := t.Verify(key); err != nil {
		return nil, "", nil, fromJWS(err)
	}
	c, err := parseClaims(t.Payload)
	if err != nil {
		return nil, "", nil, err
	}
	if err := v.checkClaims(c, now); err != nil {
		return nil, "", nil, err
	}
	return c, kid, key, nil
}

// key finds the trusted key for kid, fetching the remote key set again once (subject to the
// cooldown) when the kid is unknown: that is how a verifier follows a key rotation it has not
// yet seen.
func (v *Verifier) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := v.keys.Key(kid); ok && k != nil {
		return k, nil
	}
	if v.remote == nil {
		return nil, failf(ErrUnknownKey, "kid %s", excerpt(kid))
	}
	k, err := v.remote.set.Lookup(ctx, kid)
	if err != nil {
		return nil, wrap(ErrUnknownKey, "kid "+excerpt(kid)+" and the key set refresh failed", err)
	}
	if k == nil {
		return nil, failf(ErrUnknownKey, "kid %s", excerpt(kid))
	}
	return k, nil
}
