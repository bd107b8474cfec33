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

import (
	"net/http"
	"time"
)

// handleToken serves POST /oauth2/token (RFC 6749 §3.2) for the grants of grants.go.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer s.observe(start)
	s.admit(w, r, errMethodNotAllowed, true, (*Server).serveToken)
}

// tokenField maps the token endpoint's own parameters (RFC 6749 §4.4.2, RFC 8707 §2).
func (req *tokenRequest) tokenField(name []byte) (uint16, *[]byte) {
	switch string(name) {
	case "grant_type":
		return pGrantType, &req.grantType
	case "scope":
		return pScope, &req.scope
	case "resource":
		return pResource, &req.resource
	case "audience":
		return pAudience, &req.audience
	}
	return 0, nil
}

// serveToken is the token request: the form and the client's credentials parsed, then the
// grant named by grant_type serves it (grants.go).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *reqState) *oauthError {
	ks := s.keys.Load()
	if ks.active == nil {
		return errNoSigningKey
	}
	if err := parseTokenRequest(r, st); err != nil {
		return err
	}
	if len(st.req.grantType) == 0 {
		return errMissingGrantType
	}
	g := grantFor(st.req.grantType)
	if g == nil {
		return errUnsupportedGrant
	}
	return g.issue(s, w, r, st, ks.active)
}
