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

// Grant handling: the token endpoint's grant types (RFC 6749 §4), by grant_type. Adding a grant
// is one file (grant_*.go, its issue function) and one entry in grantTypes. Parameters of its
// own (RFC 8693's subject_token, say) it reads with st.req.param, which refuses a repeated one
// as for every other parameter.

import "net/http"

// grantType is one grant_type the token endpoint serves.
type grantType struct {
	// name is the grant_type value (also listed in the metadata's grant_types_supported).
	name string
	// issue serves a token request of this grant once the prelude, the form, the client's
	// credentials (parsed, not yet checked) and an active signing key are in place: it
	// authenticates the client, decides, and writes the token or returns the refusal.
	issue func(s *Server, w http.ResponseWriter, r *http.Request, st *reqState, sig *signer) *oauthError
}

// grantTypes are the grants the token endpoint serves.
var grantTypes = [...]grantType{
	{name: grantClientCredentials, issue: (*Server).issueClientCredentials},
}

// grantFor returns the grant named by grant_type, or nil.
func grantFor(name []byte) *grantType {
	for i := range grantTypes {
		if grantTypes[i].name == string(name) {
			return &grantTypes[i]
		}
	}
	return nil
}

// grantTypeNames are the names of every grant, for the metadata.
func grantTypeNames() []string {
	names := make([]string, len(grantTypes))
	for i := range grantTypes {
		names[i] = grantTypes[i].name
	}
	return names
}
