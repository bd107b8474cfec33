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

// Access-token minting (RFC 9068): the client's issuance rate limit, the token's lifetime, its
// claims and the rules for them, the signature and the RFC 6749 §5.1 response.
//
// Claims: iss, sub and client_id (the client id) and namespace, then the record's custom
// claims (claimsPrefix, compiled once per record), aud, exp, iat, nbf, jti and scope. A custom
// claim never replaces or shadows a reserved one (authv1alpha1.IsReservedClaim, compared after
// Unicode case folding), and two custom claims that fold alike are both dropped.

import (
	"crypto/rand"
	"encoding/base64"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

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
	iat := issuedAt(now, aud)
	exp := iat + int64(ttl/time.Second)
	_, _ = rand.Read(st.rnd[:])
	jti := base64.RawURLEncoding.AppendEncode(st.jti[:0], st.rnd[:])

	p := append(st.payload[:0], c.prefix...)
	p = append(p, aud.claim...)
	p = strconv.AppendInt(append(p, `,"exp":`...), exp, 10)
	p = strconv.AppendInt(append(p, `,"iat":`...), iat, 10)
	p = strconv.AppendInt(append(p, `,"nbf":`...), iat, 10)
	p = append(append(append(p, `,"jti":"`...), jti...), '"')
	p = append(append(append(p, `,"scope":"`...), scope...), '"')
	if st.jkt != "" {
		p = append(append(append(p, `,"cnf":{"jkt":"`...), st.jkt...), `"}`...)
	}
	p = append(p, '}')
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
	if st.jkt != "" {
		out = append(out, `","token_type":"DPoP","expires_in":`...)
		s.setNonce(w.Header(), now)
	} else {
		out = append(out, `","token_type":"Bearer","expires_in":`...)
	}
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
	st.audit = s.audit.issued(st.audit, now, st.remote, c, aud, scope, jti, exp)
	return nil
}

// claimsPrefix builds `{"iss":…,"sub":…,"client_id":…,"namespace":…` followed by the record's
// extra claims in name order. A reserved name (authv1alpha1.IsReservedClaim: compared after
// Unicode case folding, so "Sub" never follows "sub") is dropped, and so is every name that
// folds equal to another: no token holds two member names a case-insensitive JSON decoder
// would confuse. The CRD refuses both; this guards records written otherwise.
func claimsPrefix(issuer string, rec *credential.Record) []byte {
	b := appendJSONString([]byte(`{"iss":`), issuer)
	b = appendJSONString(append(b, `,"sub":`...), rec.ClientID)
	b = appendJSONString(append(b, `,"client_id":`...), rec.ClientID)
	b = appendJSONString(append(b, `,"namespace":`...), rec.Namespace)
	for _, k := range extraClaimNames(rec.Claims) {
		b = appendJSONString(append(b, ','), k)
		b = appendJSONString(append(b, ':'), rec.Claims[k])
	}
	return b
}

// extraClaimNames returns the claim names a token may carry, sorted: neither reserved nor
// folding equal to another name.
func extraClaimNames(claims map[string]string) []string {
	folds := make(map[string]int, len(claims))
	for k := range claims {
		folds[authv1alpha1.FoldClaimName(k)]++
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		if k != "" && !authv1alpha1.IsReservedClaim(k) && folds[authv1alpha1.FoldClaimName(k)] == 1 {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}
