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
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/verify"
)

// Defaults of the options.
const (
	DefaultIssuer      = "https://m2m-tokenserver.m2m-system.svc"
	DefaultAddr        = ":8080"
	DefaultGRPCAddr    = ":9001"
	DefaultMetricsAddr = ":9090"
)

// Options configure m2m authz.
type Options struct {
	// Issuer is the token server's issuer URL; its RFC 8414 metadata names the JWKS.
	Issuer string
	// IssuerCAFile is a PEM bundle to trust for the issuer's metadata and JWKS ("" = system roots).
	IssuerCAFile string
	// Addr serves HTTP forward-auth (nginx, Traefik, Caddy); GRPCAddr the ext_authz service
	// (Envoy, Istio; "" turns it off); MetricsAddr /healthz, /readyz and /metrics.
	Addr, GRPCAddr, MetricsAddr string
	// AudienceHeader names the header that gateways set to the API's audience ("" = find the
	// audience by host). A gateway must set it on every request, overwriting the client's.
	AudienceHeader string
	// Hosts maps request hosts to audiences (--host-audience).
	Hosts map[string]string
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// RevocationList makes the verifier honour the issuer's revocation list (on by default):
	// fetched at start and every RevocationRefresh; once it cannot be refreshed for
	// verify.DefaultRevocationStaleness every token is refused, unless RevocationFailOpen.
	RevocationList     bool
	RevocationRefresh  time.Duration
	RevocationFailOpen bool
	// VerifyOptions are added to the verifier's own (issuer discovery, any audience, the HTTP
	// client, the revocation list): the place for further verification features.
	VerifyOptions []verify.Option
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Issuer: DefaultIssuer, Addr: DefaultAddr, GRPCAddr: DefaultGRPCAddr, MetricsAddr: DefaultMetricsAddr,
		Hosts: map[string]string{}, ShutdownTimeout: 10 * time.Second,
		RevocationList: true, RevocationRefresh: verify.DefaultRevocationRefresh}
}

// VerifierOptions are the verification options these options make: the revocation list's,
// then VerifyOptions.
func (o *Options) VerifierOptions() []verify.Option {
	var vo []verify.Option
	if o.RevocationList {
		vo = append(vo, verify.WithRevocationList(), verify.WithRevocationRefresh(o.RevocationRefresh))
		if o.RevocationFailOpen {
			vo = append(vo, verify.WithRevocationFailOpen())
		}
	}
	return append(vo, o.VerifyOptions...)
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	d := DefaultOptions()
	if o.Hosts == nil {
		o.Hosts = map[string]string{}
	}
	fs.StringVar(&o.Issuer, "issuer", d.Issuer, "the token server's issuer URL: tokens must carry it as iss; its RFC 8414 metadata names the JWKS")
	fs.StringVar(&o.IssuerCAFile, "issuer-ca-file", "", "PEM CA bundle trusted for the issuer's metadata, JWKS and revocation list (the token server's ca.crt), re-read when it changes; empty: the system roots")
	fs.StringVar(&o.Addr, "addr", d.Addr, "listen address of HTTP forward-auth (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth)")
	fs.StringVar(&o.GRPCAddr, "grpc-addr", d.GRPCAddr, "listen address of the Envoy/Istio ext_authz gRPC service (envoy.service.auth.v3.Authorization); empty: off")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", d.MetricsAddr, "listen address of the plain-HTTP port serving /healthz, /readyz and /metrics")
	fs.StringVar(&o.AudienceHeader, "audience-header", "", "request header naming the API's audience, set by the gateway's configuration on every request (never trusted from clients: the gateway must overwrite it); empty: the audience is found by host")
	fs.Var(hostFlag(o.Hosts), "host-audience", "host=audience: requests for this Host are for this audience (repeatable); without one, a host is the audience of the policy whose audience is the host or https://<host>")
	fs.BoolVar(&o.RevocationList, "revocation-list", d.RevocationList, "refuse tokens the issuer revoked (its m2m_revocation_list_uri, fetched at start and every --revocation-refresh); m2m authz is not ready until the first list is fetched")
	fs.DurationVar(&o.RevocationRefresh, "revocation-refresh", d.RevocationRefresh, "how often the revocation list is fetched, [100ms, 1m]: a revoked token is refused within about this long")
	fs.BoolVar(&o.RevocationFailOpen, "revocation-fail-open", false, "keep accepting tokens (checked against the last list) when the revocation list cannot be refreshed for "+verify.DefaultRevocationStaleness.String()+"; default: refuse every token then (fail closed)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "graceful shutdown limit")
}

func (o *Options) complete() error {
	if o.Issuer == "" {
		return errors.New("--issuer is required")
	}
	if o.Addr == "" {
		return errors.New("--addr is required")
	}
	if o.MetricsAddr == "" {
		return errors.New("--metrics-addr is required")
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultOptions().ShutdownTimeout
	}
	return nil
}

// hostFlag is the repeatable host=audience flag.
type hostFlag map[string]string

func (h hostFlag) String() string {
	var parts []string
	for k, v := range h {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (h hostFlag) Set(s string) error {
	host, aud, ok := strings.Cut(s, "=")
	host = hostOnly(host)
	if !ok || host == "" || aud == "" {
		return fmt.Errorf("want host=audience, got %q", s)
	}
	h[host] = aud
	return nil
}
