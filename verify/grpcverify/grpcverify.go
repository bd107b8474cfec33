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

// Package grpcverify provides gRPC server interceptors that verify the access token of every
// call with a [verify.Verifier]. It is a separate package so that plain HTTP users of verify do
// not import gRPC.
//
// The token travels in the "authorization" metadata as "Bearer <token>", or, DPoP-bound, as
// "DPoP <token>" with its proof in the "dpop" metadata (RFC 9449 §7.1; the proof's htm is POST
// and its htu the URL set with [DPoPURL] followed by the full method name). A call without a
// valid token fails with codes.Unauthenticated, one without the required scopes with
// codes.PermissionDenied. Handlers read the verified claims with [verify.FromContext].
package grpcverify

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/m2m-dev/m2m-operator/verify"
)

// Option configures the interceptors.
type Option func(*policy)

// policy says which scopes each method needs.
type policy struct {
	scopes       []string            // required by every method without its own entry
	methodScopes map[string][]string // full method name -> required scopes
	skip         map[string]bool     // methods that need no token
	dpopURL      string              // base of the htu of DPoP proofs; "" refuses DPoP
}

// DPoPURL accepts DPoP-bound tokens: a call's proof must name the URL base + full method name
// ("https://billing.example.com" + "/billing.v1.Invoices/List"), the URL clients dial. gRPC
// has no request URL the server can trust to rebuild it, hence the option.
func DPoPURL(base string) Option {
	return func(p *policy) { p.dpopURL = strings.TrimSuffix(base, "/") }
}

// RequireScopes sets the scopes every method needs unless [RequireMethodScopes] names it.
func RequireScopes(scopes ...string) Option {
	return func(p *policy) { p.scopes = append([]string(nil), scopes...) }
}

// RequireMethodScopes sets the scopes one method needs instead of the default ones.
// fullMethod is "/package.Service/Method".
func RequireMethodScopes(fullMethod string, scopes ...string) Option {
	return func(p *policy) { p.methodScopes[fullMethod] = append([]string(nil), scopes...) }
}

// SkipMethods lets the named methods through without a token, for example
// "/grpc.health.v1.Health/Check" for kubelet probes. Their handlers see no claims.
func SkipMethods(fullMethods ...string) Option {
	return func(p *policy) {
		for _, m := range fullMethods {
			p.skip[m] = true
		}
	}
}

func newPolicy(opts []Option) *policy {
	p := &policy{methodScopes: map[string][]string{}, skip: map[string]bool{}}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// UnaryServerInterceptor verifies the token of each unary call and puts the claims in the
// handler's context.
func UnaryServerInterceptor(v *verify.Verifier, opts ...Option) grpc.UnaryServerInterceptor {
	p := newPolicy(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := p.authorize(ctx, v, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor verifies the token when a stream opens and puts the claims in the
// stream's context.
func StreamServerInterceptor(v *verify.Verifier, opts ...Option) grpc.StreamServerInterceptor {
	p := newPolicy(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := p.authorize(ss.Context(), v, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

// contextStream overrides the context of a server stream.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the context carrying the claims.
func (s *contextStream) Context() context.Context { return s.ctx }

// authorize verifies the call's token and checks the method's scopes.
func (p *policy) authorize(ctx context.Context, v *verify.Verifier, method string) (context.Context, error) {
	if p.skip[method] {
		return ctx, nil
	}
	claims, err := p.verify(ctx, v, method)
	if err != nil {
		return nil, err
	}
	required, ok := p.methodScopes[method]
	if !ok {
		required = p.scopes
	}
	if !claims.HasAllScopes(required...) {
		return nil, status.Errorf(codes.PermissionDenied, "insufficient scope: requires %s", strings.Join(required, " "))
	}
	return verify.NewContext(ctx, claims), nil
}

// verify checks the call's credentials: a Bearer token, or a DPoP token and its proof.
func (p *policy) verify(ctx context.Context, v *verify.Verifier, method string) (*verify.Claims, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if values := md.Get("authorization"); len(values) == 1 && v.DPoPAccepted() {
		if token, isDPoP := verify.DPoPToken(values[0]); isDPoP {
			return p.verifyDPoP(ctx, v, md, token, method)
		}
	}
	token, err := bearerToken(md)
	if err != nil {
		return nil, err
	}
	claims, err := v.Verify(ctx, token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, verify.Describe(err))
	}
	return claims, nil
}

// verifyDPoP checks "DPoP <token>" and the single "dpop" proof of the call.
func (p *policy) verifyDPoP(ctx context.Context, v *verify.Verifier, md metadata.MD, token, method string) (*verify.Claims, error) {
	if p.dpopURL == "" {
		return nil, status.Error(codes.Unauthenticated, "DPoP-bound tokens are not accepted here")
	}
	proofs := md.Get("dpop")
	if token == "" || len(proofs) != 1 {
		return nil, status.Error(codes.Unauthenticated, "DPoP credentials need a token and exactly one dpop proof")
	}
	claims, err := v.VerifyDPoP(ctx, token, proofs[0], "POST", p.dpopURL+method)
	if err != nil {
		if errors.Is(err, verify.ErrDPoPNonce) {
			_ = grpc.SetHeader(ctx, metadata.Pairs("dpop-nonce", v.Nonce()))
		}
		return nil, status.Error(codes.Unauthenticated, verify.Describe(err))
	}
	return claims, nil
}

// bearerToken reads the single "authorization" metadata value.
func bearerToken(md metadata.MD) (string, error) {
	values := md.Get("authorization")
	switch len(values) {
	case 0:
		return "", status.Error(codes.Unauthenticated, "missing bearer token")
	case 1:
	default:
		return "", status.Error(codes.Unauthenticated, "multiple authorization values")
	}
	token, ok := verify.BearerToken(values[0])
	if !ok {
		return "", status.Error(codes.Unauthenticated, "malformed bearer token")
	}
	return token, nil
}
