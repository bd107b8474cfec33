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
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// maxKeyIDLen bounds "kid": a longer value is no key of ours (jws.ParseKeySet skips such
// keys), and refusing it early keeps hostile values out of the key lookup and of error
// messages.
const maxKeyIDLen = jws.MaxKeyIDLen

// supportedAlgorithms are the asymmetric JWS algorithms this package can verify. "none" and
// the HMAC family are deliberately absent: a resource server holds no shared secret.
var supportedAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// defaultAlgorithms are what the m2m token server can sign with (ES256 default; RS256 and
// EdDSA selectable), plus PS256, which fits the same RSA keys.
var defaultAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// parse parses the token (package jws: the compact serialization and the header parameters
// that are never trusted) and applies the header checks that need no key: the allow-list,
// the access-token type and the kid.
func (v *Verifier) parse(token string) (*jws.JWS, error) {
	t, err := jws.Parse(token)
	if err != nil {
		return nil, fromJWS(err)
	}
	h := &t.Header
	if !v.algAllowed(h.Algorithm) {
		return nil, failf(ErrAlgorithm, "%s is not allowed", excerpt(h.Algorithm))
	}
	if !isAccessTokenType(h.Type) {
		return nil, failf(ErrType, "got %s", excerpt(h.Type))
	}
	if h.KeyID == "" || len(h.KeyID) > maxKeyIDLen {
		return nil, fail(ErrUnknownKey, "missing or oversized \"kid\"")
	}
	return t, nil
}

// fromJWS classifies an error of package jws as this package's.
func fromJWS(err error) *Error {
	switch {
	case errors.Is(err, jws.ErrHeader):
		return wrap(ErrHeader, "", err)
	case errors.Is(err, jws.ErrAlgorithm):
		return wrap(ErrAlgorithm, "", err)
	case errors.Is(err, jws.ErrSignature):
		return wrap(ErrSignature, "", err)
	}
	return wrap(ErrMalformed, "", err)
}

// isAccessTokenType implements RFC 9068 §4 step 1 and RFC 8725 §3.11: "typ" must be "at+jwt";
// media types are case-insensitive and may carry the "application/" prefix (RFC 7515 §4.1.9).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == "at+jwt" || typ == "application/at+jwt"
}

// algAllowed reports whether alg is on the verifier's allow-list.
func (v *Verifier) algAllowed(alg string) bool {
	return slices.Contains(v.algorithms, jose.SignatureAlgorithm(alg))
}
