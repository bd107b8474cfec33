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
	"crypto/rand"
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
	"time"
)

// handleToken serves POST /oauth2/token (RFC 6749 §3.2) for the grants of grants.go.
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

// serveToken is the token request: the form and the client's credentials parsed, then the
// grant named by grant_type serves it (grants.go).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *reqState) *oauthError {
	ks := s.keys.Load()
	if ks.active == nil {
		return errNoSigningKey
	}
	if err := parseTokenRequest(r, st); err != nil {
		return err
	}
	if len(st.req.grantType) == 0 {
		return errMissingGrantType
	}
	g := grantFor(st.req.grantType)
	if g == nil {
		return errUnsupportedGrant
	}
	return g.issue(s, w, r, st, ks.active)
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
