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
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// Endpoint paths, below the issuer's path.
const (
	TokenPath         = "/oauth2/token"
	IntrospectionPath = "/oauth2/introspect"
	JWKSPath          = "/.well-known/jwks.json"
	ASMetadataPath    = "/.well-known/oauth-authorization-server"
	OIDCMetadataPath  = "/.well-known/openid-configuration"
)

// authorizationServerMetadata is the RFC 8414 document, served at both well-known paths; it
// also carries the OpenID Connect Discovery 1.0 §3 fields that relying parties validating JWTs
// from a non-login issuer read (RFC 8414 §7.1.2 registers them as authorization server
// metadata too). Only endpoints this server has are named: no authorization_endpoint, no
// userinfo_endpoint.
type authorizationServerMetadata struct {
	Issuer                                    string   `json:"issuer"`
	TokenEndpoint                             string   `json:"token_endpoint"`
	JWKSURI                                   string   `json:"jwks_uri"`
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	GrantTypesSupported                       []string `json:"grant_types_supported"`
	ResponseTypesSupported                    []string `json:"response_types_supported"`
	SubjectTypesSupported                     []string `json:"subject_types_supported"`
	IDTokenSigningAlgsSupported               []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported         []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgsSupported     []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	// RevocationListURI is this server's own field (no RFC defines one): where verifiers fetch
	// the signed list of revoked tokens (revocation.go, docs/security.md "Revocation").
	RevocationListURI string `json:"m2m_revocation_list_uri"`
	// DPoPSigningAlgs are the DPoP proof algorithms accepted (RFC 9449 §5.1).
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`
}

// buildMetadata encodes the metadata for the algorithms of the published signing keys.
//
//   - response_types_supported is REQUIRED and non-empty (RFC 8414 §2, OIDC Discovery §3;
//     Authlib's validators refuse []). This server has no authorization endpoint, so no response
//     type can actually be used; like Kubernetes' ServiceAccount issuer discovery document (also
//     a non-login issuer), it publishes ["id_token"], and names no authorization endpoint.
//   - subject_types_supported: ["public"], the same sub (the client id) for every audience.
//   - id_token_signing_alg_values_supported: what go-oidc's default verifier (and so
//     oauth2-proxy) accepts tokens signed with. It lists the algorithm of every published key,
//     the active key's first, so a verifier that reads the document while a next key of another
//     algorithm is published keeps working after the switch. OIDC Discovery §3 requires RS256 in
//     the list (Authlib checks it), so it is added when no key uses it: a verifier allowing RS256
//     still needs an RSA key from this JWKS, and there is none then. Before any key is loaded
//     it lists every algorithm the server can sign with.
func buildMetadata(issuer string, signingAlgs []string) ([]byte, error) {
	methods := advertisedAuthMethods()
	algs := credential.ClientAssertionAlgorithms
	idTokenAlgs := slices.Clone(signingAlgs)
	if len(idTokenAlgs) == 0 {
		// No key loaded yet (the server is not ready): every algorithm it may sign with, so
		// that a verifier reading the document now (go-oidc reads it once) still accepts the
		// tokens of the key that arrives.
		idTokenAlgs = []string{signingkey.ES256, signingkey.RS256, signingkey.EdDSA}
	}
	if !slices.Contains(idTokenAlgs, signingkey.RS256) {
		idTokenAlgs = append(idTokenAlgs, signingkey.RS256)
	}
	b, err := json.Marshal(authorizationServerMetadata{
		Issuer:                                    issuer,
		TokenEndpoint:                             issuer + TokenPath,
		JWKSURI:                                   issuer + JWKSPath,
		IntrospectionEndpoint:                     issuer + IntrospectionPath,
		GrantTypesSupported:                       grantTypeNames(),
		ResponseTypesSupported:                    []string{"id_token"},
		SubjectTypesSupported:                     []string{"public"},
		IDTokenSigningAlgsSupported:               idTokenAlgs,
		TokenEndpointAuthMethodsSupported:         methods,
		TokenEndpointAuthSigningAlgsSupported:     algs,
		IntrospectionEndpointAuthMethodsSupported: methods,
		IntrospectionEndpointAuthSigningAlgs:      algs,
		RevocationListURI:                         issuer + RevocationsPath,
		DPoPSigningAlgs:                           dpop.DefaultAlgorithms,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the metadata: %w", err)
	}
	return b, nil
}

// allowGet refuses methods other than GET and HEAD with 405 and Allow.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header()["Allow"] = hdrAllowGet
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// handleJWKS serves the precomputed JWKS with a strong ETag; If-None-Match answers 304.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	ks := s.keys.Load()
	h := w.Header()
	h["Etag"] = []string{ks.etag}
	h["Cache-Control"] = s.publicCache
	if etagMatches(r.Header["If-None-Match"], ks.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(len(ks.jwks))}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(ks.jwks)
}

// etagMatches applies If-None-Match (RFC 9110 §13.1.2: "*" or a list, compared weakly).
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// handleMetadata serves the RFC 8414 authorization server metadata of the loaded key set.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	ks := s.keys.Load()
	h := w.Header()
	md := ks.metadata
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = s.publicCache
	h["Content-Length"] = []string{strconv.Itoa(len(md))}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(md)
}

// handleHealthz is always ok while the server serves.
func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte("ok"))
}

// handleReadyz is ok once both informers have synced and an active signing key is loaded.
func (s *Server) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	if reason := s.notReady(); reason != "" {
		http.Error(w, reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}
