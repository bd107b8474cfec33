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
	"encoding/base64"
	"net/http"
	"strings"
	"time"

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

// clientAuthMethod is one way a client proves who it is at the token and introspection
// endpoints. Each lives in a file of its own (auth_*.go); adding one is that file and one entry
// in clientAuthMethods.
type clientAuthMethod interface {
	// record is the method of the credential records whose clients authenticate this way
	// (credential.Method*). A client authenticates only by the method of its own record.
	record() string
	// advertised are the method's names in the metadata's token_endpoint_auth_methods_supported
	// and introspection_endpoint_auth_methods_supported (RFC 8414 §2); none when another
	// method's name already covers it.
	advertised() []string
	// compile prepares what authenticate needs from the client's record.
	compile(c *Client, rec *credential.Record) error
	// presented reports whether the request's credentials (parseClientAuth; a client assertion
	// is parsed into req.jwt first) are this method's.
	presented(req *tokenRequest) bool
	// authenticate checks the presented credentials and returns the client they prove, or the
	// refusal. Every refusal of a client's credentials is the same invalid_client (authFailed,
	// refuseAssertion): nothing tells the caller which check failed.
	authenticate(ctx context.Context, s *Server, req *tokenRequest, now time.Time) (*Client, *oauthError)
}

// cachingAuthMethod is a method that may answer a client assertion from a cache of its own,
// by the assertion's hash, before the assertion is parsed.
type cachingAuthMethod interface {
	cached(s *Server, req *tokenRequest, now time.Time) *Client
}

// clientAuthMethods are the client authentication methods, in the order they are asked whether
// a request's credentials are theirs: the first that says so authenticates the request.
// privateKeyJWT comes last, as it takes every client assertion no method before it claims.
var clientAuthMethods = [...]clientAuthMethod{
	clientSecret{},
	serviceAccountToken{},
	privateKeyJWT{},
}

// authMethodFor returns the method of a record's Method ("" is ClientSecret), or nil for a
// method this server does not know (credential.Record.Validate refuses those).
func authMethodFor(record string) clientAuthMethod {
	if record == "" {
		record = credential.MethodClientSecret
	}
	for _, m := range clientAuthMethods {
		if m.record() == record {
			return m
		}
	}
	return nil
}

// advertisedAuthMethods are the names of every method, for the metadata.
func advertisedAuthMethods() []string {
	var names []string
	for _, m := range clientAuthMethods {
		names = append(names, m.advertised()...)
	}
	return names
}

// authenticate checks the client's credentials with the method they belong to. A client
// assertion is first answered from a method's cache or parsed (prepareAssertion).
func (s *Server) authenticate(ctx context.Context, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	if len(req.assertion) > 0 {
		if c, err := s.prepareAssertion(req, now); c != nil || err != nil {
			return c, err
		}
	}
	for _, m := range clientAuthMethods {
		if m.presented(req) {
			return m.authenticate(ctx, s, req, now)
		}
	}
	return nil, errAuthFailed // unreachable: clientSecret takes every request without an assertion
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
