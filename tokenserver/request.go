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
	"encoding/base64"
	"io"
	"net/http"
	"strings"
)

// Bits of the parameters the token endpoint understands (others are ignored, RFC 6749 §3.2).
const (
	pGrantType uint16 = 1 << iota
	pScope
	pClientID
	pClientSecret
	pResource
	pAudience
	pToken
	pTokenTypeHint
	pClientAssertionType
	pClientAssertion
)

// assertionTypeJWTBearer is the client_assertion_type of RFC 7523 §2.2.
const assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	// maxParams bounds the work spent on one form body.
	maxParams = 64
	// maxAuthHeader bounds the Authorization header this endpoint decodes.
	maxAuthHeader = 1024
)

// strictBase64 is standard base64 with padding that also refuses non-zero trailing bits.
var strictBase64 = base64.StdEncoding.Strict()

// tokenRequest is a parsed token request. Every slice points into the request's pooled buffers
// and is valid only while the request is served. An empty value means the parameter was absent
// or sent without a value, which RFC 6749 §3.1 treats alike.
type tokenRequest struct {
	seen         uint16
	grantType    []byte
	scope        []byte
	clientID     []byte
	clientSecret []byte
	resource     []byte
	audience     []byte
	// token and tokenTypeHint are the introspection parameters (RFC 7662 §2.1).
	token         []byte
	tokenTypeHint []byte
	// clientAssertionType and clientAssertion are RFC 7523 §2.2 client authentication.
	clientAssertionType []byte
	clientAssertion     []byte

	// introspect selects the parameters of the introspection endpoint instead of the token
	// endpoint's.
	introspect bool

	// basic reports that the client used HTTP Basic (client_secret_basic).
	basic bool
	// id and secret are the credentials of whichever method the client used; with a client
	// assertion, id is the optional client_id and assertion the JWT.
	id, secret []byte
	assertion  []byte
}

// reqState holds the buffers one request reuses from a pool.
type reqState struct {
	body    []byte
	auth    []byte
	authDec []byte
	out     []byte
	payload []byte
	scope   []byte
	sig     []byte
	audit   []byte
	rnd     [16]byte
	jti     [32]byte
	req     tokenRequest
}

func (st *reqState) reset() {
	st.body, st.auth, st.authDec = st.body[:0], st.auth[:0], st.authDec[:0]
	st.out, st.payload, st.scope, st.sig = st.out[:0], st.payload[:0], st.scope[:0], st.sig[:0]
	st.req = tokenRequest{}
}

// parseTokenRequest parses the form body (already read into st.body by receiveForm) and the
// client credentials.
func parseTokenRequest(r *http.Request, st *reqState) *oauthError {
	if err := parseForm(st.body, &st.req); err != nil {
		return err
	}
	return parseClientAuth(r, st)
}

// isFormContentType accepts exactly one Content-Type of application/x-www-form-urlencoded, with
// optional parameters (such as charset).
func isFormContentType(v []string) bool {
	if len(v) != 1 {
		return false
	}
	ct := v[0]
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}

// readBody reads the whole body into st.body, refusing more than maxBody bytes with 413. The
// buffer grows with the bytes that arrive, never to the size the client merely claims in
// Content-Length: a claim costs nothing until the bytes are sent. A body that fails to arrive
// (deadline, cut connection, short of its Content-Length) is a 400.
func readBody(r *http.Request, st *reqState, maxBody int64) *oauthError {
	if r.ContentLength > maxBody {
		return errBodyTooLarge
	}
	buf := st.body[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > maxBody {
			st.body = buf[:0]
			return errBodyTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			st.body = buf[:0]
			if _, ok := err.(*http.MaxBytesError); ok {
				return errBodyTooLarge
			}
			return errReadBody
		}
	}
	st.body = buf
	return nil
}

// parseForm parses an application/x-www-form-urlencoded body in place.
func parseForm(body []byte, req *tokenRequest) *oauthError {
	for params := 0; len(body) > 0; {
		var seg []byte
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			seg, body = body[:i], body[i+1:]
		} else {
			seg, body = body, nil
		}
		if len(seg) == 0 {
			continue
		}
		if params++; params > maxParams {
			return errTooManyParams
		}
		if err := req.setParam(seg); err != nil {
			return err
		}
	}
	return nil
}

// setParam decodes one name=value pair and stores it when the name is one this endpoint uses.
func (req *tokenRequest) setParam(seg []byte) *oauthError {
	name, value := seg, seg[:0]
	if i := bytes.IndexByte(seg, '='); i >= 0 {
		name, value = seg[:i], seg[i+1:]
	}
	name, ok := unescapeForm(name)
	if !ok {
		return errBadEncoding
	}
	value, ok = unescapeForm(value)
	if !ok {
		return errBadEncoding
	}
	bit, dst := req.field(name)
	if bit == 0 {
		return nil
	}
	if req.seen&bit != 0 {
		if bit == pResource {
			return errManyResources
		}
		return errDuplicateParam
	}
	req.seen |= bit
	*dst = value
	return nil
}

func (req *tokenRequest) field(name []byte) (uint16, *[]byte) {
	if req.introspect {
		return req.introspectionField(name)
	}
	switch string(name) {
	case "grant_type":
		return pGrantType, &req.grantType
	case "scope":
		return pScope, &req.scope
	case "client_id":
		return pClientID, &req.clientID
	case "client_secret":
		return pClientSecret, &req.clientSecret
	case "resource":
		return pResource, &req.resource
	case "audience":
		return pAudience, &req.audience
	}
	return req.assertionField(name)
}

// assertionField maps the RFC 7523 client authentication parameters, which both endpoints
// accept.
func (req *tokenRequest) assertionField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "client_assertion_type":
		return pClientAssertionType, &req.clientAssertionType
	case "client_assertion":
		return pClientAssertion, &req.clientAssertion
	}
	return 0, nil
}

// introspectionField maps the parameters of the introspection endpoint: the token, its hint
// and client_secret_post credentials.
func (req *tokenRequest) introspectionField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "token":
		return pToken, &req.token
	case "token_type_hint":
		return pTokenTypeHint, &req.tokenTypeHint
	case "client_id":
		return pClientID, &req.clientID
	case "client_secret":
		return pClientSecret, &req.clientSecret
	}
	return req.assertionField(name)
}

// unescapeForm decodes application/x-www-form-urlencoded in place: '+' is a space and %XX a
// byte. A malformed escape is an error.
func unescapeForm(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return b, true
	}
	out := b[:0]
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 >= len(b) {
				return nil, false
			}
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if !ok1 || !ok2 {
				return nil, false
			}
			out = append(out, hi<<4|lo)
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
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
