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

// The client credentials grant (RFC 6749 §4.4): the client authenticates and gets a token for
// one of its audiences, with scopes that audience grants it.

import "net/http"

// grantClientCredentials is the grant_type of RFC 6749 §4.4.2.
const grantClientCredentials = "client_credentials"

// issueClientCredentials authenticates the client, applies its issuance rate limit, chooses the
// audience and scopes, and mints the token.
func (s *Server) issueClientCredentials(w http.ResponseWriter, r *http.Request, st *reqState, sig *signer) *oauthError {
	req := &st.req
	now := s.opts.Clock()
	c, err := s.authenticate(r.Context(), req, now)
	if err != nil {
		return err
	}
	st.client = c // a refusal from here on is audited with the client it authenticated
	if c.disabled {
		return errDisabled
	}
	if err := allowIssue(c); err != nil {
		return err
	}
	aud, scope, err := c.authorize(req, st)
	if err != nil {
		return err
	}
	switch {
	case hasProof(r):
		if st.jkt, err = s.checkProof(r, c, now); err != nil {
			return err
		}
	case c.requireDPoP:
		return errClientRequiresDPoP
	case aud.requireDPoP:
		return errAudienceRequiresDPoP
	}
	return s.writeToken(w, st, sig, c, aud, scope, now)
}
