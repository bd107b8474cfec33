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

package verify

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// claimsKey is the context key of the verified claims.
type claimsKey struct{}

// NewContext returns a copy of ctx carrying claims. The middleware and the gRPC interceptors
// use it; tests of handlers can too.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the verified claims stored by the middleware or interceptor.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// BearerToken extracts the token from an Authorization header value "Bearer <token>" (RFC
// 6750 §2.1; the scheme is case-insensitive). ok is false for another scheme, an empty token,
// or a token containing whitespace.
func BearerToken(authorization string) (token string, ok bool) {
	token, isBearer := parseAuthorization(authorization)
	return token, isBearer && token != ""
}

// parseAuthorization splits off the Bearer scheme. isBearer is true when the scheme is Bearer
// even if the token is missing or malformed (then token is "").
func parseAuthorization(authorization string) (token string, isBearer bool) {
	scheme, rest, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	// IndexByte is vectorised; ContainsAny walks a 1 KiB token byte by byte, which was most of
	// a cached request's cost. CR and LF cannot reach here: HTTP and gRPC refuse them in headers.
	if rest == "" || strings.IndexByte(rest, ' ') >= 0 || strings.IndexByte(rest, '\t') >= 0 {
		return "", true
	}
	return rest, true
}

// Middleware returns net/http middleware that admits requests bearing a valid access token
// with every required scope, and stores the claims in the request context ([FromContext]).
// A DPoP-bound token is admitted as "Authorization: DPoP <token>" with its proof (RFC 9449
// §7.1, [Verifier.VerifyDPoP]), never as Bearer. Failures are answered per RFC 6750 §3 and
// RFC 9449 §7.1 (a DPoP request gets a DPoP challenge, with error="invalid_dpop_proof" or
// "use_dpop_nonce" for the proof; a verifier that accepts DPoP adds "DPoP algs=..." to its
// Bearer challenges):
//
//   - no Bearer credentials: 401, "WWW-Authenticate: Bearer realm=..." without an error code;
//   - a malformed Authorization header (empty token, several headers): 400 invalid_request;
//   - an invalid, expired or foreign token: 401 error="invalid_token";
//   - a valid token without the scopes: 403 error="insufficient_scope" with the required scopes.
func (v *Verifier) Middleware(requiredScopes ...string) func(http.Handler) http.Handler {
	required := slices.Clone(requiredScopes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, ok := v.authenticate(w, r)
			if !ok {
				return
			}
			if !claims.HasAllScopes(required...) {
				v.writeInsufficientScope(w, claims, required)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), claims)))
		})
	}
}

// RequireScopes returns middleware for a route behind [Verifier.Middleware] that needs more
// scopes than the rest: it reads the claims from the context and answers 403
// insufficient_scope when a scope is missing (401 when the route is not behind Middleware).
func (v *Verifier) RequireScopes(scopes ...string) func(http.Handler) http.Handler {
	required := slices.Clone(scopes)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, ok := FromContext(r.Context())
			if !ok {
				v.writeChallenge(w, http.StatusUnauthorized, nil)
				return
			}
			if !claims.HasAllScopes(required...) {
				v.writeInsufficientScope(w, claims, required)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate verifies the request's access token (Bearer, or DPoP with its proof),
// answering the failure itself.
func (v *Verifier) authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		v.writeChallenge(w, http.StatusUnauthorized, nil)
		return nil, false
	}
	if len(values) > 1 {
		v.writeChallenge(w, http.StatusBadRequest, []string{
			param("error", "invalid_request"), param("error_description", "multiple Authorization headers")})
		return nil, false
	}
	if token, isDPoP := DPoPToken(values[0]); isDPoP && v.dpop.mode != dpopOff {
		return v.authenticateDPoP(w, r, token)
	}
	token, isBearer := parseAuthorization(values[0])
	if !isBearer {
		// Credentials of another scheme are no bearer credentials at all (RFC 6750 §3.1).
		v.writeChallenge(w, http.StatusUnauthorized, nil)
		return nil, false
	}
	if token == "" {
		v.writeChallenge(w, http.StatusBadRequest, []string{
			param("error", "invalid_request"), param("error_description", "malformed Bearer credentials")})
		return nil, false
	}
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		v.writeChallenge(w, http.StatusUnauthorized, []string{
			param("error", "invalid_token"), param("error_description", Describe(err))})
		return nil, false
	}
	return claims, true
}

// authenticateDPoP verifies "Authorization: DPoP <token>" and its single DPoP proof header
// (RFC 9449 §7.1), answering failures with a DPoP challenge.
func (v *Verifier) authenticateDPoP(w http.ResponseWriter, r *http.Request, token string) (*Claims, bool) {
	if token == "" {
		v.writeDPoPChallenge(w, http.StatusBadRequest, []string{
			param("error", "invalid_request"), param("error_description", "malformed DPoP credentials")})
		return nil, false
	}
	proofs := r.Header.Values(dpop.HeaderName)
	if len(proofs) != 1 {
		v.writeDPoPChallenge(w, http.StatusUnauthorized, []string{
			param("error", "invalid_dpop_proof"), param("error_description", "exactly one DPoP proof header is required")})
		return nil, false
	}
	claims, err := v.VerifyDPoP(r.Context(), token, proofs[0], r.Method, v.requestURL(r))
	if err != nil {
		code := "invalid_token"
		switch {
		case errors.Is(err, ErrDPoPNonce):
			code = "use_dpop_nonce"
			w.Header().Set(dpop.NonceHeader, v.Nonce())
		case errors.Is(err, ErrDPoPProof):
			code = "invalid_dpop_proof"
		}
		v.writeDPoPChallenge(w, http.StatusUnauthorized, []string{param("error", code), param("error_description", Describe(err))})
		return nil, false
	}
	if v.dpop.nonces != nil {
		// A fresh nonce for the client's next proof (RFC 9449 §9).
		w.Header().Set(dpop.NonceHeader, v.Nonce())
	}
	return claims, true
}

// requestURL is the URL a DPoP proof's htu must name: the external base (WithExternalURL) and
// the request's path, or the URL the request itself was sent to.
func (v *Verifier) requestURL(r *http.Request) string {
	if v.dpop.external != "" {
		return strings.TrimSuffix(v.dpop.external, "/") + r.URL.EscapedPath()
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return scheme + r.Host + r.URL.EscapedPath()
}

// DPoPToken extracts the token from an Authorization header value "DPoP <token>" (RFC 9449
// §7.1; the scheme is case-insensitive). isDPoP is true when the scheme is DPoP, even if the
// token is missing or malformed (then token is "").
func DPoPToken(authorization string) (token string, isDPoP bool) {
	scheme, rest, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, dpop.Scheme) {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" || strings.IndexByte(rest, ' ') >= 0 || strings.IndexByte(rest, '\t') >= 0 {
		return "", true
	}
	return rest, true
}

func (v *Verifier) writeInsufficientScope(w http.ResponseWriter, c *Claims, required []string) {
	params := []string{param("error", "insufficient_scope"), param("scope", strings.Join(required, " "))}
	if c != nil && c.JKT != "" {
		v.writeDPoPChallenge(w, http.StatusForbidden, params)
		return
	}
	v.writeChallenge(w, http.StatusForbidden, params)
}

// writeChallenge answers a Bearer request (or one without credentials) with a Bearer challenge
// (RFC 6750 §3) and a one-line body. A verifier that accepts DPoP adds a DPoP challenge
// naming its algorithms (RFC 9449 §7.1); one that requires DPoP sends only that, with the
// error.
func (v *Verifier) writeChallenge(w http.ResponseWriter, status int, params []string) {
	h := w.Header()
	switch v.dpop.mode {
	case dpopRequired:
		h.Set("WWW-Authenticate", v.challenge(dpop.Scheme, params))
	case dpopAccepted:
		h.Set("WWW-Authenticate", v.challenge("Bearer", params))
		h.Add("WWW-Authenticate", v.challenge(dpop.Scheme, nil))
	default:
		h.Set("WWW-Authenticate", v.challenge("Bearer", params))
	}
	writeStatus(w, status)
}

// writeDPoPChallenge answers a DPoP request with a DPoP challenge.
func (v *Verifier) writeDPoPChallenge(w http.ResponseWriter, status int, params []string) {
	w.Header().Set("WWW-Authenticate", v.challenge(dpop.Scheme, params))
	writeStatus(w, status)
}

// Challenge formats one WWW-Authenticate challenge as the middleware sends it (RFC 6750 §3,
// RFC 9449 §7.1): scheme ("Bearer" or [dpop.Scheme]), the realm unless empty, the auth-params
// given as name, value pairs (quoted, control characters dropped), and for DPoP the proof
// algorithms accepted. It is for services answering on behalf of an API, such as a gateway's
// decision service.
func Challenge(scheme, realm string, kv ...string) string {
	params := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		params = append(params, param(kv[i], kv[i+1]))
	}
	return challenge(scheme, realm, params)
}

// challenge formats one challenge of this verifier's realm.
func (v *Verifier) challenge(scheme string, params []string) string {
	return challenge(scheme, v.realm, params)
}

// challenge formats one challenge: the realm, the params, and for DPoP the algorithms.
func challenge(scheme, realm string, params []string) string {
	var all []string
	if realm != "" {
		all = append(all, param("realm", realm))
	}
	all = append(all, params...)
	if scheme == dpop.Scheme {
		all = append(all, param("algs", strings.Join(dpop.DefaultAlgorithms, " ")))
	}
	if len(all) == 0 {
		return scheme
	}
	return scheme + " " + strings.Join(all, ", ")
}

func writeStatus(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(http.StatusText(status) + "\n"))
}

// param formats an auth-param with a quoted-string value (RFC 9110 §5.6.4), dropping control
// characters so that no value can break the header.
func param(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(`="`)
	for _, r := range value {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Describe returns a short, fixed description of a verification error, safe to send to the
// client (it never echoes token content): for error_description or a gRPC status message.
func Describe(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "the access token expired"
	case errors.Is(err, ErrNotYetValid):
		return "the access token is not valid yet"
	case errors.Is(err, ErrAudience):
		return "the access token is not meant for this audience"
	case errors.Is(err, ErrIssuer):
		return "the access token has an unexpected issuer"
	case errors.Is(err, ErrRevoked):
		return "the access token was revoked"
	case errors.Is(err, ErrRevocationList):
		return "the access token cannot be checked for revocation now"
	case errors.Is(err, ErrTokenBinding):
		return "the access token's binding does not match the request: a DPoP-bound token needs the DPoP scheme and a proof by its key"
	case errors.Is(err, ErrDPoPProof):
		return "the DPoP proof is invalid for this request"
	case errors.Is(err, ErrDPoPNonce):
		return "the DPoP proof must carry the nonce sent in DPoP-Nonce"
	default:
		return "the access token is invalid"
	}
}
