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
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by [Verifier.Verify] is an [*Error] whose Kind is one of
// these, so callers can branch with errors.Is(err, verify.ErrExpired).
var (
	// ErrMalformed: the token is not a well-formed JWS compact serialization of a JSON claims
	// object, is too large, or uses a serialization this package refuses (JWE, JSON).
	ErrMalformed = errors.New("malformed token")
	// ErrHeader: the header carries a parameter that is never trusted ("jwk", "jku", "x5u",
	// "x5c"), a "crit" extension, or a JWE/unencoded-payload parameter.
	ErrHeader = errors.New("forbidden header parameter")
	// ErrAlgorithm: "alg" is not allowed, or does not fit the key named by "kid".
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrType: "typ" is not "at+jwt".
	ErrType = errors.New("token type is not at+jwt")
	// ErrUnknownKey: "kid" is missing or names no key of the trusted key set.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrClaims: a required claim is missing or has the wrong type.
	ErrClaims = errors.New("invalid claims")
	// ErrIssuer: "iss" is not the expected issuer.
	ErrIssuer = errors.New("wrong issuer")
	// ErrAudience: "aud" does not contain the expected audience.
	ErrAudience = errors.New("wrong audience")
	// ErrExpired: "exp" has passed.
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: "nbf" or "iat" lies in the future.
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrKeySet: the issuer's metadata or key set could not be fetched or used. Returned by
	// [New] and [Verifier.Refresh]; [Verifier.Verify] reports ErrUnknownKey instead, with an
	// ErrKeySet cause when the refresh for an unknown kid failed.
	ErrKeySet = errors.New("key set unavailable")
	// ErrRevoked: the issuer's revocation list revokes the token ([WithRevocationList]): its
	// client's tokens were revoked, the client is disabled, or its grant for this audience
	// was removed, after the token was issued.
	ErrRevoked = errors.New("token revoked")
	// ErrRevocationList: the revocation list could not be fetched or verified. [Verifier.Verify]
	// returns it for every token once the list is older than the staleness bound (fail closed,
	// the default; see [WithRevocationStaleness] and [WithRevocationFailOpen]).
	ErrRevocationList = errors.New("revocation list unavailable")
	// ErrTokenBinding: a DPoP-bound token without its proof (as Bearer), an unbound token with
	// the DPoP scheme, a proof by another key than the token's cnf.jkt, or a bearer token where
	// only bound ones are accepted.
	ErrTokenBinding = errors.New("token binding mismatch")
	// ErrDPoPProof: the DPoP proof fails a check of RFC 9449 §4.3, or was used before.
	ErrDPoPProof = errors.New("invalid DPoP proof")
	// ErrDPoPNonce: the DPoP proof lacks a valid nonce this verifier requires.
	ErrDPoPNonce = errors.New("DPoP nonce required")
)

// Error is the error type of this package. Kind is one of the sentinel errors above; errors.Is
// matches it. Err, when set, is the underlying cause (for example a go-jose parse error).
//
// Messages never contain the token. They may contain a short, quoted excerpt of an untrusted
// header value (such as a kid) to help debugging.
type Error struct {
	// Kind is the sentinel error that classifies the failure.
	Kind error
	// Detail says what exactly failed, without secrets.
	Detail string
	// Err is the underlying cause, or nil.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	msg := "verify: " + e.Kind.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is this error's Kind, so errors.Is(err, ErrExpired) works.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// fail builds an *Error without a cause.
func fail(kind error, detail string) *Error { return &Error{Kind: kind, Detail: detail} }

// failf builds an *Error with a formatted detail.
func failf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// wrap builds an *Error around a cause.
func wrap(kind error, detail string, err error) *Error {
	return &Error{Kind: kind, Detail: detail, Err: err}
}

// excerpt quotes an untrusted string for an error message, truncated so that a huge or hostile
// value cannot bloat logs.
func excerpt(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		s = s[:maxLen] + "…"
	}
	return fmt.Sprintf("%q", s)
}
