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
	"context"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// ExtAuthz is the Envoy / Istio external authorization service
// (envoy.service.auth.v3.Authorization): the same decisions as ForwardAuth, from the request
// attributes Envoy sends.
type ExtAuthz struct {
	authv3.UnimplementedAuthorizationServer
	decider *Decider
	// audienceHeader is lower case: Envoy sends header names in lower case.
	audienceHeader string
}

// ContextExtensionAudience is the ext_authz context extension naming the route's audience
// (check_settings.context_extensions in Envoy's per-route ExtAuthzPerRoute); it takes
// precedence over the audience header and the host.
const ContextExtensionAudience = "m2m-audience"

// NewExtAuthz returns the ext_authz service; audienceHeader as for ForwardAuth.
func NewExtAuthz(d *Decider, audienceHeader string) *ExtAuthz {
	return &ExtAuthz{decider: d, audienceHeader: strings.ToLower(audienceHeader)}
}

// Check answers one request. Allowed: OkHttpResponse with the identity headers, overwriting,
// and every other client-supplied x-m2m-* header removed (the audience header included). Denied: DeniedHttpResponse with the
// status, the RFC 6750 challenge and a one-line body. A request without HTTP attributes is
// denied as one without a token would be.
func (s *ExtAuthz) Check(ctx context.Context, in *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := in.GetAttributes().GetRequest().GetHttp()
	headers := h.GetHeaders()
	req := Request{Method: h.GetMethod(), URI: h.GetPath(), Host: first(h.GetHost(), headers[":authority"]), Scheme: h.GetScheme()}
	if v, ok := headers["authorization"]; ok {
		req.Authorization = []string{v}
	}
	// Envoy joins repeated headers with ",", which no proof contains: two proofs fail as one.
	if v, ok := headers["dpop"]; ok {
		req.DPoP = []string{v}
	}
	if s.audienceHeader != "" {
		req.Audience = headers[s.audienceHeader]
	}
	// A per-route context extension is Envoy's own configuration: no client can set it.
	if aud := in.GetAttributes().GetContextExtensions()[ContextExtensionAudience]; aud != "" {
		req.Audience = aud
	}
	dec := s.decider.Decide(ctx, &req)
	if dec.Outcome == Allow {
		return allowed(&dec, headers), nil
	}
	return denied(&dec), nil
}

func allowed(dec *Decision, headers map[string]string) *authv3.CheckResponse {
	c := dec.Claims
	ok := &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{
		overwrite(HeaderClientID, c.ClientID),
		overwrite(HeaderNamespace, c.Namespace),
		overwrite(HeaderScopes, strings.Join(c.Scopes, " ")),
	}}
	for name := range headers {
		if strings.HasPrefix(name, identityPrefix) && !isIdentityHeader(name) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

func isIdentityHeader(lower string) bool {
	return strings.EqualFold(lower, HeaderClientID) || strings.EqualFold(lower, HeaderNamespace) || strings.EqualFold(lower, HeaderScopes)
}

func denied(dec *Decision) *authv3.CheckResponse {
	code := codes.PermissionDenied
	if dec.Status == http.StatusUnauthorized {
		code = codes.Unauthenticated
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(dec.Status)},
			Headers: []*corev3.HeaderValueOption{
				overwrite("WWW-Authenticate", dec.Challenge),
				overwrite("Content-Type", "text/plain; charset=utf-8"),
				overwrite("Cache-Control", "no-store"),
			},
			Body: http.StatusText(dec.Status) + "\n",
		}},
	}
}

func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: strings.ToLower(name), Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
