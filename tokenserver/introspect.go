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

// Token introspection (RFC 7662).
//
// Choices where the RFC leaves room:
//   - The caller authenticates exactly as at the token endpoint (client_secret_basic or
//     client_secret_post), with the same parsing, the same 401 and the same failure slow-down.
//     A disabled caller that authenticates correctly gets 400 unauthorized_client, as there.
//   - A token is active only if it passes the verify package's validation (the very code
//     resource servers run) against the keys this server publishes (next, active and retired),
//     with any audience; and its client still exists, is not disabled, has not revoked it (its
//     iat is not before the client's or the audience's not-before time, revocation.go), still
//     holds a grant for the token's audience with every scope of the token (so revoking a
//     client, a grant or a scope takes effect at introspection at once; resource servers that
//     validate locally follow through the revocation list); and the caller is the token's own client or a
//     client in the namespace of the ScopePolicy that owns the token's audience.
//   - An absent token parameter is invalid_request; one sent without a value is a token that is
//     not active (the one exception to treating empty parameters as absent: the empty string
//     is simply not a token).
//   - Every other answer is exactly {"active":false}: nothing says why, so introspection is no
//     oracle for what a token holds or for which clients exist.
//   - Introspection does not draw on the caller's issuance rate limit (a resource server that
//     introspects much must still get its own tokens); the in-flight cap applies.

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

var (
	errIntrospectMethod = &oauthError{status: http.StatusMethodNotAllowed, code: errInvalidRequest, description: "the introspection endpoint accepts only POST"}
	errMissingToken     = badRequest("token is required")
)

// inactiveBody is the whole answer for a token that is not active for the caller.
var inactiveBody = []byte(`{"active":false}`)

// publishedKeys is the verify.KeySource of the introspection verifier: whatever key set the
// server publishes at the moment of the call, so rotations are followed without rebuilding.
type publishedKeys struct{ keys *atomic.Pointer[keySet] }

// Key implements verify.KeySource.
func (p publishedKeys) Key(kid string) (*jose.JSONWebKey, bool) { return p.keys.Load().Key(kid) }

// newIntrospectionVerifier builds the one verifier introspection uses: the issuer's, any
// audience, the server's clock.
func (s *Server) newIntrospectionVerifier() (*verify.Verifier, error) {
	return verify.NewWithKeySource(s.opts.Issuer, "", publishedKeys{&s.keys},
		verify.WithAnyAudience(), verify.WithClock(s.opts.Clock), verify.WithBoundTokensUnchecked())
}

// introspection is the RFC 7662 §2.2 answer for an active token.
type introspection struct {
	Active    bool   `json:"active"`
	ClientID  string `json:"client_id"`
	Sub       string `json:"sub"`
	Aud       any    `json:"aud"`
	Iss       string `json:"iss"`
	Exp       int64  `json:"exp"`
	Iat       int64  `json:"iat"`
	Nbf       int64  `json:"nbf,omitempty"`
	JTI       string `json:"jti"`
	Scope     string `json:"scope"`
	TokenType string `json:"token_type"`
	Namespace string `json:"namespace"`
	// Cnf is the key a DPoP-bound token is bound to (RFC 9449 §6.2).
	Cnf *confirmation `json:"cnf,omitempty"`
}

// confirmation is the "cnf" member of a bound token's answer.
type confirmation struct {
	JKT string `json:"jkt"`
}

// handleIntrospect serves POST /oauth2/introspect.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	s.admit(w, r, errIntrospectMethod, false, (*Server).serveIntrospect)
}

// introspectionField maps the introspection endpoint's own parameters: the token and its hint
// (RFC 7662 §2.1).
func (req *tokenRequest) introspectionField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "token":
		return pToken, &req.token
	case "token_type_hint":
		return pTokenTypeHint, &req.tokenTypeHint
	}
	return 0, nil
}

// serveIntrospect parses and authenticates the request, then answers for the token.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request, st *reqState) *oauthError {
	st.req.introspect = true
	if err := parseTokenRequest(r, st); err != nil {
		return err
	}
	req := &st.req
	if req.seen&pToken == 0 {
		return errMissingToken
	}
	caller, err := s.authenticate(r.Context(), req, s.opts.Clock())
	if err != nil {
		return err
	}
	if caller.disabled {
		return errDisabled
	}
	body := inactiveBody
	if ans := s.introspect(r, caller, string(req.token)); ans != nil {
		if b, err := json.Marshal(ans); err == nil {
			body = b
		}
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
	_, _ = w.Write(body)
	return nil
}

// introspect returns the answer for an active token, or nil when the token is not active for
// this caller.
func (s *Server) introspect(r *http.Request, caller *Client, token string) *introspection {
	c, err := s.verifier.Verify(r.Context(), token)
	if err != nil || len(c.Audience) != 1 {
		return nil
	}
	owner := s.index.lookup([]byte(c.ClientID))
	if owner == nil || owner.disabled || c.Subject != c.ClientID || owner.revokes(c.Audience[0], c.IssuedAt.Unix()) {
		return nil
	}
	aud := owner.grant([]byte(c.Audience[0]))
	if aud == nil || !aud.holdsEach(c.Scopes) || !mayIntrospect(caller, owner, aud) {
		return nil
	}
	return answerFor(c)
}

// mayIntrospect: the token's own client, or a client in the namespace of the ScopePolicy that
// owns the token's audience.
func mayIntrospect(caller, owner *Client, aud *audience) bool {
	if caller.id == owner.id {
		return true
	}
	return aud.policyNamespace != "" && caller.namespace == aud.policyNamespace
}

func answerFor(c *verify.Claims) *introspection {
	ans := &introspection{
		Active:    true,
		ClientID:  c.ClientID,
		Sub:       c.Subject,
		Aud:       c.Audience[0],
		Iss:       c.Issuer,
		Exp:       c.Expiry.Unix(),
		Iat:       c.IssuedAt.Unix(),
		JTI:       c.JTI,
		Scope:     strings.Join(c.Scopes, " "),
		TokenType: "Bearer",
		Namespace: c.Namespace,
	}
	if !c.NotBefore.IsZero() {
		ans.Nbf = c.NotBefore.Unix()
	}
	if c.JKT != "" {
		ans.TokenType = dpop.TokenType
		ans.Cnf = &confirmation{JKT: c.JKT}
	}
	return ans
}
