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

// Package verify checks OAuth 2.0 JWT access tokens (RFC 9068) issued by the m2m token server,
// for Go resource servers.
//
// A [Verifier] discovers the issuer's key set from its RFC 8414 metadata, caches the keys, and
// validates tokens locally per RFC 9068 §4 and the JWT best current practices of RFC 8725:
//
//   - the token is capped in size before anything is parsed ([WithMaxTokenSize]);
//   - only the JWS compact serialization is accepted: JWE (five parts) and the JSON
//     serializations are refused;
//   - the signing key is chosen only by the header "kid" from the trusted key set; tokens that
//     carry "jwk", "jku", "x5u" or "x5c" are refused outright rather than ignored, because our
//     issuer never sends them and their presence signals a forgery attempt or a foreign issuer;
//   - "alg" must be on the allow-list ([WithAllowedAlgorithms]) and fit the key: EC P-256 keys
//     verify ES256 only, RSA keys RS256/PS256, Ed25519 keys EdDSA; "none" and HMAC never;
//   - any "crit" header is refused: this library implements no JWS extensions;
//   - "typ" must be "at+jwt" (or "application/at+jwt", case-insensitive);
//   - "iss" must equal the issuer exactly, "aud" must contain the audience, "exp" must be in the
//     future and "nbf"/"iat" not in the future, each with a small leeway ([WithLeeway]).
//
// Verified tokens are cached ([WithCacheSize]) until they expire or their key leaves the key
// set, so a token that is presented again costs a hash and a map lookup.
//
// With [WithRevocationList] the verifier also honours the issuer's signed revocation list
// (metadata "m2m_revocation_list_uri"), refreshed every [DefaultRevocationRefresh] in the
// background: tokens revoked after they were issued are refused with [ErrRevoked], cached ones
// included, at the cost of one more map lookup. Without a fresh list for
// [DefaultRevocationStaleness] it fails closed ([ErrRevocationList]) unless
// [WithRevocationFailOpen]. Call [Verifier.Close] to stop the refresh.
//
// Scopes follow an "action:resource"-style convention with one wildcard form: a held scope
// "invoices:*" satisfies any required scope that starts with "invoices:" (see [ScopeMatches]).
//
// [Verifier.Middleware] protects net/http handlers and answers failures as RFC 6750 requires
// (401 with WWW-Authenticate, or 403 insufficient_scope); package grpcverify does the same for
// gRPC servers. Handlers read the verified identity with [FromContext].
//
// DPoP-bound tokens (RFC 9449: cnf.jkt, the thumbprint of a key only their client holds) are
// accepted only as "Authorization: DPoP <token>" with a proof by that key for the request
// ([Verifier.VerifyDPoP]; the middleware and grpcverify do it), never as Bearer, so a stolen
// token is worthless. [WithDPoPRequired] refuses bearer tokens altogether. The proof checks
// are package verify/dpop, which the token server runs on token requests too; package
// verify/dpopclient is the client side.
//
// The JOSE layer (the compact JWS parser, the algorithm-to-key binding, the signature checks and
// the key-set cache) is package verify/jws, which the m2m token server also uses for the client
// assertions it receives.
//
// The package never logs and never puts a token in an error message.
package verify
