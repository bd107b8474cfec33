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

package credential

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func jwksWith(t *testing.T, key any, alg string) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k", Algorithm: alg, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEd25519KeysVerifyBothNames: an Ed25519 key verifies "EdDSA" and RFC 9864's "Ed25519",
// whichever of the two (or none) its JWK declares; an EC key verifies neither.
func TestEd25519KeysVerifyBothNames(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, declared := range []string{"", "EdDSA", "Ed25519"} {
		keys, err := ParseClientJWKS(jwksWith(t, edPub, declared))
		if err != nil {
			t.Fatalf("alg %q: %v", declared, err)
		}
		if got := keys[0].Algs; !slices.Equal(got, []string{"EdDSA", "Ed25519"}) {
			t.Errorf("alg %q: the key verifies %v, want EdDSA and Ed25519", declared, got)
		}
		again, err := PublicJWKS(keys)
		if err != nil {
			t.Fatal(err)
		}
		if rt, err := ParseClientJWKS(again); err != nil || !slices.Equal(rt[0].Algs, keys[0].Algs) {
			t.Errorf("alg %q: the record's JWKS round-trips to %v, %v", declared, rt, err)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, alg := range []string{"Ed25519", "EdDSA"} {
		if _, err := ParseClientJWKS(jwksWith(t, ec.Public(), alg)); err == nil {
			t.Errorf("an EC key declaring %s was accepted", alg)
		}
	}
	keys, err := ParseClientJWKS(jwksWith(t, ec.Public(), ""))
	if err != nil || fmt.Sprint(keys[0].Algs) != "[ES256]" {
		t.Fatalf("EC key: %v %v", keys, err)
	}
	if !slices.Contains(ClientAssertionAlgorithms, "Ed25519") || !slices.Contains(ClientAssertionAlgorithms, "EdDSA") {
		t.Errorf("ClientAssertionAlgorithms %v lack a name of Ed25519", ClientAssertionAlgorithms)
	}
}
