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

package v1alpha1

import (
	"strings"
	"unicode"
)

// ReservedClaims are the claim names spec.claims may never set, in any letter case: every claim
// the token server emits or may emit (iss, sub, aud, exp, nbf, iat, jti, scope, client_id,
// namespace, cnf), the other registered JWT claims and those of RFC 9068 (auth_time, acr, amr,
// roles, groups, entitlements), token exchange's act and may_act (RFC 8693), and azp, which
// OpenID libraries read as the client's identity.
//
// The CRD rule on M2MClientSpec.Claims spells out the same list (a marker cannot refer to a
// variable); a test keeps the two equal. The token server drops these names from records too.
var ReservedClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"scope", "client_id", "namespace", "cnf",
	"auth_time", "acr", "amr", "roles", "groups", "entitlements",
	"act", "may_act", "azp",
}

var reservedClaimKeys = func() map[string]bool {
	m := make(map[string]bool, len(ReservedClaims))
	for _, n := range ReservedClaims {
		m[FoldClaimName(n)] = true
	}
	return m
}()

// IsReservedClaim reports whether name is a reserved claim name after Unicode case folding, so
// that "Sub" or "ſub" (long s) cannot stand in for "sub" in a resource server that matches JSON
// member names case-insensitively, as encoding/json does.
func IsReservedClaim(name string) bool { return reservedClaimKeys[FoldClaimName(name)] }

// FoldClaimName maps a claim name to a key that two names share exactly when they are equal
// under Unicode simple case folding (strings.EqualFold): every rune becomes the smallest rune of
// its folding orbit.
func FoldClaimName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < least {
			least = f
		}
	}
	return least
}
