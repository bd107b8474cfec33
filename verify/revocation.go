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

// The m2m token server's revocation list ([WithRevocationList]).
//
// The list is a JWS, "typ" m2m-revocation+jwt, signed by a key of the issuer's JWKS (the same
// key set, with the same rules, as access tokens), whose payload is
//
//	{"iss": issuer, "iat": …, "exp": …, "revoked": {client id: {"disabled": true,
//	  "not_before": unix seconds, "audiences": {audience: unix seconds}}}}
//
// A token is revoked when its client is disabled, or its iat is lower than the client's
// not_before, or than the not_before of this verifier's audience. The verifier fetches the
// list once in New, then every refresh interval in the background (a conditional GET with the
// last ETag); each check is one atomic load and one map lookup of the token's client id.

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

const (
	// DefaultRevocationRefresh is how often the revocation list is fetched again. With the
	// token server's propagation (its informer, milliseconds) a revoked token is refused
	// within about this interval plus one fetch.
	DefaultRevocationRefresh = 2 * time.Second
	// DefaultRevocationStaleness is how long the last list fetched stays usable when it cannot
	// be refreshed. After that tokens are refused (fail closed) unless
	// [WithRevocationFailOpen] is set.
	DefaultRevocationStaleness = 5 * time.Minute
	// revocationListType is the list's JOSE "typ".
	revocationListType = "m2m-revocation+jwt"
	// maxClientIDLen bounds the client ids a list may name.
	maxClientIDLen = 256
)

// revocationConfig is the revocation part of the options.
type revocationConfig struct {
	enabled   bool
	refresh   time.Duration
	staleness time.Duration
	failOpen  bool
}

// WithRevocationList makes the verifier honour the issuer's revocation list, named by the
// metadata field "m2m_revocation_list_uri": tokens of a client whose tokens were revoked
// (a revoke-tokens annotation, a client disabled, a grant removed) are refused with
// [ErrRevoked]. [New] fails when the issuer publishes no list or the first fetch fails (unless
// [WithRevocationFailOpen]); the list is then refreshed in the background every
// [DefaultRevocationRefresh] until [Verifier.Close]. Not for [NewWithKeySource]. With
// [WithAnyAudience] (a gateway's decision service verifying tokens of every audience) a
// per-audience revocation refuses a token that names the audience in its "aud".
func WithRevocationList() Option {
	return func(cfg *config) error {
		cfg.revocation.enabled = true
		return nil
	}
}

// WithRevocationRefresh sets how often the revocation list is fetched (default
// [DefaultRevocationRefresh]); between 100 ms and 1 minute. It bounds how long a revoked token
// is still accepted.
func WithRevocationRefresh(d time.Duration) Option {
	return func(cfg *config) error {
		if d < 100*time.Millisecond || d > time.Minute {
			return fmt.Errorf("revocation refresh %v outside [100ms, 1m]", d)
		}
		cfg.revocation.refresh = d
		return nil
	}
}

// WithRevocationStaleness sets how long the last revocation list fetched is used while no
// fresh one can be fetched (default [DefaultRevocationStaleness]); at least the refresh
// interval. Past it, every token is refused with [ErrRevocationList] (fail closed), or, with
// [WithRevocationFailOpen], checked against that last list.
func WithRevocationStaleness(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("revocation staleness %v must be positive", d)
		}
		cfg.revocation.staleness = d
		return nil
	}
}

// WithRevocationFailOpen keeps accepting tokens (checked against the last list fetched, if any)
// when the revocation list cannot be refreshed for longer than the staleness bound: the choice
// of availability over revocation for an API that prefers it. The default fails closed.
func WithRevocationFailOpen() Option {
	return func(cfg *config) error {
		cfg.revocation.failOpen = true
		return nil
	}
}

// revocationSet is one verified list, reduced to this verifier's audience: client id → the
// lowest iat still valid (math.MaxInt64 for a disabled client). A verifier of any audience
// keeps the per-audience times too, in audiences (client id → audience → lowest iat).
type revocationSet struct {
	iat       int64
	clients   map[string]int64
	audiences map[string]map[string]int64
}

// notBefore is the lowest iat still valid for a token of the client naming auds; ok is false
// when the list revokes none of the client's tokens.
func (s *revocationSet) notBefore(clientID string, auds []string) (nb int64, ok bool) {
	nb, ok = s.clients[clientID]
	if s.audiences == nil {
		return nb, ok
	}
	if per, found := s.audiences[clientID]; found {
		for _, a := range auds {
			if t, has := per[a]; has {
				nb, ok = max(nb, t), true
			}
		}
	}
	return nb, ok
}

// revocations fetches and holds the list. The refresh goroutine references it, never the
// Verifier, so a Verifier nobody holds is collected and its cleanup stops the goroutine.
type revocations struct {
	url      string
	issuer   string
	audience string
	client   *http.Client
	now      func() time.Time
	leeway   time.Duration
	keys     *remoteKeySet
	cfg      revocationConfig

	set atomic.Pointer[revocationSet]
	// fetched is when the last list was fetched or confirmed (304), in unix nanoseconds.
	fetched atomic.Int64
	etag    string // only the refresh goroutine and New touch it

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// check refuses a revoked token, and every token once the list is stale and the policy fails
// closed. One atomic load and one map lookup; no allocation unless it refuses.
func (r *revocations) check(c *Claims, now time.Time) error {
	stale := now.UnixNano()-r.fetched.Load() > int64(r.cfg.staleness)
	set := r.set.Load()
	if (stale && !r.cfg.failOpen) || (set == nil && !r.cfg.failOpen) {
		return fail(ErrRevocationList, "the revocation list could not be refreshed")
	}
	if set == nil {
		return nil
	}
	if nb, ok := set.notBefore(c.ClientID, c.Audience); ok && c.IssuedAt.Unix() < nb {
		return fail(ErrRevoked, "")
	}
	return nil
}

// start fetches the list once (ctx bounds it) and starts the background refresh.
func (r *revocations) start(ctx context.Context) error {
	err := r.refresh(ctx)
	if err != nil && !r.cfg.failOpen {
		return err
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.loop()
	return nil
}

func (r *revocations) loop() {
	defer close(r.done)
	t := time.NewTimer(r.cfg.refresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(r.cfg.refresh, 5*time.Second))
		_ = r.refresh(ctx) // a failure keeps the last list; check applies the staleness policy
		cancel()
		t.Reset(r.cfg.refresh)
	}
}

// close stops the background refresh and waits for it.
func (r *revocations) close() {
	if r.stop == nil {
		return
	}
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

// refresh fetches the list (conditionally) and installs it when it verifies and is not older
// than the one held.
func (r *revocations) refresh(ctx context.Context) error {
	start := r.now()
	body, resp, err := get(ctx, r.client, r.url, r.etag) //nolint:bodyclose // get has read and closed the body
	if err != nil {
		return wrap(ErrRevocationList, "fetching the revocation list", err)
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		if r.set.Load() == nil {
			return fail(ErrRevocationList, "304 without a list held")
		}
	case http.StatusOK:
		set, err := r.verifyList(ctx, string(body), start)
		if err != nil {
			return err
		}
		if cur := r.set.Load(); cur != nil && set.iat < cur.iat {
			return fail(ErrRevocationList, "the list fetched is older than the one held")
		}
		r.set.Store(set)
		r.etag = resp.Header.Get("ETag")
	default:
		return failf(ErrRevocationList, "fetching the revocation list: HTTP status %d", resp.StatusCode)
	}
	r.fetched.Store(start.UnixNano())
	return nil
}

// verifyList checks the list's JWS against the issuer's key set and decodes it.
func (r *revocations) verifyList(ctx context.Context, token string, now time.Time) (*revocationSet, error) {
	t, err := jws.Parse(token)
	if err != nil {
		return nil, wrap(ErrRevocationList, "", err)
	}
	if strings.TrimPrefix(strings.ToLower(t.Header.Type), "application/") != revocationListType {
		return nil, failf(ErrRevocationList, "typ %s is not %s", excerpt(t.Header.Type), revocationListType)
	}
	if !algIn(r.keys.algorithms, t.Header.Algorithm) {
		return nil, failf(ErrRevocationList, "alg %s is not allowed", excerpt(t.Header.Algorithm))
	}
	if t.Header.KeyID == "" || len(t.Header.KeyID) > maxKeyIDLen {
		return nil, fail(ErrRevocationList, "missing or oversized \"kid\"")
	}
	key, err := r.keys.set.Lookup(ctx, t.Header.KeyID)
	if err != nil || key == nil {
		return nil, failf(ErrRevocationList, "kid %s is not in the issuer's key set", excerpt(t.Header.KeyID))
	}
	if !jws.Fits(t.Header.Algorithm, key) {
		return nil, fail(ErrRevocationList, "alg does not fit the key")
	}
	if err := t.Verify(key); err != nil {
		return nil, wrap(ErrRevocationList, "signature", err)
	}
	return decodeRevocationList(t.Payload, r.issuer, r.audience, now, r.leeway)
}

func algIn(algs []jose.SignatureAlgorithm, alg string) bool {
	return slices.Contains(algs, jose.SignatureAlgorithm(alg))
}

// revocationPayload is the list's payload as sent.
type revocationPayload struct {
	Issuer   string                            `json:"iss"`
	IssuedAt *int64                            `json:"iat"`
	Expiry   *int64                            `json:"exp"`
	Revoked  map[string]revocationPayloadEntry `json:"revoked"`
}

type revocationPayloadEntry struct {
	Disabled  bool             `json:"disabled"`
	NotBefore int64            `json:"not_before"`
	Audiences map[string]int64 `json:"audiences"`
}

// decodeRevocationList decodes and checks a verified list's payload for one audience ("" for
// a verifier of any audience, which keeps every audience's times): the issuer, iat not in the
// future and exp not past (with leeway), entries well formed.
func decodeRevocationList(payload []byte, issuer, audience string, now time.Time, leeway time.Duration) (*revocationSet, error) {
	var p revocationPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, wrap(ErrRevocationList, "payload", err)
	}
	switch {
	case p.Issuer != issuer:
		return nil, failf(ErrRevocationList, "issuer %s", excerpt(p.Issuer))
	case p.IssuedAt == nil || p.Expiry == nil || *p.Expiry < *p.IssuedAt:
		return nil, fail(ErrRevocationList, "iat and exp are required, exp not before iat")
	case *p.IssuedAt > now.Add(leeway).Unix():
		return nil, fail(ErrRevocationList, "issued in the future")
	case *p.Expiry < now.Add(-leeway).Unix():
		return nil, fail(ErrRevocationList, "expired")
	}
	set := &revocationSet{iat: *p.IssuedAt, clients: make(map[string]int64, len(p.Revoked))}
	for id, e := range p.Revoked {
		if id == "" || len(id) > maxClientIDLen || e.NotBefore < 0 {
			return nil, fail(ErrRevocationList, "malformed entry")
		}
		nb := e.NotBefore
		if audience == "" {
			keepAudiences(set, id, e.Audiences)
		} else if a, ok := e.Audiences[audience]; ok {
			nb = max(nb, a)
		}
		if e.Disabled {
			nb = math.MaxInt64
		}
		if nb > 0 {
			set.clients[id] = nb
		}
	}
	return set, nil
}

// keepAudiences records a client's per-audience times for a verifier of any audience.
func keepAudiences(set *revocationSet, id string, auds map[string]int64) {
	if len(auds) == 0 {
		return
	}
	if set.audiences == nil {
		set.audiences = map[string]map[string]int64{}
	}
	set.audiences[id] = auds
}

// stopWhenUnreachable stops the refresh of a Verifier that nobody holds any more.
func stopWhenUnreachable(v *Verifier, r *revocations) {
	runtime.AddCleanup(v, func(r *revocations) { r.close() }, r)
}
