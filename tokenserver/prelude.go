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

// The HTTP prelude both POST endpoints (token, introspection) share: the method, the content
// type, the body read under its size limit and deadline, a pooled request state, the form
// parsed in place, the global in-flight slot, and the RFC 6749 §5.2 answer for whatever the
// endpoint refuses. The endpoints themselves (token.go, introspect.go) start from a read body.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

const (
	// maxParams bounds the work spent on one form body.
	maxParams = 64
	// maxExtraParams bounds the parameters kept beyond those the endpoints map (see
	// tokenRequest.extra).
	maxExtraParams = 8
	// maxPooledBuffer keeps an unusually large request from pinning its buffers in the pool.
	maxPooledBuffer = 16 << 10
)

// Bits of the parameters the endpoints understand (others are ignored, RFC 6749 §3.2).
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

// tokenRequest is a parsed request of either endpoint. Every slice points into the request's
// pooled buffers and is valid only while the request is served. An empty value means the
// parameter was absent or sent without a value, which RFC 6749 §3.1 treats alike.
type tokenRequest struct {
	seen uint16
	// grantType, scope, resource and audience are the token endpoint's parameters (token.go).
	grantType []byte
	scope     []byte
	resource  []byte
	audience  []byte
	// token and tokenTypeHint are the introspection parameters (RFC 7662 §2.1, introspect.go).
	token         []byte
	tokenTypeHint []byte
	// clientID, clientSecret, clientAssertionType and clientAssertion are the client
	// authentication parameters both endpoints accept (clientauth.go).
	clientID            []byte
	clientSecret        []byte
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
	// assertionHash is the SHA-256 of assertion, and jwt the assertion parsed
	// (prepareAssertion).
	assertionHash [32]byte
	jwt           *assertion

	// extra holds the first maxExtraParams parameters of names no endpoint maps, for a grant
	// that reads parameters of its own (param); the others are ignored (RFC 6749 §3.2).
	extra  [maxExtraParams]formParam
	nExtra int
}

// formParam is a parameter kept in tokenRequest.extra.
type formParam struct {
	name, value []byte
	repeated    bool
}

// keepExtra keeps a parameter no endpoint maps, noting a repeated name.
func (req *tokenRequest) keepExtra(name, value []byte) {
	for i := range req.extra[:req.nExtra] {
		if p := &req.extra[i]; bytes.Equal(p.name, name) {
			p.repeated = true
			return
		}
	}
	if req.nExtra < maxExtraParams {
		req.extra[req.nExtra] = formParam{name: name, value: value}
		req.nExtra++
	}
}

// param returns the value of a parameter no endpoint maps (nil when absent or sent without
// a value), or invalid_request when it was sent more than once: a grant's own parameters
// (grants.go) obey the same rule as the common ones.
func (req *tokenRequest) param(name string) ([]byte, *oauthError) {
	for i := range req.extra[:req.nExtra] {
		if p := &req.extra[i]; string(p.name) == name {
			if p.repeated {
				return nil, errDuplicateParam
			}
			return p.value, nil
		}
	}
	return nil, nil
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
	// remote is the connection's address (http.Request.RemoteAddr), for the audit lines.
	remote string
	// client is the client the request authenticated, once it has.
	client *Client
	// jkt is the thumbprint of the request's DPoP proof key: the token is bound to it ("" for
	// a bearer token).
	jkt string
}

func (st *reqState) reset() {
	st.body, st.auth, st.authDec = st.body[:0], st.auth[:0], st.authDec[:0]
	st.out, st.payload, st.scope, st.sig = st.out[:0], st.payload[:0], st.scope[:0], st.sig[:0]
	st.req = tokenRequest{}
	st.remote, st.client, st.jkt = "", nil, ""
}

// admit is the prelude both POST endpoints share: the method, a pooled request state, the
// body, the global in-flight cap (503), and the RFC 6749 §5.2 answer for whatever serve
// refuses, with an audit line when audited (the token endpoint). serve is a method expression,
// so nothing is allocated per request.
//
// The body is read before a slot is taken: a client that sends its body slowly (or never)
// holds its own connection for at most Options.BodyReadTimeout, never one of the MaxInFlight
// slots that every other request needs.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, notPost *oauthError, audited bool,
	serve func(*Server, http.ResponseWriter, *http.Request, *reqState) *oauthError) {
	if r.Method != http.MethodPost {
		s.refuse(w, r, nil, notPost, audited)
		return
	}
	st := s.pool.Get().(*reqState)
	defer s.release(st)
	st.remote = r.RemoteAddr
	if err := s.receiveForm(w, r, st); err != nil {
		s.refuse(w, r, nil, err, audited)
		return
	}
	if s.inFlight.Add(1) > int64(s.opts.MaxInFlight) {
		s.inFlight.Add(-1)
		s.refuse(w, r, nil, errOverloaded, audited)
		return
	}
	defer s.inFlight.Add(-1)
	if err := serve(s, w, r, st); err != nil {
		s.refuse(w, r, st, err, audited)
	}
}

// receiveForm checks the content type and reads the body into st under the body deadline.
func (s *Server) receiveForm(w http.ResponseWriter, r *http.Request, st *reqState) *oauthError {
	if !isFormContentType(r.Header["Content-Type"]) {
		return errContentType
	}
	s.readingBodies.Add(1)
	defer s.readingBodies.Add(-1)
	rc := http.NewResponseController(w)
	// A ResponseWriter without deadlines (a test recorder) is read without one; on a real
	// connection this bounds the body whatever its claimed Content-Length.
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout))
	if err := readBody(r, st, s.opts.MaxBodyBytes); err != nil {
		// The deadline stays: whatever is left of the body must not hold the connection
		// while net/http tries to discard it after the answer.
		return err
	}
	// The whole body is in memory. Lift the deadline so that it cannot fire while the
	// request is served: net/http's background read would cancel the request's context.
	_ = rc.SetReadDeadline(time.Time{})
	return nil
}

func (s *Server) observe(start time.Time) {
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

func (s *Server) release(st *reqState) {
	if cap(st.body) > maxPooledBuffer || cap(st.out) > maxPooledBuffer {
		return
	}
	st.reset()
	s.pool.Put(st)
}

// refuse answers e. A failed client authentication is 401 with WWW-Authenticate only when the
// client used the Authorization header; otherwise (client_secret_post, a client assertion, no
// credentials) it is 400 invalid_client without it (RFC 6749 §5.2). openid-client and
// oauth4webapi read a 401 with WWW-Authenticate as an HTTP authentication challenge, not as
// the OAuth error.
//
// With audited, the refusal is written to the audit log (within its budget, see auditLog)
// before the handler returns; st is the request state once the form was read, nil before.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, st *reqState, e *oauthError, audited bool) {
	s.metrics.refuse(e.code)
	if e.dpopNonce {
		s.setNonce(w.Header(), s.opts.Clock())
	}
	var challenge []string
	if len(r.Header["Authorization"]) > 0 {
		challenge = s.wwwAuthenticate
	}
	writeError(w, e, challenge)
	if audited {
		s.auditRefusal(r, st, e)
	}
}

// auditRefusal writes the refusal's audit line. The client is named when the request
// authenticated it, or when the id it presented is a known client's (then "authenticated":
// false); an unknown presented id is not repeated.
func (s *Server) auditRefusal(r *http.Request, st *reqState, e *oauthError) {
	if s.audit.off() {
		return
	}
	f := refusedRequest{remote: r.RemoteAddr, reason: e.code}
	var buf []byte
	if st != nil {
		f.req, f.client, f.authenticated, buf = &st.req, st.client, st.client != nil, st.audit
		if f.client == nil {
			f.client = s.presentedClient(&st.req)
		}
	}
	b := s.audit.refused(buf, s.opts.Clock(), f)
	if st != nil {
		st.audit = b
	}
}

// presentedClient is the known client whose id the request presented (client_id, Basic, or
// a client assertion's sub), or nil.
func (s *Server) presentedClient(req *tokenRequest) *Client {
	if len(req.id) > 0 {
		return s.index.lookup(req.id)
	}
	if req.jwt != nil && req.jwt.sub != "" {
		return s.index.lookup([]byte(req.jwt.sub))
	}
	return nil
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
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
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

// setParam decodes one name=value pair and stores it when the name is one the endpoint uses.
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
		req.keepExtra(name, value)
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

// field maps a parameter name to its bit and value: the endpoint's own parameters, then the
// client authentication parameters.
func (req *tokenRequest) field(name []byte) (uint16, *[]byte) {
	var bit uint16
	var dst *[]byte
	if req.introspect {
		bit, dst = req.introspectionField(name)
	} else {
		bit, dst = req.tokenField(name)
	}
	if bit != 0 {
		return bit, dst
	}
	return req.clientAuthField(name)
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
