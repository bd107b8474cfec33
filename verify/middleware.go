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
// Failures are answered per RFC 6750 §3:
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
				v.writeInsufficientScope(w, required)
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
				v.writeInsufficientScope(w, required)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate verifies the request's bearer token, answering the failure itself.
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

func (v *Verifier) writeInsufficientScope(w http.ResponseWriter, required []string) {
	v.writeChallenge(w, http.StatusForbidden, []string{
		param("error", "insufficient_scope"), param("scope", strings.Join(required, " "))})
}

// writeChallenge answers with a Bearer challenge (RFC 6750 §3) and a one-line body.
func (v *Verifier) writeChallenge(w http.ResponseWriter, status int, params []string) {
	challenge := "Bearer"
	if v.realm != "" {
		params = append([]string{param("realm", v.realm)}, params...)
	}
	if len(params) > 0 {
		challenge += " " + strings.Join(params, ", ")
	}
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
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
	default:
		return "the access token is invalid"
	}
}
