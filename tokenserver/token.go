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

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
	"time"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

const (
	grantClientCredentials = "client_credentials"
	// maxScopes bounds the scope tokens of one request.
	maxScopes = 64
)

// unknownClientHash is compared against when the client id is unknown, so that an unknown id
// costs the same hash and compare as a wrong secret.
var unknownClientHash = credential.HashSecret("unknown client")

// handleToken serves POST /oauth2/token: RFC 6749 §4.4, client credentials.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer s.observe(start)
	s.admit(w, r, errMethodNotAllowed, (*Server).serveToken)
}

// tokenField maps the token endpoint's own parameters (RFC 6749 §4.4.2, RFC 8707 §2).
func (req *tokenRequest) tokenField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "grant_type":
		return pGrantType, &req.grantType
	case "scope":
		return pScope, &req.scope
	case "resource":
		return pResource, &req.resource
	case "audience":
		return pAudience, &req.audience
	}
	return 0, nil
}

// serveToken is the token request: parse, authenticate, authorise, sign, answer.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *reqState) *oauthError {
	ks := s.keys.Load()
	if ks.active == nil {
		return errNoSigningKey
	}
	if err := parseTokenRequest(r, st); err != nil {
		return err
	}
	req := &st.req
	if len(req.grantType) == 0 {
		return errMissingGrantType
	}
	if string(req.grantType) != grantClientCredentials {
		return errUnsupportedGrant
	}
	now := s.opts.Clock()
	c, err := s.authenticate(r.Context(), req, now)
	if err != nil {
		return err
	}
	if c.disabled {
		return errDisabled
	}
	if err := allowIssue(c); err != nil {
		return err
	}
	aud, scope, err := c.authorize(req, st)
	if err != nil {
		return err
	}
	return s.writeToken(w, st, ks.active, c, aud, scope, now)
}

// authenticate checks the client's credentials: a client assertion (see authenticateAssertion),
// or client_secret_basic or client_secret_post credentials: the SHA-256 of the presented secret
// is compared in constant time with every accepted, unexpired hash.
func (s *Server) authenticate(ctx context.Context, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	if len(req.assertion) > 0 {
		return s.authenticateAssertion(ctx, req, now)
	}
	if len(req.id) == 0 {
		return nil, errAuthFailed
	}
	presented := sha256.Sum256(req.secret)
	c := s.index.lookup(req.id)
	if c == nil {
		subtle.ConstantTimeCompare(presented[:], unknownClientHash[:])
		return nil, s.authFailed(string(req.id))
	}
	match := 0
	for i := range c.secrets {
		a := &c.secrets[i]
		eq := subtle.ConstantTimeCompare(presented[:], a.hash[:])
		if a.notAfter.IsZero() || now.Before(a.notAfter) {
			match |= eq
		}
	}
	if match != 1 || len(req.secret) == 0 || c.method != string(authv1alpha1.AuthClientSecret) {
		return nil, s.authFailed(c.id)
	}
	return c, nil
}

// authenticateAssertion authenticates an RFC 7523 client assertion: a ServiceAccount token
// confirmed within the last minute is answered from the cache by its hash; any other assertion
// is parsed and goes to the ServiceAccount method when its sub is a ServiceAccount, else to
// private_key_jwt. Every failure is the same invalid_client; the reason is logged and counted.
func (s *Server) authenticateAssertion(ctx context.Context, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	h := hashAssertion(req.assertion)
	if c := s.cachedServiceAccount(req, &h, now); c != nil {
		return c, nil
	}
	a, err := parseAssertion(req.assertion)
	if err != nil {
		return nil, s.refuseAssertion(refusedMalformed, string(req.id), nil)
	}
	if isServiceAccountSubject(a.sub) {
		return s.authenticateServiceAccount(ctx, req, &h, a, now)
	}
	return s.authenticatePrivateKeyJWT(req, a, now)
}

// authFailed answers a failed authentication of the presented id (client id, or the sub of a
// ServiceAccount token): 401, or 429 once the failure budget of that id's slot in the failure
// table is spent. Known and unknown ids go through the same table, so the answer never says
// which an id is.
func (s *Server) authFailed(presented string) *oauthError {
	if s.failures.limiter(presented).Allow() {
		return errAuthFailed
	}
	return errAuthFailuresExceed
}

// allowIssue applies the client's issuance rate limit. Limiters run on the monotonic wall
// clock, not Options.Clock (which only dates tokens and secret expiry).
func allowIssue(c *Client) *oauthError {
	now := time.Now()
	if c.issue.AllowN(now, 1) {
		return nil
	}
	res := c.issue.ReserveN(now, 1)
	if !res.OK() {
		return rateLimited(1)
	}
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return rateLimited(int(math.Max(1, math.Ceil(d.Seconds()))))
}

// authorize picks the audience and the scopes: the named target (resource or audience), else
// the client's only audience, else the only audience granting every requested scope.
func (c *Client) authorize(req *tokenRequest, st *reqState) (*audience, []byte, *oauthError) {
	if !validScope(req.scope) {
		return nil, nil, errScopeMalformed
	}
	aud, err := c.resolveAudience(req)
	if err != nil {
		return nil, nil, err
	}
	if len(req.scope) == 0 {
		if aud.allScopes == "" {
			return nil, nil, errScopeEmpty
		}
		st.scope = append(st.scope[:0], aud.allScopes...)
		return aud, st.scope, nil
	}
	if !aud.holdsAll(req.scope) {
		return nil, nil, errScopeNotGranted
	}
	return aud, dedupeScopes(req.scope, st), nil
}

func (c *Client) resolveAudience(req *tokenRequest) (*audience, *oauthError) {
	target := req.resource
	if len(req.audience) > 0 {
		if len(target) > 0 && !bytes.Equal(target, req.audience) {
			return nil, errResourceAudience
		}
		target = req.audience
	}
	if len(target) > 0 {
		if a := c.grant(target); a != nil {
			return a, nil
		}
		return nil, errTargetUnknown
	}
	switch len(c.audiences) {
	case 0:
		return nil, errNothingGranted
	case 1:
		return c.audiences[0], nil
	}
	if len(req.scope) == 0 {
		return nil, errTargetAmbiguous
	}
	var found *audience
	for _, a := range c.audiences {
		if !a.holdsAll(req.scope) {
			continue
		}
		if found != nil {
			return nil, errTargetAmbiguous
		}
		found = a
	}
	if found == nil {
		return nil, errTargetUnknown
	}
	return found, nil
}

// validScope checks an RFC 6749 §3.3 scope: scope-tokens separated by single spaces (an empty
// scope is absent, which is valid).
func validScope(scope []byte) bool {
	if len(scope) == 0 {
		return true
	}
	start, n := 0, 0
	for i := 0; i <= len(scope); i++ {
		if i < len(scope) && scope[i] != ' ' {
			continue
		}
		if n++; n > maxScopes || !validScopeToken(scope[start:i]) {
			return false
		}
		start = i + 1
	}
	return true
}

var spaceSep = []byte{' '}

// holdsAll reports whether the audience grants every scope-token of a valid scope.
func (a *audience) holdsAll(scope []byte) bool {
	for rest := scope; len(rest) > 0; {
		tok, tail, _ := bytes.Cut(rest, spaceSep)
		if _, ok := a.scopes[string(tok)]; !ok {
			return false
		}
		rest = tail
	}
	return true
}

// dedupeScopes returns the requested scope with repeated tokens dropped (order kept).
func dedupeScopes(scope []byte, st *reqState) []byte {
	out := st.scope[:0]
	for rest := scope; len(rest) > 0; {
		tok, tail, _ := bytes.Cut(rest, spaceSep)
		rest = tail
		if containsToken(out, tok) {
			continue
		}
		if len(out) > 0 {
			out = append(out, ' ')
		}
		out = append(out, tok...)
	}
	st.scope = out
	return out
}

func containsToken(list, tok []byte) bool {
	for rest := list; len(rest) > 0; {
		t, tail, _ := bytes.Cut(rest, spaceSep)
		if bytes.Equal(t, tok) {
			return true
		}
		rest = tail
	}
	return false
}

// ttl is min(client TTL or the default, the audience's cap, the server maximum).
func (s *Server) ttl(c *Client, a *audience) time.Duration {
	ttl := c.tokenTTL
	if ttl <= 0 {
		ttl = s.opts.DefaultTokenTTL
	}
	if a.maxTTL > 0 && ttl > a.maxTTL {
		ttl = a.maxTTL
	}
	if ttl > s.opts.MaxTokenTTL {
		ttl = s.opts.MaxTokenTTL
	}
	return ttl.Truncate(time.Second)
}

// writeToken signs an RFC 9068 access token and writes the RFC 6749 §5.1 response. The payload
// and the response are built by hand into pooled buffers: one signature, one write.
func (s *Server) writeToken(w http.ResponseWriter, st *reqState, sig *signer, c *Client, aud *audience, scope []byte, now time.Time) *oauthError {
	ttl := s.ttl(c, aud)
	iat := now.Unix()
	exp := iat + int64(ttl/time.Second)
	_, _ = rand.Read(st.rnd[:])
	jti := base64.RawURLEncoding.AppendEncode(st.jti[:0], st.rnd[:])

	p := append(st.payload[:0], c.prefix...)
	p = append(p, aud.claim...)
	p = strconv.AppendInt(append(p, `,"exp":`...), exp, 10)
	p = strconv.AppendInt(append(p, `,"iat":`...), iat, 10)
	p = strconv.AppendInt(append(p, `,"nbf":`...), iat, 10)
	p = append(append(append(p, `,"jti":"`...), jti...), '"')
	p = append(append(append(p, `,"scope":"`...), scope...), `"}`...)
	st.payload = p

	out := append(st.out[:0], `{"access_token":"`...)
	tokenStart := len(out)
	out = append(out, sig.header...)
	out = base64.RawURLEncoding.AppendEncode(out, p)
	signature, err := sig.sign(st.sig[:0], out[tokenStart:])
	if err != nil {
		s.log.Error(err, "signing a token failed", "kid", sig.kid)
		return errSigningFailed
	}
	st.sig = signature
	out = base64.RawURLEncoding.AppendEncode(append(out, '.'), signature)
	out = append(out, `","token_type":"Bearer","expires_in":`...)
	out = strconv.AppendInt(out, int64(ttl/time.Second), 10)
	out = append(append(append(out, `,"scope":"`...), scope...), `"}`...)
	st.out = out

	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
	_, _ = w.Write(out)
	if aud.issued != nil {
		aud.issued.Inc()
	}
	st.audit = s.audit.issued(st.audit, now, c, aud, scope, jti, exp)
	return nil
}
