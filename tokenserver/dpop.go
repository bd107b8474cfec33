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

// DPoP-bound tokens at the token endpoint (RFC 9449 §5): a request with a DPoP header gets a
// token bound to the proof's key (cnf.jkt, token_type DPoP). The proof is checked by
// verify/dpop, the code resource servers run (§4.3), against the token endpoint's URL built
// from the issuer; its jti is remembered in the client's replay set (replay.go) until iat +
// the window, so one client's proofs never fill what another needs. With Options.DPoPNonce,
// proofs must carry a nonce this server (any replica) provided (§8).
//
// The proof is looked at only after the client authenticated, so an unauthenticated caller
// spends no signature check and no replay entry. A request without the header is a bearer
// request and pays one map lookup of the header for all this.

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// DPoP error codes (RFC 9449 §5, §8).
const (
	errInvalidDPoPProof = "invalid_dpop_proof"
	errUseDPoPNonce     = "use_dpop_nonce"
)

// A request without a proof, from a client that asked for bound tokens only or for an audience
// that requires them, is invalid_request: RFC 9449 §5.2 (dpop_bound_access_tokens) says the
// server MUST reject such requests and defines no error code of its own for it.
var (
	errClientRequiresDPoP   = badRequest("this client gets DPoP-bound tokens only (spec.tokenBinding: DPoP): send a DPoP proof")
	errAudienceRequiresDPoP = badRequest("tokens for this audience must be DPoP-bound (its ScopePolicy sets tokenBinding: Required): send a DPoP proof")
)

var (
	errManyDPoPHeaders = &oauthError{status: http.StatusBadRequest, code: errInvalidDPoPProof, description: "more than one DPoP header"}
	errDPoPReplayed    = &oauthError{status: http.StatusBadRequest, code: errInvalidDPoPProof, description: "the DPoP proof was used before"}
	errDPoPNonce       = &oauthError{status: http.StatusBadRequest, code: errUseDPoPNonce, description: "the DPoP proof must carry the server nonce sent in DPoP-Nonce", dpopNonce: true}
)

// dpopHeader is the canonical form of the DPoP header's name.
const dpopHeader = "Dpop"

// hasProof reports whether the request carries a DPoP header (the bearer hot path's only cost).
func hasProof(r *http.Request) bool { return len(r.Header[dpopHeader]) > 0 }

// checkProof verifies the request's DPoP proof for client c and records its jti. It returns
// the proof's key thumbprint, or "" when the request has no proof.
func (s *Server) checkProof(r *http.Request, c *Client, now time.Time) (string, *oauthError) {
	values := r.Header[dpopHeader]
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errManyDPoPHeaders
	}
	chk := dpop.Check{Method: http.MethodPost, URL: s.tokenURL, Now: now, Window: s.opts.DPoPProofWindow}
	if s.opts.DPoPNonce {
		n := s.keys.Load().nonces
		if n == nil {
			return "", errNoSigningKey // no key to derive nonces from: nothing can be signed either
		}
		chk.Nonce = n.Valid
	}
	p, err := dpop.Verify(values[0], &chk)
	if err != nil {
		return "", proofRefusal(err)
	}
	switch ans, retryAfter := c.replay.rememberProof(s.replayLimits, p.ID, p.Expiry.Unix(), now.Unix()); ans {
	case replaySeen:
		return "", errDPoPReplayed
	case replayFull:
		return "", replayLimited(retryAfter)
	}
	return p.JKT, nil
}

// proofRefusal is the answer for a proof verify/dpop refused: use_dpop_nonce, or
// invalid_dpop_proof with the check that failed (dpop's messages are fixed strings, never
// request data).
func proofRefusal(err error) *oauthError {
	if errors.Is(err, dpop.ErrUseNonce) {
		return errDPoPNonce
	}
	return &oauthError{status: http.StatusBadRequest, code: errInvalidDPoPProof, description: strings.TrimPrefix(err.Error(), "dpop: ")}
}

// setNonce puts a fresh nonce in the response's DPoP-Nonce header (RFC 9449 §8.2), when the
// server requires nonces.
func (s *Server) setNonce(h http.Header, now time.Time) {
	if n := s.keys.Load().nonces; s.opts.DPoPNonce && n != nil {
		h["Dpop-Nonce"] = []string{n.Issue(now)}
	}
}
