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
	"net/http"
	"strconv"
)

// OAuth 2.0 error codes (RFC 6749 §5.2, RFC 8707 §2) and the two this server adds for overload.
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnauthorizedClient   = "unauthorized_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidScope         = "invalid_scope"
	errInvalidTarget        = "invalid_target"
	// errSlowDown answers 429: a per-client issuance or authentication-failure limit was hit.
	errSlowDown = "slow_down"
	// errTemporarilyUnavailable answers 503: overload, or no signing key loaded yet.
	errTemporarilyUnavailable = "temporarily_unavailable"
)

// oauthError is a refusal: the HTTP status, the error code and a fixed description. Descriptions
// are constants: they never echo request data, so never a secret.
type oauthError struct {
	status      int
	code        string
	description string
	// retryAfter, in seconds, for 429 and 503.
	retryAfter int
	// dpopNonce: the answer carries a fresh DPoP-Nonce (use_dpop_nonce, dpop.go).
	dpopNonce bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: errInvalidRequest, description: desc}
}

// Refusals that carry no variable data are allocated once.
var (
	errMethodNotAllowed    = &oauthError{status: http.StatusMethodNotAllowed, code: errInvalidRequest, description: "the token endpoint accepts only POST"}
	errBodyTooLarge        = &oauthError{status: http.StatusRequestEntityTooLarge, code: errInvalidRequest, description: "the request body is too large"}
	errContentType         = badRequest("the content type must be application/x-www-form-urlencoded")
	errReadBody            = badRequest("the request body could not be read")
	errDuplicateParam      = badRequest("a parameter is repeated")
	errBadEncoding         = badRequest("the form body is not valid application/x-www-form-urlencoded")
	errTooManyParams       = badRequest("the form body has too many parameters")
	errMissingGrantType    = badRequest("grant_type is required")
	errTwoAuthMethods      = badRequest("more than one client authentication method was used")
	errClientIDMismatch    = badRequest("client_id does not match the authenticated client")
	errBadAuthHeader       = badRequest("the Authorization header is not valid HTTP Basic with form-encoded credentials")
	errManyAuthHeaders     = badRequest("more than one Authorization header")
	errResourceAudience    = badRequest("resource and audience name different targets")
	errAssertionIncomplete = badRequest("client_assertion and client_assertion_type must be sent together")
	errAssertionType       = &oauthError{status: http.StatusUnauthorized, code: errInvalidClient, description: "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
	errUnsupportedGrant    = &oauthError{status: http.StatusBadRequest, code: errUnsupportedGrantType, description: "only the client_credentials grant is supported"}
	errAuthFailed          = &oauthError{status: http.StatusUnauthorized, code: errInvalidClient, description: "client authentication failed"}
	errDisabled            = &oauthError{status: http.StatusBadRequest, code: errUnauthorizedClient, description: "the client is disabled"}
	errScopeMalformed      = &oauthError{status: http.StatusBadRequest, code: errInvalidScope, description: "the scope parameter is malformed"}
	errScopeNotGranted     = &oauthError{status: http.StatusBadRequest, code: errInvalidScope, description: "a requested scope is not granted to the client for this audience"}
	errScopeEmpty          = &oauthError{status: http.StatusBadRequest, code: errInvalidScope, description: "no scope is granted to the client for this audience"}
	errTargetUnknown       = &oauthError{status: http.StatusBadRequest, code: errInvalidTarget, description: "the requested audience is not one the client may get tokens for"}
	errTargetAmbiguous     = &oauthError{status: http.StatusBadRequest, code: errInvalidTarget, description: "the client has several audiences: name one with resource or audience"}
	// errNothingGranted: a client granted nothing that names no audience asked for scopes it
	// does not have (invalid_scope), not for a target; naming an audience stays invalid_target.
	errNothingGranted     = &oauthError{status: http.StatusBadRequest, code: errInvalidScope, description: "no scope is granted to the client"}
	errManyResources      = &oauthError{status: http.StatusBadRequest, code: errInvalidTarget, description: "only one resource per token is supported"}
	errOverloaded         = &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, description: "the server is overloaded; retry later", retryAfter: 1}
	errNoSigningKey       = &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, description: "no signing key is loaded yet; retry later", retryAfter: 1}
	errSigningFailed      = &oauthError{status: http.StatusServiceUnavailable, code: errTemporarilyUnavailable, description: "the token could not be signed; retry later", retryAfter: 1}
	errAuthFailuresExceed = &oauthError{status: http.StatusTooManyRequests, code: errSlowDown, description: "too many failed authentications for this client; retry later", retryAfter: 1}
)

// rateLimited is a 429 for a client over its issuance rate.
func rateLimited(retryAfter int) *oauthError {
	return &oauthError{status: http.StatusTooManyRequests, code: errSlowDown, description: "the client's token issuance rate limit is exceeded", retryAfter: retryAfter}
}

// replayLimited is a 429 for a private_key_jwt client holding too many unexpired assertions.
func replayLimited(retryAfter int) *oauthError {
	return &oauthError{status: http.StatusTooManyRequests, code: errSlowDown, description: "too many unexpired client assertions for this client; retry later", retryAfter: retryAfter}
}

// Header values shared by every response (never modified after init).
var (
	hdrJSON      = []string{"application/json"}
	hdrNoStore   = []string{"no-store"}
	hdrNoCache   = []string{"no-cache"}
	hdrAllowPost = []string{http.MethodPost}
	hdrAllowGet  = []string{"GET, HEAD"}
)

// writeError writes an RFC 6749 §5.2 error response. A 401 (invalid_client) is sent as such,
// with wwwAuthenticate, only when wwwAuthenticate is set, that is when the client used the
// Authorization header; without it the same error is a 400 (RFC 9110 §11.6.1 requires
// WWW-Authenticate on every 401, and RFC 6749 §5.2 the 401 only when the header was used).
func writeError(w http.ResponseWriter, e *oauthError, wwwAuthenticate []string) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Pragma"] = hdrNoCache
	status := e.status
	switch {
	case status == http.StatusMethodNotAllowed:
		h["Allow"] = hdrAllowPost
	case status == http.StatusUnauthorized && wwwAuthenticate == nil:
		status = http.StatusBadRequest
	case status == http.StatusUnauthorized:
		h["Www-Authenticate"] = wwwAuthenticate
	}
	if e.retryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(e.retryAfter)}
	}
	w.WriteHeader(status)
	b := make([]byte, 0, 64+len(e.description))
	b = append(b, `{"error":"`...)
	b = append(b, e.code...)
	b = append(b, `","error_description":`...)
	b = appendJSONString(b, e.description)
	b = append(b, '}')
	_, _ = w.Write(b)
}
