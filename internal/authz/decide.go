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

// Package authz is m2m authz, the decision service that gateways ask before they let a request
// through to an API: nginx auth_request, Traefik ForwardAuth and Caddy forward_auth over HTTP
// (http.go), Envoy and Istio ext_authz over gRPC (extauthz.go). It verifies the access token with
// the verify package (Bearer, or DPoP with its proof checked against the original request's
// method and URL; the issuer's revocation list when configured), finds the request's audience (a configured header, a host mapping, or the
// host itself), and applies the routes of the ScopePolicy holding that audience. Every decision
// is made from memory: the policies come from an informer (informers.go) and are compiled into a
// Table swapped atomically; verified tokens are cached by the verifier.
package authz

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// Identity headers set on an allowed request, for the API behind the gateway. A gateway must
// never pass a client's own x-m2m-* headers to the API: the configurations in docs/gateways
// overwrite or remove them.
const (
	HeaderClientID  = "X-M2m-Client-Id"
	HeaderNamespace = "X-M2m-Namespace"
	HeaderScopes    = "X-M2m-Scopes"
	// identityPrefix is the prefix of every header m2m authz owns (lower case).
	identityPrefix = "x-m2m-"
)

// Outcome is what a decision concluded; it is the decision label of the metrics.
type Outcome int

// Outcomes of a decision.
const (
	// Allow: a valid token holding every scope the matching route requires.
	Allow Outcome = iota
	// NoToken: no bearer token (401, a bare challenge, RFC 6750 §3.1).
	NoToken
	// InvalidToken: a malformed, expired, revoked, foreign or wrong-audience token, or a DPoP
	// proof that does not hold (401 invalid_token or invalid_dpop_proof).
	InvalidToken
	// InsufficientScope: the matching route requires scopes the token lacks (403).
	InsufficientScope
	// NoRoute: no route matches and the policy denies unmatched requests (403).
	NoRoute
	// UnknownAudience: no policy holds the request's audience (403).
	UnknownAudience
	// BadRequest: a request the routes cannot be applied to safely (a non-canonical path, two
	// Authorization headers); 401 invalid_request or 403.
	BadRequest
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allow", "no_token", "invalid_token", "insufficient_scope", "no_route", "unknown_audience", "bad_request"}

func (o Outcome) String() string { return outcomeNames[o] }

// Request is what the gateway tells about the original request.
type Request struct {
	Method string
	// URI is the request target (path and query).
	URI string
	// Host is the Host of the original request (a port is ignored for the audience, kept in
	// the URL a DPoP proof must name).
	Host string
	// Scheme is the original request's scheme, "http" or "https" ("" is taken as https): the
	// URL a DPoP proof names is Scheme://Host followed by the path of URI.
	Scheme string
	// Audience is the value of the configured audience header ("" when none).
	Audience string
	// Authorization holds every Authorization header value of the request.
	Authorization []string
	// DPoP holds every DPoP header value: the proof of a DPoP-bound token (RFC 9449 §7.1).
	DPoP []string
}

// proofURL is the URL the request's DPoP proof must name (its htu): scheme, host and path,
// the query dropped (RFC 9449 §4.3 compares without it).
func (r *Request) proofURL() string {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "https"
	}
	p := r.URI
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return scheme + "://" + r.Host + p
}

// Decision is the answer to one Request.
type Decision struct {
	Outcome Outcome
	// Status is the HTTP status to answer: 200, 401 or 403.
	Status int
	// Challenge is the WWW-Authenticate value of a denial (RFC 6750 §3; RFC 9449 §7.1 for a
	// request that used the DPoP scheme or an audience that requires it).
	Challenge string
	// Claims of the verified token (allowed requests only; shared, read-only).
	Claims *verify.Claims
}

// TokenVerifier verifies an access token for any audience of the issuer: the decision checks
// the audience itself. Verify takes a Bearer token (refusing DPoP-bound ones), VerifyDPoP a
// DPoP-bound token with its proof for the request's method and URL. *verify.Verifier built
// with verify.WithAnyAudience is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*verify.Claims, error)
	VerifyDPoP(ctx context.Context, token, proof, method, url string) (*verify.Claims, error)
}

// Decider makes the decisions. It is safe for concurrent use.
type Decider struct {
	verifier TokenVerifier
	hosts    map[string]string
	table    atomic.Pointer[Table]
	metrics  *metrics
}

// NewDecider returns a Decider with an empty table (every audience unknown until SetTable).
// hosts maps request hosts (lower case, no port) to audiences.
func NewDecider(v TokenVerifier, hosts map[string]string) *Decider {
	d := &Decider{verifier: v, hosts: hosts, metrics: newMetrics()}
	d.SetTable(&Table{})
	return d
}

// SetTable puts a compiled table in force for every decision that starts after it.
func (d *Decider) SetTable(t *Table) {
	d.metrics.attach(t, d.table.Load())
	d.table.Store(t)
}

// Decide answers one request.
func (d *Decider) Decide(ctx context.Context, req *Request) Decision {
	start := time.Now()
	t := d.table.Load()
	ar := d.audienceFor(t, req)
	dec := decide(ctx, d.verifier, ar, req)
	d.metrics.observe(ar, dec.Outcome, time.Since(start))
	return dec
}

func decide(ctx context.Context, v TokenVerifier, ar *audienceRoutes, req *Request) Decision {
	if ar == nil {
		return deny(UnknownAudience, 403, bearer, "", "error_description", "no API is known at this address")
	}
	claims, scheme, dec, ok := authenticate(ctx, v, ar, req)
	if !ok {
		return dec
	}
	if !hasAudience(claims, ar.audience) {
		return deny(InvalidToken, 401, scheme, ar.audience, "error", "invalid_token", "error_description", verify.Describe(verify.ErrAudience))
	}
	p, ok := canonicalPath(req.URI)
	if !ok {
		return deny(BadRequest, 403, scheme, ar.audience, "error_description", "the request path is not canonical")
	}
	scopes, matched := ar.match(strings.ToUpper(req.Method), p)
	if !matched {
		if ar.allowOthers {
			return Decision{Outcome: Allow, Status: 200, Claims: claims}
		}
		return deny(NoRoute, 403, scheme, ar.audience, "error", "insufficient_scope", "error_description", "no route of the API's policy allows this request")
	}
	if !claims.HasAllScopes(scopes...) {
		return deny(InsufficientScope, 403, scheme, ar.audience, "error", "insufficient_scope", "scope", strings.Join(scopes, " "))
	}
	return Decision{Outcome: Allow, Status: 200, Claims: claims}
}

// Schemes of the Authorization header, for the challenges.
const (
	bearer = "Bearer"
	dpopS  = dpop.Scheme
)

// authenticate verifies the request's credentials: "Bearer <token>", or "DPoP <token>" with
// its proof (RFC 9449 §7.1). scheme is the one the denials of the request must use.
func authenticate(ctx context.Context, v TokenVerifier, ar *audienceRoutes, req *Request) (c *verify.Claims, scheme string, dec Decision, ok bool) {
	// An audience whose policy requires bound tokens is challenged with DPoP only.
	scheme = bearer
	if ar.bindingRequired {
		scheme = dpopS
	}
	if len(req.Authorization) == 0 {
		return nil, scheme, deny(NoToken, 401, scheme, ar.audience), false
	}
	// Two Authorization headers would let the gateway and the API read different credentials.
	// 401, not 400: nginx's auth_request turns any status but 2xx, 401 and 403 into a 500.
	if len(req.Authorization) > 1 {
		return nil, scheme, deny(BadRequest, 401, scheme, ar.audience, "error", "invalid_request", "error_description", "multiple Authorization headers"), false
	}
	// Bearer first: it is the hot path, and a DPoP header is only looked at for the DPoP scheme.
	token, ok := verify.BearerToken(req.Authorization[0])
	if !ok {
		if token, isDPoP := verify.DPoPToken(req.Authorization[0]); isDPoP {
			c, dec, ok := authenticateDPoP(ctx, v, ar, req, token)
			return c, dpopS, dec, ok
		}
		return nil, scheme, deny(NoToken, 401, scheme, ar.audience), false
	}
	if ar.bindingRequired {
		return nil, scheme, deny(InvalidToken, 401, scheme, ar.audience, "error", "invalid_token", "error_description", "this API accepts DPoP-bound access tokens only"), false
	}
	c, err := v.Verify(ctx, token)
	if err != nil {
		return nil, scheme, deny(InvalidToken, 401, scheme, ar.audience, "error", "invalid_token", "error_description", verify.Describe(err)), false
	}
	return c, scheme, Decision{}, true
}

// authenticateDPoP verifies a DPoP-bound token and its one proof against the original
// request's method and URL, as the gateway reported them.
func authenticateDPoP(ctx context.Context, v TokenVerifier, ar *audienceRoutes, req *Request, token string) (*verify.Claims, Decision, bool) {
	if token == "" {
		return nil, deny(BadRequest, 401, dpopS, ar.audience, "error", "invalid_request", "error_description", "malformed DPoP credentials"), false
	}
	if len(req.DPoP) != 1 {
		return nil, deny(InvalidToken, 401, dpopS, ar.audience, "error", "invalid_dpop_proof", "error_description", "exactly one DPoP proof header is required"), false
	}
	c, err := v.VerifyDPoP(ctx, token, req.DPoP[0], req.Method, req.proofURL())
	if err != nil {
		code := "invalid_token"
		switch {
		case errors.Is(err, verify.ErrDPoPNonce):
			code = "use_dpop_nonce"
		case errors.Is(err, verify.ErrDPoPProof):
			code = "invalid_dpop_proof"
		}
		return nil, deny(InvalidToken, 401, dpopS, ar.audience, "error", code, "error_description", verify.Describe(err)), false
	}
	return c, Decision{}, true
}

func hasAudience(c *verify.Claims, aud string) bool {
	for _, a := range c.Audience {
		if a == aud {
			return true
		}
	}
	return false
}

// audienceFor finds the request's audience: the configured header when the gateway set it,
// else the host mapping, else a policy whose audience is the host itself (billing.example.com
// or https://billing.example.com).
func (d *Decider) audienceFor(t *Table, req *Request) *audienceRoutes {
	if req.Audience != "" {
		return t.lookup(req.Audience)
	}
	host := hostOnly(req.Host)
	if host == "" {
		return nil
	}
	if aud, ok := d.hosts[host]; ok {
		return t.lookup(aud)
	}
	if ar := t.lookup(host); ar != nil {
		return ar
	}
	return t.lookup("https://" + host)
}

// hostOnly lower-cases a Host value and drops its port.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// deny builds a denial whose challenge (scheme Bearer or DPoP) carries the realm (the
// audience, when known) and the given auth-params, as name, value pairs.
func deny(o Outcome, status int, scheme, realm string, kv ...string) Decision {
	return Decision{Outcome: o, Status: status, Challenge: verify.Challenge(scheme, realm, kv...)}
}
