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
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"k8s.io/client-go/rest"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/m2m-dev/m2m-operator/verify"
)

// NewVerifier builds the one verifier of every audience: the issuer's metadata and JWKS
// (trusting caFile when set), any audience (the decision checks it against the request's), the
// verifier's token cache, and extra, the verification features added by options. It retries the
// discovery until ctx ends, so that m2m authz can start before the token server.
func NewVerifier(ctx context.Context, issuer, caFile string, log logr.Logger, extra ...verify.Option) (*verify.Verifier, error) {
	opts := []verify.Option{verify.WithAnyAudience()}
	if caFile != "" {
		c, err := httpClientTrusting(caFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, verify.WithHTTPClient(c))
	}
	opts = append(opts, extra...)
	for {
		v, err := verify.New(ctx, issuer, "", opts...)
		if err == nil {
			return v, nil
		}
		log.Info("issuer discovery failed; retrying", "issuer", issuer, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("discovering issuer %s: %w", issuer, err)
		case <-time.After(2 * time.Second):
		}
	}
}

// httpClientTrusting returns a client trusting the CA bundle in caFile, re-read when it
// changes (caTrust).
func httpClientTrusting(caFile string) (*http.Client, error) {
	t, err := newCATrust(caFile)
	if err != nil {
		return nil, err
	}
	return t.client(), nil
}

// Run serves m2m authz until ctx ends: forward-auth on opts.Addr, ext_authz on opts.GRPCAddr,
// probes and metrics on opts.MetricsAddr. /readyz answers 200 once the issuer's keys are loaded
// and the first route table is in force.
func Run(ctx context.Context, cfg *rest.Config, opts Options, log logr.Logger) error {
	if err := opts.complete(); err != nil {
		return err
	}
	ready := make(chan struct{})
	metricsLn, err := net.Listen("tcp", opts.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listening on %s (--metrics-addr): %w", opts.MetricsAddr, err)
	}
	// The decider exists before the verifier so that the probes and metrics answer during the
	// issuer discovery.
	lazy := &lazyVerifier{ready: make(chan struct{})}
	d := NewDecider(lazy, opts.Hosts)
	metricsSrv := &http.Server{Handler: probes(d, ready), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = metricsSrv.Serve(metricsLn) }()
	defer func() { _ = metricsSrv.Close() }()

	pol, err := NewPolicies(cfg, d, log.WithName("policies"))
	if err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- pol.Run(ctx) }()
	v, err := NewVerifier(ctx, opts.Issuer, opts.IssuerCAFile, log, opts.VerifierOptions()...)
	if err != nil {
		return err
	}
	defer v.Close() // stops the revocation list's refresh
	lazy.set(v)
	select {
	case <-pol.Synced():
	case err := <-errc:
		return err
	}
	close(ready)
	return serve(ctx, opts, d, log, errc)
}

func serve(ctx context.Context, opts Options, d *Decider, log logr.Logger, errc chan error) error {
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s (--addr): %w", opts.Addr, err)
	}
	httpSrv := &http.Server{Handler: ForwardAuth(d, opts.AudienceHeader), ReadHeaderTimeout: 5 * time.Second}
	go func() { errc <- ignoreClosed(httpSrv.Serve(ln)) }()
	var grpcSrv *grpc.Server
	if opts.GRPCAddr != "" {
		gln, err := net.Listen("tcp", opts.GRPCAddr)
		if err != nil {
			_ = httpSrv.Close()
			return fmt.Errorf("listening on %s (--grpc-addr): %w", opts.GRPCAddr, err)
		}
		grpcSrv = grpc.NewServer()
		authv3.RegisterAuthorizationServer(grpcSrv, NewExtAuthz(d, opts.AudienceHeader))
		go func() { errc <- grpcSrv.Serve(gln) }()
	}
	log.Info("m2m authz serving", "addr", ln.Addr().String(), "grpcAddr", opts.GRPCAddr, "issuer", opts.Issuer)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if grpcSrv != nil {
		grpcSrv.GracefulStop()
	}
	return httpSrv.Shutdown(shutdown)
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// probes serves /healthz, /readyz and /metrics.
func probes(d *Decider, ready <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			_, _ = w.Write([]byte("ok\n"))
		default:
			http.Error(w, "not ready: issuer keys or policies not loaded", http.StatusServiceUnavailable)
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// lazyVerifier fails every token until the real verifier is set (only before /readyz is 200).
type lazyVerifier struct {
	ready chan struct{}
	v     *verify.Verifier
}

func (l *lazyVerifier) set(v *verify.Verifier) {
	l.v = v
	close(l.ready)
}

func (l *lazyVerifier) Verify(ctx context.Context, token string) (*verify.Claims, error) {
	select {
	case <-l.ready:
		return l.v.Verify(ctx, token)
	default:
		return nil, errNotLoaded
	}
}

func (l *lazyVerifier) VerifyDPoP(ctx context.Context, token, proof, method, url string) (*verify.Claims, error) {
	select {
	case <-l.ready:
		return l.v.VerifyDPoP(ctx, token, proof, method, url)
	default:
		return nil, errNotLoaded
	}
}

var errNotLoaded = &verify.Error{Kind: verify.ErrKeySet, Detail: "the issuer's keys are not loaded yet"}

// Metrics returns the handler of the metrics registry, for tests and embedding.
func (d *Decider) Metrics() http.Handler {
	return promhttp.HandlerFor(d.metrics.registry, promhttp.HandlerOpts{})
}
