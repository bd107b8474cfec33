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

// Client assertions (RFC 7523 §2.2), shared by private_key_jwt and the ServiceAccount method:
// the compact JWS is parsed by package verify/jws (the one parser of hostile JOSE input, the
// one resource servers run on access tokens), then the claims this server reads are checked
// for shape. Nothing here says which check failed to the client: every failure becomes the same
// invalid_client.

import (
	"crypto/sha256"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/json"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

const (
	// assertionLeeway tolerates clock skew on nbf and iat.
	assertionLeeway = 30 * time.Second
	// maxAssertionSize bounds a client assertion (a projected ServiceAccount token is ~1-2 KiB).
	maxAssertionSize = 8 << 10
	// maxClaimLen bounds iss, sub, jti and each audience.
	maxClaimLen = 512
	// maxAssertionAudiences bounds the aud array.
	maxAssertionAudiences = 16
)

var errBadAssertion = errors.New("malformed client assertion")

// prepareAssertion readies a client assertion for the methods: it is hashed, answered from the
// cache of a method that keeps one (a ServiceAccount token confirmed within the last minute),
// or else parsed into req.jwt. A malformed assertion is refused here, whichever method it was
// meant for. Every failure is the same invalid_client; the reason is logged and counted.
func (s *Server) prepareAssertion(req *tokenRequest, now time.Time) (*Client, *oauthError) {
	req.assertionHash = hashAssertion(req.assertion)
	for _, m := range clientAuthMethods {
		if cm, ok := m.(cachingAuthMethod); ok {
			if c := cm.cached(s, req, now); c != nil {
				return c, nil
			}
		}
	}
	a, err := parseAssertion(req.assertion)
	if err != nil {
		return nil, s.refuseAssertion(refusedMalformed, string(req.id), nil)
	}
	req.jwt = a
	return nil, nil
}

// assertion is a parsed, not yet verified, compact JWS client assertion.
type assertion struct {
	// token is the parsed JWS; signingInput is "header.payload" as received.
	token        *jws.JWS
	signingInput string
	alg, kid     string
	iss, sub     string
	jti          string
	aud          []string
	// exp is required; nbf and iat are 0 when absent.
	exp, nbf, iat int64
}

// assertionClaims are the claims this server reads; others are ignored.
type assertionClaims struct {
	Iss *string         `json:"iss"`
	Sub *string         `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	Iat *float64        `json:"iat"`
	JTI *string         `json:"jti"`
}

// parseAssertion parses a compact JWS (jws.Parse: three canonical base64url parts, a header
// without untrusted parameters) and checks its shape: a signature, an alg, a kid of bounded
// length if any, and claims with iss, sub, aud and exp.
func parseAssertion(raw []byte) (*assertion, error) {
	if len(raw) == 0 || len(raw) > maxAssertionSize {
		return nil, errBadAssertion
	}
	t, err := jws.Parse(string(raw))
	if err != nil || len(t.Signature) == 0 || t.Header.Algorithm == "" || len(t.Header.KeyID) > maxClaimLen {
		return nil, errBadAssertion
	}
	a := &assertion{token: t, signingInput: t.SigningInput(), alg: t.Header.Algorithm, kid: t.Header.KeyID}
	if err := a.parseClaims(t.Payload); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *assertion) parseClaims(payload []byte) error {
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return errBadAssertion
	}
	if !shortString(c.Iss) || !shortString(c.Sub) || c.Exp == nil {
		return errBadAssertion
	}
	a.iss, a.sub = *c.Iss, *c.Sub
	if c.JTI != nil {
		if !shortString(c.JTI) {
			return errBadAssertion
		}
		a.jti = *c.JTI
	}
	var err error
	if a.aud, err = parseAudience(c.Aud); err != nil {
		return err
	}
	var ok bool
	if a.exp, ok = numericDate(c.Exp); !ok {
		return errBadAssertion
	}
	if a.nbf, ok = numericDate(c.Nbf); !ok {
		return errBadAssertion
	}
	if a.iat, ok = numericDate(c.Iat); !ok {
		return errBadAssertion
	}
	return nil
}

func shortString(s *string) bool { return s != nil && *s != "" && len(*s) <= maxClaimLen }

// parseAudience accepts a string or a non-empty array of strings (RFC 7519 §4.1.3).
func parseAudience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errBadAssertion
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if !shortString(&one) {
			return nil, errBadAssertion
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 || len(many) > maxAssertionAudiences {
		return nil, errBadAssertion
	}
	for i := range many {
		if !shortString(&many[i]) {
			return nil, errBadAssertion
		}
	}
	return many, nil
}

// numericDate converts an optional NumericDate to whole seconds; absent is 0.
func numericDate(v *float64) (int64, bool) {
	if v == nil {
		return 0, true
	}
	f := *v
	if math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return 0, false
	}
	return int64(f), true
}

// hasAudience reports whether the assertion names any of the accepted audiences.
func (a *assertion) hasAudience(accepted ...string) bool {
	return slices.ContainsFunc(a.aud, func(got string) bool { return slices.Contains(accepted, got) })
}

// timesRefusal: "" when not expired and not before nbf or iat (with leeway for clock skew).
func timesRefusal(a *assertion, now time.Time) refusal {
	t := now.Unix()
	skew := int64(assertionLeeway / time.Second)
	switch {
	case t >= a.exp:
		return refusedExpired
	case (a.nbf != 0 && a.nbf > t+skew) || (a.iat != 0 && a.iat > t+skew):
		return refusedNotYetValid
	}
	return ""
}

// hashAssertion is the cache key of an assertion.
func hashAssertion(raw []byte) [32]byte { return sha256.Sum256(raw) }
