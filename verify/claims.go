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
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/json"
)

// Claims is the verified content of an access token.
//
// A *Claims returned by [Verifier.Verify] or [FromContext] may be shared with the token cache
// and with concurrent requests presenting the same token: treat it as read-only.
type Claims struct {
	// Issuer is "iss", equal to the verifier's issuer.
	Issuer string
	// Subject is "sub"; for client-credentials tokens it equals ClientID.
	Subject string
	// ClientID is "client_id", the OAuth client ("m2mc_…").
	ClientID string
	// Namespace is "namespace", the Kubernetes namespace of the client.
	Namespace string
	// Scopes is "scope" split on spaces.
	Scopes []string
	// Audience is "aud"; a single-string "aud" becomes a one-element slice.
	Audience []string
	// Expiry is "exp".
	Expiry time.Time
	// IssuedAt is "iat".
	IssuedAt time.Time
	// NotBefore is "nbf", or the zero time when the token has none.
	NotBefore time.Time
	// JTI is "jti", the token's unique identifier.
	JTI string
	// JKT is "cnf"."jkt" (RFC 9449 §6.1): the thumbprint of the key the token is bound to, or
	// "" for a bearer token. A bound token is only accepted with a DPoP proof by that key.
	JKT string
	// Extra holds every other claim whose value is a JSON string (the client's custom claims,
	// for example "team"). Claims of other JSON types are left out.
	Extra map[string]string
}

// HasScope reports whether the token's scopes satisfy required, with the wildcard rule of
// [ScopeMatches].
func (c *Claims) HasScope(required string) bool {
	if c == nil {
		return false
	}
	for _, held := range c.Scopes {
		if ScopeMatches(held, required) {
			return true
		}
	}
	return false
}

// HasAllScopes reports whether every required scope is satisfied. It is true when required is
// empty.
func (c *Claims) HasAllScopes(required ...string) bool {
	for _, r := range required {
		if !c.HasScope(r) {
			return false
		}
	}
	return true
}

// ScopeMatches reports whether a held scope satisfies a required scope:
//
//   - equal strings always match;
//   - a held scope ending in ":*" (for example "invoices:*") matches any required scope that
//     starts with the part before the "*" ("invoices:read", "invoices:write", "invoices:*");
//   - a bare held "*" matches only a required "*": it is not a super-user scope, because a
//     token that silently satisfies every API's checks would be too dangerous to hand out;
//   - any other "*" is an ordinary character.
//
// A wildcard in the required scope has no special meaning: holding "invoices:read" does not
// satisfy a requirement of "invoices:*".
func ScopeMatches(held, required string) bool {
	if held == required {
		return true
	}
	prefix, ok := strings.CutSuffix(held, "*")
	if !ok || !strings.HasSuffix(prefix, ":") {
		return false
	}
	return strings.HasPrefix(required, prefix)
}

// Bounds for NumericDate values: anything outside 1970..9999 is a broken or hostile token, and
// the bound keeps the conversion to time.Time free of overflow.
const maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z

// parseClaims decodes the JWT claims set. It uses go-jose's JSON decoder, which matches member
// names case-sensitively and refuses duplicate members: with encoding/json, a custom claim named
// "Scope" could overwrite "scope".
func parseClaims(payload []byte) (*Claims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, wrap(ErrMalformed, "claims are not a JSON object", err)
	}
	if raw == nil {
		return nil, fail(ErrMalformed, "claims are not a JSON object")
	}
	c := &Claims{}
	for name, value := range raw {
		if err := c.set(name, value); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// set stores one claim, checking its JSON type.
func (c *Claims) set(name string, value json.RawMessage) error {
	var err error
	switch name {
	case "iss":
		c.Issuer, err = claimString(name, value)
	case "sub":
		c.Subject, err = claimString(name, value)
	case "client_id":
		c.ClientID, err = claimString(name, value)
	case "namespace":
		c.Namespace, err = claimString(name, value)
	case "jti":
		c.JTI, err = claimString(name, value)
	case "scope":
		var s string
		s, err = claimString(name, value)
		c.Scopes = strings.Fields(s)
	case "aud":
		c.Audience, err = claimAudience(value)
	case "exp":
		c.Expiry, err = claimTime(name, value)
	case "iat":
		c.IssuedAt, err = claimTime(name, value)
	case "nbf":
		c.NotBefore, err = claimTime(name, value)
	case "cnf":
		c.JKT, err = claimConfirmation(value)
	default:
		c.setExtra(name, value)
	}
	return err
}

// setExtra keeps string-valued custom claims and ignores the rest.
func (c *Claims) setExtra(name string, value json.RawMessage) {
	if len(value) == 0 || value[0] != '"' {
		return
	}
	s, err := claimString(name, value)
	if err != nil {
		return
	}
	if c.Extra == nil {
		c.Extra = make(map[string]string)
	}
	c.Extra[name] = s
}

// claimString decodes a JSON string. Plain printable ASCII, by far the common case, is sliced
// out directly; anything with escapes or other bytes goes through the JSON decoder.
func claimString(name string, value json.RawMessage) (string, error) {
	if s, ok := plainJSONString(value); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", wrap(ErrClaims, excerpt(name)+" is not a string", err)
	}
	return s, nil
}

// plainJSONString returns the content of a JSON string made only of printable ASCII without
// escapes.
func plainJSONString(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
		return "", false
	}
	inner := value[1 : len(value)-1]
	for _, b := range inner {
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

// claimConfirmation reads the "jkt" of a "cnf" object (RFC 7800 §3.1, RFC 9449 §6.1). A "cnf"
// that is not an object, or one with a confirmation method this package cannot check (no
// "jkt", or a "jkt" that is not a string), refuses the token: ignoring it would accept as a
// bearer token one its issuer bound to a key.
func claimConfirmation(value json.RawMessage) (string, error) {
	var cnf map[string]json.RawMessage
	if err := json.Unmarshal(value, &cnf); err != nil || cnf == nil {
		return "", fail(ErrClaims, "\"cnf\" is not an object")
	}
	raw, ok := cnf["jkt"]
	if !ok || len(cnf) != 1 {
		return "", fail(ErrClaims, "\"cnf\" has a confirmation method other than \"jkt\"")
	}
	jkt, err := claimString("jkt", raw)
	if err != nil || jkt == "" {
		return "", fail(ErrClaims, "\"cnf\".\"jkt\" is not a string")
	}
	return jkt, nil
}

// claimAudience accepts "aud" as a string or an array of strings (RFC 7519 §4.1.3).
func claimAudience(value json.RawMessage) ([]string, error) {
	if len(value) > 0 && value[0] == '"' {
		s, err := claimString("aud", value)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(value, &list); err != nil {
		return nil, wrap(ErrClaims, "\"aud\" is neither a string nor an array of strings", err)
	}
	return list, nil
}

// claimTime decodes a NumericDate: seconds since the epoch, possibly fractional.
func claimTime(name string, value json.RawMessage) (time.Time, error) {
	s := string(value)
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		if sec < 0 || sec > maxNumericDate {
			return time.Time{}, failf(ErrClaims, "%s is out of range", excerpt(name))
		}
		return time.Unix(sec, 0), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || len(s) == 0 || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, failf(ErrClaims, "%s is not a NumericDate", excerpt(name))
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, failf(ErrClaims, "%s is out of range", excerpt(name))
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// checkClaims applies the RFC 9068 §4 rules to decoded claims at time now.
func (v *Verifier) checkClaims(c *Claims, now time.Time) error {
	if c.Issuer != v.issuer {
		return failf(ErrIssuer, "got %s", excerpt(c.Issuer))
	}
	if err := requirePresent(c); err != nil {
		return err
	}
	if !v.anyAudience && !slices.Contains(c.Audience, v.audience) {
		return fail(ErrAudience, "")
	}
	return v.checkTimes(c, now)
}

// requirePresent enforces the claims RFC 9068 §2.2 makes mandatory.
func requirePresent(c *Claims) error {
	switch {
	case c.Subject == "":
		return fail(ErrClaims, "missing \"sub\"")
	case c.ClientID == "":
		return fail(ErrClaims, "missing \"client_id\"")
	case c.JTI == "":
		return fail(ErrClaims, "missing \"jti\"")
	case len(c.Audience) == 0:
		return fail(ErrClaims, "missing \"aud\"")
	case c.Expiry.IsZero():
		return fail(ErrClaims, "missing \"exp\"")
	case c.IssuedAt.IsZero():
		return fail(ErrClaims, "missing \"iat\"")
	}
	return nil
}

// checkTimes checks exp, nbf and iat against now, each with the leeway.
func (v *Verifier) checkTimes(c *Claims, now time.Time) error {
	if !now.Before(c.Expiry.Add(v.leeway)) {
		return fail(ErrExpired, "")
	}
	late := now.Add(v.leeway)
	if !c.NotBefore.IsZero() && c.NotBefore.After(late) {
		return fail(ErrNotYetValid, "\"nbf\" is in the future")
	}
	if c.IssuedAt.After(late) {
		return fail(ErrNotYetValid, "\"iat\" is in the future")
	}
	return nil
}
