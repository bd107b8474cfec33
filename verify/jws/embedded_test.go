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

package jws_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// TestParseEmbeddedKey: only ParseEmbeddedKey lets "jwk" through, and nothing else Parse
// refuses.
func TestParseEmbeddedKey(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := func(h string) string { return enc([]byte(h)) + "." + enc([]byte("{}")) + "." }
	withJWK := tok(`{"alg":"ES256","jwk":{"kty":"EC"}}`)
	if _, err := jws.Parse(withJWK); !errors.Is(err, jws.ErrHeader) {
		t.Fatalf("Parse accepted a jwk header: %v", err)
	}
	_, jwk, err := jws.ParseEmbeddedKey(withJWK)
	if err != nil || string(jwk) != `{"kty":"EC"}` {
		t.Fatalf("ParseEmbeddedKey = %q, %v", jwk, err)
	}
	if _, _, err := jws.ParseEmbeddedKey(tok(`{"alg":"ES256"}`)); !errors.Is(err, jws.ErrMalformed) {
		t.Fatalf("no jwk: %v", err)
	}
	for _, h := range []string{`{"jwk":{},"jku":"x"}`, `{"jwk":{},"x5c":[]}`, `{"jwk":{},"crit":["b64"]}`} {
		if _, _, err := jws.ParseEmbeddedKey(tok(h)); !errors.Is(err, jws.ErrHeader) {
			t.Fatalf("%s: %v", h, err)
		}
	}
}
