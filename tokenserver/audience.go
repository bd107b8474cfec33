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

// Audience and scope choice: which of the client's audiences a token is for, and which scopes it
// carries (RFC 6749 §3.3, RFC 8707).

import "bytes"

// maxScopes bounds the scope tokens of one request.
const maxScopes = 64

// authorize picks the audience and the scopes: the named target (resource or audience), else
// the client's only audience, else the only audience granting every requested scope.
func (c *Client) authorize(req *tokenRequest, st *reqState) (*audience, []byte, *oauthError) {
	if !validScope(req.scope) {
		return nil, nil, errScopeMalformed
	}
	aud, err := c.resolveAudience(req)
	if err != nil {
		return nil, nil, err
	}
	if len(req.scope) == 0 {
		if aud.allScopes == "" {
			return nil, nil, errScopeEmpty
		}
		st.scope = append(st.scope[:0], aud.allScopes...)
		return aud, st.scope, nil
	}
	if !aud.holdsAll(req.scope) {
		return nil, nil, errScopeNotGranted
	}
	return aud, dedupeScopes(req.scope, st), nil
}

func (c *Client) resolveAudience(req *tokenRequest) (*audience, *oauthError) {
	target := req.resource
	if len(req.audience) > 0 {
		if len(target) > 0 && !bytes.Equal(target, req.audience) {
			return nil, errResourceAudience
		}
		target = req.audience
	}
	if len(target) > 0 {
		if a := c.grant(target); a != nil {
			return a, nil
		}
		return nil, errTargetUnknown
	}
	switch len(c.audiences) {
	case 0:
		return nil, errNothingGranted
	case 1:
		return c.audiences[0], nil
	}
	if len(req.scope) == 0 {
		return nil, errTargetAmbiguous
	}
	var found *audience
	for _, a := range c.audiences {
		if !a.holdsAll(req.scope) {
			continue
		}
		if found != nil {
			return nil, errTargetAmbiguous
		}
		found = a
	}
	if found == nil {
		return nil, errTargetUnknown
	}
	return found, nil
}

// validScope checks an RFC 6749 §3.3 scope: scope-tokens separated by single spaces (an empty
// scope is absent, which is valid).
func validScope(scope []byte) bool {
	if len(scope) == 0 {
		return true
	}
	start, n := 0, 0
	for i := 0; i <= len(scope); i++ {
		if i < len(scope) && scope[i] != ' ' {
			continue
		}
		if n++; n > maxScopes || !validScopeToken(scope[start:i]) {
			return false
		}
		start = i + 1
	}
	return true
}

var spaceSep = []byte{' '}

// holdsAll reports whether the audience grants every scope-token of a valid scope.
func (a *audience) holdsAll(scope []byte) bool {
	for rest := scope; len(rest) > 0; {
		tok, tail, _ := bytes.Cut(rest, spaceSep)
		if _, ok := a.scopes[string(tok)]; !ok {
			return false
		}
		rest = tail
	}
	return true
}

// dedupeScopes returns the requested scope with repeated tokens dropped (order kept).
func dedupeScopes(scope []byte, st *reqState) []byte {
	out := st.scope[:0]
	for rest := scope; len(rest) > 0; {
		tok, tail, _ := bytes.Cut(rest, spaceSep)
		rest = tail
		if containsToken(out, tok) {
			continue
		}
		if len(out) > 0 {
			out = append(out, ' ')
		}
		out = append(out, tok...)
	}
	st.scope = out
	return out
}

func containsToken(list, tok []byte) bool {
	for rest := list; len(rest) > 0; {
		t, tail, _ := bytes.Cut(rest, spaceSep)
		if bytes.Equal(t, tok) {
			return true
		}
		rest = tail
	}
	return false
}

// grant returns the audience of that name, or nil.
func (c *Client) grant(name []byte) *audience {
	for _, a := range c.audiences {
		if a.name == string(name) {
			return a
		}
	}
	return nil
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token: one or more of
// %x21 / %x23-5B / %x5D-7E.
func validScopeToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// holdsEach reports whether the audience still grants every scope.
func (a *audience) holdsEach(scopes []string) bool {
	for _, sc := range scopes {
		if _, ok := a.scopes[sc]; !ok {
			return false
		}
	}
	return true
}
