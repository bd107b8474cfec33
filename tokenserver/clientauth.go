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

// Client authentication at both POST endpoints: which credentials the request presents
// (client_secret_basic, client_secret_post or an RFC 7523 client assertion, never two), and the
// method that checks them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// assertionTypeJWTBearer is the client_assertion_type of RFC 7523 §2.2.
const assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAuthHeader bounds the Authorization header the endpoints decode.
const maxAuthHeader = 1024

// strictBase64 is standard base64 with padding that also refuses non-zero trailing bits.
var strictBase64 = base64.StdEncoding.Strict()

// clientAuthField maps the client authentication parameters, which both endpoints accept:
// client_secret_post credentials (RFC 6749 §2.3.1) and a client assertion (RFC 7523 §2.2).
func (req *tokenRequest) clientAuthField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "client_id":
		return pClientID, &req.clientID
	case "client_secret":
		return pClientSecret, &req.clientSecret
	case "client_assertion_type":
		return pClientAssertionType, &req.clientAssertionType
	case "client_assertion":
		return pClientAssertion, &req.clientAssertion
	}
	return 0, nil
}

// parseClientAuth finds the client credentials: HTTP Basic (client_secret_basic, RFC 6749
// §2.3.1), client_id and client_secret in the body (client_secret_post), or a client assertion
// (RFC 7523 §2.2: private_key_jwt or a ServiceAccount token); never two of them.
func parseClientAuth(r *http.Request, st *reqState) *oauthError {
	req := &st.req
	values := r.Header["Authorization"]
	if len(values) > 1 {
		return errManyAuthHeaders
	}
	if req.seen&(pClientAssertionType|pClientAssertion) != 0 {
		return parseAssertionAuth(req, len(values) > 0)
	}
	if len(values) == 0 {
		req.id, req.secret = req.clientID, req.clientSecret
		return nil
	}
	req.basic = true
	if req.seen&pClientSecret != 0 {
		return errTwoAuthMethods
	}
	if err := parseBasic(values[0], st); err != nil {
		return err
	}
	if len(req.clientID) > 0 && !bytes.Equal(req.clientID, req.id) {
		return errClientIDMismatch
	}
	return nil
}

// parseBasic decodes "Basic base64(urlencode(id):urlencode(secret))". Any other scheme fails
// authentication (401); a Basic header that does not decode is a malformed request (400).
func parseBasic(h string, st *reqState) *oauthError {
	const scheme = "basic "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return errAuthFailed
	}
	token := strings.Trim(h[len(scheme):], " ")
	if len(token) == 0 || len(token) > maxAuthHeader {
		return errBadAuthHeader
	}
	st.auth = append(st.auth[:0], token...)
	n := base64.StdEncoding.DecodedLen(len(st.auth))
	if cap(st.authDec) < n {
		st.authDec = make([]byte, n)
	}
	dec := st.authDec[:n]
	n, err := strictBase64.Decode(dec, st.auth)
	if err != nil {
		return errBadAuthHeader
	}
	dec = dec[:n]
	colon := bytes.IndexByte(dec, ':')
	if colon < 0 {
		return errBadAuthHeader
	}
	id, ok1 := unescapeForm(dec[:colon])
	secret, ok2 := unescapeForm(dec[colon+1:])
	if !ok1 || !ok2 {
		return errBadAuthHeader
	}
	st.req.id, st.req.secret = id, secret
	return nil
}

// parseAssertionAuth checks the RFC 7523 §2.2 parameters: both present, the jwt-bearer type,
// and no other credentials beside them (client_id alone may accompany them).
func parseAssertionAuth(req *tokenRequest, basic bool) *oauthError {
	if basic || req.seen&pClientSecret != 0 {
		return errTwoAuthMethods
	}
	if len(req.clientAssertionType) == 0 || len(req.clientAssertion) == 0 {
		return errAssertionIncomplete
	}
	if string(req.clientAssertionType) != assertionTypeJWTBearer {
		return errAssertionType
	}
	req.id, req.assertion = req.clientID, req.clientAssertion
	return nil
}

// unknownClientHash is compared against when the client id is unknown, so that an unknown id
// costs the same hash and compare as a wrong secret.
var unknownClientHash = credential.HashSecret("unknown client")

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
