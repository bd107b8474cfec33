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

// Package jwshdr holds the JOSE header as the module's JWS parsers read it (verify, and the
// token server's client assertions).
package jwshdr

import "github.com/go-jose/go-jose/v4/json"

// Header is the part of a JOSE header the parsers look at. Parameters that would let a token
// choose its own key (jwk, jku, x5u, x5c) or change how it is processed (crit, b64, and the JWE
// parameters enc and zip) are captured as raw JSON only to detect their presence and refuse it.
type Header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
	JWK  json.RawMessage `json:"jwk"`
	JKU  json.RawMessage `json:"jku"`
	X5U  json.RawMessage `json:"x5u"`
	X5C  json.RawMessage `json:"x5c"`
	B64  json.RawMessage `json:"b64"`
	Enc  json.RawMessage `json:"enc"`
	Zip  json.RawMessage `json:"zip"`
}

// Untrusted reports whether any of those refused parameters is present.
func (h *Header) Untrusted() bool {
	return h.Crit != nil || h.JWK != nil || h.JKU != nil || h.X5U != nil || h.X5C != nil ||
		h.B64 != nil || h.Enc != nil || h.Zip != nil
}
