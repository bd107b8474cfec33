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

// Package tokenserver is the OAuth 2.0 token server: the client credentials grant (RFC 6749
// §4.4) issuing RFC 9068 JWT access tokens, token introspection (RFC 7662, see introspect.go),
// the JWKS (RFC 7517) and the authorization server metadata (RFC 8414), served from an
// in-memory index of credential records and the signing-key Secret, both watched with informers
// restricted to the system namespace. With Options.TLSSecret it serves HTTPS with the
// certificate of that Secret, watched too and reloaded on change without a restart.
//
// The hot path never calls the API server and never takes a lock: a token request is a map
// lookup in an immutable snapshot, a constant-time hash compare, one signature and one write.
//
// Choices where the RFCs leave room:
//   - The client is authenticated before anything about it is revealed. A wrong secret, an
//     unknown id, a broken record and a record whose method is not ClientSecret all answer the
//     same 401 invalid_client. A disabled client that authenticates correctly gets 400
//     unauthorized_client ("not authorized to use this grant", RFC 6749 §5.2): it has proved who
//     it is, so telling it why is safe and saves its operators a guess.
//   - A failed client authentication is 401 with WWW-Authenticate: Basic when the client used the
//     Authorization header (RFC 6749 §5.2), and 400 invalid_client otherwise (client_secret_post,
//     a client assertion, no credentials): RFC 9110 §11.6.1 requires WWW-Authenticate on every
//     401, and a challenge for a scheme the client did not use misleads OAuth libraries.
//   - resource (RFC 8707) and audience name the same thing: the audience string exactly (it need
//     not be an absolute URI). Both may be sent if equal. A second resource is invalid_target
//     (one audience per token); any other repeated parameter is invalid_request.
//   - Parameters sent without a value are treated as absent (RFC 6749 §3.1). Unknown parameters
//     and the query string are ignored: credentials are read from the body or Basic only.
//   - Rate limits answer 429 with error "slow_down" and Retry-After; overload and "no signing key
//     yet" answer 503 "temporarily_unavailable" with Retry-After.
//   - Repeated authentication failures for one client id are answered 429 once its failure
//     budget is spent — but only after the secret check: a caller holding the right secret is
//     never locked out by someone else's failures (the secrets carry 256 random bits, so the
//     check is no guessing oracle). The budgets live in a fixed table indexed by a keyed hash
//     of the presented id (failures.go), for known and unknown ids alike: unknown ids cost no
//     memory, and no answer tells a known id from an unknown one.
//   - A broken credential record makes its client unknown (fail closed); a signing-key Secret
//     that cannot be loaded, or is deleted, keeps the keys loaded before (they are still the
//     installation's) until a valid one arrives.
//   - /healthz, /readyz and /metrics are served on a port of their own (Options.MetricsAddr,
//     plain HTTP), never the token port: the metrics name every audience and key id, and the
//     token Service exposes only the token port.
//   - Shutdown drains: /readyz answers 503 and responses close their connections for
//     Options.DrainDelay, so load balancers stop sending before the token listener closes;
//     then requests in flight finish (http.Server.Shutdown, within Options.ShutdownTimeout),
//     and only then does the metrics port close.
package tokenserver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/m2m-dev/m2m-operator/internal/certs"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// Timeouts of the token port's http.Server. serverReadTimeout bounds a whole request read
// (headers and body); Options.BodyReadTimeout, at most this, bounds the body alone.
const (
	serverReadHeaderTimeout = 5 * time.Second
	serverReadTimeout       = 10 * time.Second
	serverWriteTimeout      = 10 * time.Second
	serverIdleTimeout       = 120 * time.Second
)

// Server is the token server. Build it with New; feed it from the API server with
// StartInformers, or directly with Index().Put and SetKeys (tests, benchmarks).
type Server struct {
	opts     Options
	log      logr.Logger
	audit    *auditLog
	index    *Index
	keys     atomic.Pointer[keySet]
	metrics  *metrics
	inFlight atomic.Int64
	// readingBodies counts the requests whose body is being read (they hold no slot yet).
	readingBodies atomic.Int64
	// failures slows down repeated authentication failures, by presented id.
	failures *failureTable
	// refusals logs and counts refused client assertions by reason.
	refusals        *refusalLog
	clientsSynced   atomic.Bool
	keysSynced      atomic.Bool
	draining        atomic.Bool
	publicCache     []string
	wwwAuthenticate []string
	pool            sync.Pool
	handler         http.Handler
	metricsHandler  http.Handler
	verifier        *verify.Verifier
	tls             certs.Reloader
	// serviceAccounts verifies ServiceAccount tokens; nil until bound to an API server.
	serviceAccounts atomic.Pointer[serviceAccounts]
	// replayLimits bound the per-client replay sets of private_key_jwt assertions and DPoP
	// proofs.
	replayLimits *replayLimits
	// revocations caches the signed revocation list (revocation.go).
	revocations revocationLists
	// tokenURL is the token endpoint's URL as clients know it (from the issuer, never from a
	// request's Host header): the htu of DPoP proofs.
	tokenURL string
}

// New builds a server from options (zero values take the defaults).
func New(opts Options) (*Server, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger}
	if s.log.GetSink() == nil {
		s.log = ctrllog.Log.WithName("tokenserver")
	}
	empty, err := emptyKeySet().withMetadata(opts.Issuer)
	if err != nil {
		return nil, err
	}
	s.keys.Store(empty)
	s.metrics = newMetrics(s)
	s.audit = newAuditLog(opts.AuditLog, s.log.WithName("audit"), s.metrics)
	s.refusals = newRefusalLog(s.metrics.assertionRefused)
	s.failures = newFailureTable(rate.Limit(opts.AuthFailureRate), opts.AuthFailureBurst)
	s.replayLimits = newReplayLimits(rate.Limit(opts.RateLimit), opts.RateBurst, opts.MaxAssertionLifetime, opts.DPoPProofWindow)
	s.index = newIndex(indexConfig{
		issuer:     opts.Issuer,
		issueRate:  rate.Limit(opts.RateLimit),
		issueBurst: opts.RateBurst,
		replay:     s.replayLimits,
		log:        s.log.WithName("index"),
		audiences:  s.metrics.issued,
		onCountsChange: func(loaded, broken int) {
			s.metrics.clientsLoaded.Set(float64(loaded))
			s.metrics.brokenRecords.Set(float64(broken))
		},
		onBroken: s.metrics.brokenTotal.Inc,
	})
	if s.verifier, err = s.newIntrospectionVerifier(); err != nil {
		return nil, fmt.Errorf("building the introspection verifier: %w", err)
	}
	s.tokenURL = opts.Issuer + TokenPath
	s.publicCache = []string{"public, max-age=" + strconv.Itoa(int(opts.JWKSMaxAge/time.Second))}
	s.wwwAuthenticate = []string{`Basic realm="` + opts.Issuer + `", charset="UTF-8"`}
	s.pool.New = func() any {
		return &reqState{body: make([]byte, 0, 1024), out: make([]byte, 0, 1024), payload: make([]byte, 0, 512)}
	}
	s.handler = s.routes()
	s.metricsHandler = s.metricsRoutes()
	return s, nil
}

func (s *Server) routes() http.Handler {
	p := s.opts.issuerPath()
	mux := http.NewServeMux()
	mux.HandleFunc(p+TokenPath, s.handleToken)
	mux.HandleFunc(p+IntrospectionPath, s.handleIntrospect)
	mux.HandleFunc(p+JWKSPath, s.handleJWKS)
	mux.HandleFunc(p+RevocationsPath, s.handleRevocations)
	mux.HandleFunc(ASMetadataPath+p, s.handleMetadata)
	mux.HandleFunc(p+OIDCMetadataPath, s.handleMetadata)
	if p != "" {
		mux.HandleFunc(OIDCMetadataPath+p, s.handleMetadata)
	}
	return mux
}

// metricsRoutes are the endpoints of the metrics port.
func (s *Server) metricsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", handleHealthz)
	mux.HandleFunc("/readyz", s.handleReadyz)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// Handler returns the HTTP handler of the token port: the OAuth endpoints, the JWKS and the
// metadata.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler returns the HTTP handler of the metrics port: /healthz, /readyz, /metrics.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// MetricsRegistry returns the registry the metrics port serves, for checks of what it
// registers (config/monitoring: every metric the alerts and the dashboard name must be one).
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metrics.registry }

// Index returns the client index, for feeding it directly.
func (s *Server) Index() *Index { return s.index }

// Options returns the completed options.
func (s *Server) Options() Options { return s.opts }

// SetKeys loads a signing-key document: its active key signs, and all its keys are published.
// On error the loaded keys are left unchanged.
func (s *Server) SetKeys(set *signingkey.Set) error {
	if err := set.Validate(); err != nil {
		return err
	}
	ks, err := buildKeySet(set)
	if err != nil {
		return err
	}
	if ks, err = ks.withMetadata(s.opts.Issuer); err != nil {
		return err
	}
	ks.reusePublic(s.keys.Load())
	if len(ks.nonceKeys) > 0 {
		ks.nonces = dpop.NewNonces(s.opts.DPoPProofWindow, ks.nonceKeys...)
	}
	s.keys.Store(ks)
	return nil
}

// MarkSynced declares the client index and keys complete, for a server fed directly rather than
// by StartInformers.
func (s *Server) MarkSynced() {
	s.clientsSynced.Store(true)
	s.keysSynced.Store(true)
}

// Ready reports whether the server can issue tokens.
func (s *Server) Ready() bool { return s.notReady() == "" }

func (s *Server) notReady() string {
	switch {
	case s.draining.Load():
		return "shutting down"
	case !s.clientsSynced.Load():
		return "credential records not synced"
	case !s.keysSynced.Load():
		return "signing keys not synced"
	case s.keys.Load().active == nil:
		return "no active signing key"
	case s.opts.TLSSecret != "" && !s.tls.Loaded():
		return "no TLS certificate loaded"
	}
	return ""
}

// Serve serves on ln until ctx is done, then drains for DrainDelay (not ready, no keep-alive)
// and shuts down gracefully within ShutdownTimeout: requests in flight are answered.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ErrorLog:          httpErrorLog(s.log),
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- s.serveOn(srv, ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the token server: %w", err)
	case <-ctx.Done():
	}
	s.drain(srv)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutting down the token server: %w", err)
	}
	s.log.Info("token server stopped")
	return nil
}

// drain turns /readyz to 503 and closes each connection after its current response, then
// waits DrainDelay with the listener still open: load balancers see the replica leave and
// stop sending before anything is refused.
func (s *Server) drain(srv *http.Server) {
	s.draining.Store(true)
	srv.SetKeepAlivesEnabled(false)
	if s.opts.DrainDelay <= 0 {
		return
	}
	s.log.Info("draining before shutdown", "delay", s.opts.DrainDelay.String())
	t := time.NewTimer(s.opts.DrainDelay)
	defer t.Stop()
	<-t.C
}

// serveOn serves plain HTTP, or HTTPS with the certificate of the TLS Secret (read on every
// handshake, so a renewal applies to new connections without a restart).
func (s *Server) serveOn(srv *http.Server, ln net.Listener) error {
	if s.opts.TLSSecret == "" {
		return srv.Serve(ln)
	}
	srv.TLSConfig = s.tls.TLSConfig()
	return srv.ServeTLS(ln, "", "")
}

// ServeMetrics serves /healthz, /readyz and /metrics over plain HTTP on ln until ctx is done.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.metricsHandler,
		ErrorLog:          httpErrorLog(s.log),
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the metrics port: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shutting down the metrics port: %w", err)
	}
	return nil
}

// ServeWithMetrics serves the token port on ln (Serve) and the metrics port on metricsLn
// (ServeMetrics) until ctx is done. The metrics port outlives the token port's drain, so that
// /readyz answers 503 all through it; if the metrics port fails, the token port stops too.
func (s *Server) ServeWithMetrics(ctx context.Context, ln, metricsLn net.Listener) error {
	tokenCtx, stopToken := context.WithCancel(ctx)
	defer stopToken()
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()
	merr := make(chan error, 1)
	go func() {
		err := s.ServeMetrics(metricsCtx, metricsLn)
		stopToken()
		merr <- err
	}()
	err := s.Serve(tokenCtx, ln)
	stopMetrics()
	if mErr := <-merr; err == nil {
		err = mErr
	}
	return err
}

// Run serves the token server from the API server in cfg until ctx is done: the token port on
// opts.Addr, the metrics port on opts.MetricsAddr.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	probe := opts
	if err := probe.complete(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", probe.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", probe.Addr, err)
	}
	metricsLn, err := net.Listen("tcp", probe.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("listening on %s (--metrics-addr): %w", probe.MetricsAddr, err)
	}
	return RunOn(ctx, cfg, opts, ln, metricsLn)
}

// RunOn is Run on listeners the caller opened (opts.Addr and opts.MetricsAddr are ignored),
// for callers that need the addresses before the server starts, such as `m2m dev` on port 0.
// It closes both.
func RunOn(ctx context.Context, cfg *rest.Config, opts Options, ln, metricsLn net.Listener) error {
	closeAudit, err := opts.openAuditLog()
	if err != nil {
		_ = ln.Close()
		_ = metricsLn.Close()
		return err
	}
	// The audit file closes after the server: every handler has returned, so no line is pending.
	defer func() { _ = closeAudit() }()
	closeAll := func() {
		_ = ln.Close()
		_ = metricsLn.Close()
	}
	s, err := New(opts)
	if err != nil {
		closeAll()
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "m2m-tokenserver"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		closeAll()
		return fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	if err := s.StartInformers(ctx, cs); err != nil {
		closeAll()
		return err
	}
	s.log.Info("token server listening", "addr", ln.Addr().String(), "metricsAddr", metricsLn.Addr().String(),
		"issuer", s.opts.Issuer, "namespace", s.opts.Namespace, "tlsSecret", s.opts.TLSSecret)
	return s.ServeWithMetrics(ctx, ln, metricsLn)
}

// httpErrorLog routes net/http's own error log (TLS handshake errors, a client's HTTP request on
// the HTTPS port) to the structured logger, so that JSON logs stay JSON. The lines name the
// peer's address and the error, never request data.
func httpErrorLog(l logr.Logger) *log.Logger {
	return log.New(logrWriter{l.WithName("http")}, "", 0)
}

type logrWriter struct{ l logr.Logger }

func (w logrWriter) Write(p []byte) (int, error) {
	w.l.Info("HTTP server error", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}
