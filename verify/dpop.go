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

// DPoP-bound access tokens at a resource server (RFC 9449 §7): the token travels as
// "Authorization: DPoP <token>" with a proof in the DPoP header, signed by the key whose
// thumbprint the token carries in cnf.jkt. The proof is checked by verify/dpop (the code the
// token server runs on token requests), against the request's method and URL and the token's
// hash (ath), then its jti is used up in a bounded replay cache: only after the token verified
// and the proof's key matched it, so only a legitimate token holder can add entries.
//
// A bound token presented as Bearer is refused: that is the whole point of binding, a thief
// holding the token alone gets nothing.

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// dpopConfig is the verifier's DPoP configuration.
type dpopConfig struct {
	// mode is how the DPoP scheme is treated.
	mode     dpopMode
	window   time.Duration
	nonces   *dpop.Nonces
	perKey   int
	total    int
	external string
	// unchecked: Verify returns bound tokens without a proof (introspection only).
	unchecked bool
}

type dpopMode int

const (
	// dpopAccepted: Bearer for unbound tokens, DPoP for bound ones (the default).
	dpopAccepted dpopMode = iota
	// dpopRequired: only DPoP-bound tokens with their proof.
	dpopRequired
	// dpopOff: Bearer only; bound tokens are refused, the DPoP scheme is not offered.
	dpopOff
)

// VerifyDPoP validates a DPoP-bound access token and its proof (RFC 9449 §4.3, §7.1): the
// token as [Verifier.Verify] does, then the proof against the request's method and URL (query
// and fragment are ignored) and the token's hash, the proof's key against the token's cnf.jkt,
// and the proof's single use. url is the request URL as the client sees it (behind a proxy,
// the external one: see [WithExternalURL]).
//
// Errors are [*Error]s: ErrTokenBinding when the token is not bound or bound to another key,
// ErrDPoPProof for a proof that fails a check or is replayed, ErrDPoPNonce when the proof lacks
// a nonce this verifier requires ([WithDPoPNonces]), or the errors of Verify for the token.
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof, method, url string) (*Claims, error) {
	if v.dpop.mode == dpopOff {
		return nil, fail(ErrTokenBinding, "this verifier does not accept DPoP")
	}
	c, err := v.verifyAny(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.JKT == "" {
		return nil, fail(ErrTokenBinding, "the access token is not DPoP-bound")
	}
	now := v.now()
	chk := dpop.Check{Method: method, URL: url, AccessToken: token, Now: now, Window: v.dpop.window}
	if v.dpop.nonces != nil {
		chk.Nonce = v.dpop.nonces.Valid
	}
	p, err := dpop.Verify(proof, &chk)
	if err != nil {
		if errors.Is(err, dpop.ErrUseNonce) {
			return nil, wrap(ErrDPoPNonce, "the proof has no valid nonce", err)
		}
		return nil, wrap(ErrDPoPProof, "the proof is invalid", err)
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(c.JKT)) != 1 {
		return nil, fail(ErrTokenBinding, "the proof's key is not the key the token is bound to")
	}
	if err := v.replay.Use(p, now); err != nil {
		return nil, wrap(ErrDPoPProof, "the proof was used before", err)
	}
	return c, nil
}

// Nonce returns a fresh DPoP nonce of this verifier's [WithDPoPNonces], or "" without one.
func (v *Verifier) Nonce() string {
	if v.dpop.nonces == nil {
		return ""
	}
	return v.dpop.nonces.Issue(v.now())
}

// DPoPRequired reports whether the verifier accepts DPoP-bound tokens only ([WithDPoPRequired]).
func (v *Verifier) DPoPRequired() bool { return v.dpop.mode == dpopRequired }

// DPoPAccepted reports whether the verifier accepts the DPoP scheme at all (not [WithoutDPoP]).
func (v *Verifier) DPoPAccepted() bool { return v.dpop.mode != dpopOff }

// bindingForBearer refuses, for a token presented without a proof, what the configuration does
// not allow: a bound token (unless WithBoundTokensUnchecked), or any token when DPoP is
// required.
func (v *Verifier) bindingForBearer(c *Claims) error {
	switch {
	case v.dpop.unchecked:
		return nil
	case c.JKT != "":
		return fail(ErrTokenBinding, "the access token is DPoP-bound: present it with the DPoP scheme and a proof")
	case v.dpop.mode == dpopRequired:
		return fail(ErrTokenBinding, "this resource accepts DPoP-bound access tokens only")
	}
	return nil
}

// WithDPoPRequired makes the verifier accept DPoP-bound tokens with their proof only: Verify
// and the Bearer scheme refuse every token. It is the resource-server side of a ScopePolicy's
// tokenBinding: Required.
func WithDPoPRequired() Option {
	return func(cfg *config) error {
		cfg.dpop.mode = dpopRequired
		return nil
	}
}

// WithoutDPoP makes the verifier Bearer-only: the middleware does not offer or accept the DPoP
// scheme, and DPoP-bound tokens are refused (they are never accepted without their proof).
func WithoutDPoP() Option {
	return func(cfg *config) error {
		cfg.dpop.mode = dpopOff
		return nil
	}
}

// WithDPoPProofWindow sets how far a proof's iat may be from now, either way (default
// [dpop.DefaultWindow]); each accepted proof is remembered that long. At most 10 minutes.
func WithDPoPProofWindow(d time.Duration) Option {
	return func(cfg *config) error {
		if d < time.Second || d > 10*time.Minute {
			return errors.New("DPoP proof window outside [1s, 10m]")
		}
		cfg.dpop.window = d
		return nil
	}
}

// WithDPoPNonces makes proofs carry a nonce from n (RFC 9449 §9): a proof without a valid one
// is answered 401 error="use_dpop_nonce" with a fresh nonce in DPoP-Nonce. Replicas sharing
// n's keys accept each other's nonces.
func WithDPoPNonces(n *dpop.Nonces) Option {
	return func(cfg *config) error {
		if n == nil {
			return errors.New("nil DPoP nonces")
		}
		cfg.dpop.nonces = n
		return nil
	}
}

// WithDPoPReplayCache bounds the proof replay cache: at most perKey unexpired proofs of one key
// (one client) and total in all (defaults [dpop.DefaultReplayPerKey], [dpop.DefaultReplayTotal]).
func WithDPoPReplayCache(perKey, total int) Option {
	return func(cfg *config) error {
		if perKey <= 0 || total < perKey {
			return errors.New("DPoP replay cache bounds must be positive, total >= perKey")
		}
		cfg.dpop.perKey, cfg.dpop.total = perKey, total
		return nil
	}
}

// WithExternalURL sets the scheme and host (and optional path prefix) clients use to reach
// this server, for the htu of DPoP proofs behind a proxy or ingress: the middleware compares
// htu with this base followed by the request's path. Without it the URL is built from the
// request (TLS or not, its Host header).
func WithExternalURL(base string) Option {
	return func(cfg *config) error {
		if !dpop.SameURL(base, base) {
			return errors.New("the external URL must be an absolute http(s) URL")
		}
		cfg.dpop.external = base
		return nil
	}
}

// WithBoundTokensUnchecked makes Verify return DPoP-bound tokens ([Claims.JKT] set) without a
// proof. It is meant for the token server's introspection, whose caller checks the proof
// itself; a resource server must not use it.
func WithBoundTokensUnchecked() Option {
	return func(cfg *config) error {
		cfg.dpop.unchecked = true
		return nil
	}
}
