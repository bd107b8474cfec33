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

package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// FuzzVerify feeds hostile proofs to the parser: it never panics, every refusal matches one of
// the package's errors, and whatever it accepts carries a thumbprint and a jti.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h, c := goodParts(f, key)
	f.Add(craft(f, key, h, c))
	h["jwk"] = map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}
	f.Add(craft(f, key, h, c))
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := dpop.Verify(proof, check())
		if err != nil {
			if !errors.Is(err, dpop.ErrInvalidProof) && !errors.Is(err, dpop.ErrUseNonce) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.JKT == "" || p.ID == "" || p.Key == nil {
			t.Fatalf("accepted an incomplete proof: %+v", p)
		}
	})
}
