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

package authz

import (
	"net/http"
	"strings"
)

// Headers that carry the original request to a forward-auth endpoint: nginx's auth_request
// (set in its configuration, docs/gateways/nginx.md), and Traefik's ForwardAuth and Caddy's
// forward_auth (set by the gateway itself). The host and proto headers name the URL a DPoP
// proof must be for; a gateway must overwrite every one of them, never pass a client's.
const (
	headerOriginalMethod  = "X-Original-Method"
	headerOriginalURI     = "X-Original-Uri"
	headerForwardedMethod = "X-Forwarded-Method"
	headerForwardedURI    = "X-Forwarded-Uri"
	headerForwardedHost   = "X-Forwarded-Host"
	headerForwardedProto  = "X-Forwarded-Proto"
	// headerDPoP is the DPoP header in canonical form: Header.Values would canonicalise
	// dpop.HeaderName ("DPoP") into a fresh string on every request.
	headerDPoP = "Dpop"
)

// ForwardAuth returns the HTTP forward-auth handler: 200 with the identity headers when the
// original request may pass, else 401 or 403 with an RFC 6750 challenge. audienceHeader is the
// header the gateway sets to name the audience ("" to find it by host only).
func ForwardAuth(d *Decider, audienceHeader string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := forwardedRequest(r, audienceHeader)
		dec := d.Decide(r.Context(), &req)
		writeHTTPDecision(w, &dec)
	})
}

// forwardedRequest reads the original request from the forward-auth headers; a request
// without them is taken to be the original request itself (a gateway that forwards it whole).
func forwardedRequest(r *http.Request, audienceHeader string) Request {
	h := r.Header
	req := Request{
		Method:        first(h.Get(headerOriginalMethod), h.Get(headerForwardedMethod), r.Method),
		URI:           first(h.Get(headerOriginalURI), h.Get(headerForwardedURI), r.URL.RequestURI()),
		Host:          first(h.Get(headerForwardedHost), r.Host),
		Scheme:        canonical(h, headerForwardedProto),
		Authorization: h.Values("Authorization"),
		DPoP:          h[headerDPoP],
	}
	if audienceHeader != "" {
		req.Audience = h.Get(audienceHeader)
	}
	return req
}

// canonical returns the first value of a header by its canonical key, as net/http stores the
// headers it reads, skipping the key's canonicalisation (this is the hot path of every request).
func canonical(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func writeHTTPDecision(w http.ResponseWriter, dec *Decision) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if dec.Outcome == Allow {
		setIdentity(h, dec)
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("WWW-Authenticate", dec.Challenge)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(dec.Status)
	_, _ = w.Write([]byte(http.StatusText(dec.Status) + "\n"))
}

// setIdentity sets the identity headers of an allowed decision. Each is always set, empty when
// the token has no such claim, so that a gateway copying them overwrites the client's own.
func setIdentity(h http.Header, dec *Decision) {
	c := dec.Claims
	h.Set(HeaderClientID, c.ClientID)
	h.Set(HeaderNamespace, c.Namespace)
	h.Set(HeaderScopes, strings.Join(c.Scopes, " "))
}
