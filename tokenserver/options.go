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
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// Defaults of the token server's options.
const (
	DefaultIssuer          = "http://127.0.0.1:8080"
	DefaultAddr            = ":8080"
	DefaultMetricsAddr     = ":9090"
	DefaultNamespace       = "m2m-credentials" // the credentials namespace
	DefaultTokenTTL        = 15 * time.Minute
	DefaultMaxTokenTTL     = 24 * time.Hour
	DefaultJWKSMaxAge      = 5 * time.Minute
	DefaultRateLimit       = 20.0
	DefaultRateBurst       = 100
	DefaultAuthFailureRate = 1.0
	DefaultAuthFailBurst   = 10
	DefaultMaxInFlight     = 1024
	DefaultMaxBodyBytes    = 64 << 10
	DefaultBodyReadTimeout = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultDrainDelay      = 5 * time.Second
	// DefaultMaxAssertionLifetime is how far ahead a private_key_jwt assertion's exp may be:
	// 1 hour, what Authlib sets (exp = iat + 3600, no option) and the most Okta accepts.
	DefaultMaxAssertionLifetime = time.Hour
	// DefaultDPoPProofWindow is how far a DPoP proof's iat may be from now, either way.
	DefaultDPoPProofWindow = 60 * time.Second
	// maxDPoPProofWindow bounds the window: every accepted proof's jti is remembered for it.
	maxDPoPProofWindow = 10 * time.Minute
)

// Options configure the token server.
type Options struct {
	// Issuer is the "iss" of every token and the base of every endpoint URL in the metadata.
	Issuer string
	// Addr is the listen address of the token port: the OAuth endpoints, the JWKS and the
	// metadata, nothing else.
	Addr string
	// MetricsAddr is the listen address of the plain-HTTP port serving /healthz, /readyz and
	// /metrics, never the token port: the metrics name every audience and key id, and the
	// probes must answer while the token port drains.
	MetricsAddr string
	// Namespace is the credentials namespace (flag --credentials-namespace): the credential
	// records, the signing-key Secret and the TLS Secret, and nothing else the token server may
	// read. It is the only namespace the token server reads.
	Namespace string
	// SigningKeySecret names the signing-key Secret in Namespace.
	SigningKeySecret string
	// TLSSecret names a kubernetes.io/tls Secret in Namespace to serve HTTPS with (tls.crt,
	// tls.key), reloaded when it changes; empty serves plain HTTP.
	TLSSecret string
	// DefaultTokenTTL applies to clients without a token TTL of their own.
	DefaultTokenTTL time.Duration
	// MaxTokenTTL caps every token's lifetime.
	MaxTokenTTL time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS (and the metadata).
	JWKSMaxAge time.Duration
	// RateLimit is each client's sustained token issuance rate (tokens per second, per replica).
	RateLimit float64
	// RateBurst is each client's issuance burst.
	RateBurst int
	// AuthFailureRate is the sustained rate of failed authentications tolerated per presented
	// client id before further failures are answered 429. Known and unknown ids alike: the
	// budgets are the slots of a fixed table (failures.go), which a few ids may share.
	AuthFailureRate float64
	// AuthFailureBurst is the burst of failed authentications per presented client id.
	AuthFailureBurst int
	// MaxAssertionLifetime is how far ahead of now a private_key_jwt assertion's exp may be
	// (plus 30 s of clock-skew leeway), at most DefaultMaxAssertionLifetime. Each accepted jti
	// is remembered until its exp, so this also sizes each client's replay set (see
	// privatekeyjwt.go).
	MaxAssertionLifetime time.Duration
	// DPoPProofWindow is how far a DPoP proof's iat may be from now, either way (RFC 9449
	// §11.1); each accepted proof's jti is remembered that long after its iat.
	DPoPProofWindow time.Duration
	// DPoPNonce makes the token endpoint require a server nonce in DPoP proofs (RFC 9449 §8),
	// answering use_dpop_nonce with a fresh one in DPoP-Nonce. Nonces are MACs of a time step
	// (one DPoPProofWindow) under a key derived from each published signing key, so every
	// replica accepts every other's without shared state.
	DPoPNonce bool
	// MaxInFlight caps concurrent token requests; beyond it the answer is 503.
	MaxInFlight int
	// MaxBodyBytes caps a token request body; beyond it the answer is 413.
	MaxBodyBytes int64
	// BodyReadTimeout bounds the reading of a request body, which happens before the request
	// takes one of the MaxInFlight slots; a body not received in time is answered 400
	// invalid_request. At most the server's read timeout (10 s).
	BodyReadTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// DrainDelay is how long a stopping server stays up answering /readyz with 503, before its
	// token listener closes, so that the Service stops routing to it first. Zero (the value of a bare
	// Options) closes the listener at once; DefaultOptions and the flag use DefaultDrainDelay.
	DrainDelay time.Duration
	// Clock returns the current time for token times and secret expiry; default time.Now.
	Clock func() time.Time
	// Logger logs; default: the controller-runtime logger.
	Logger logr.Logger
	// AuditLog receives the audit trail (docs/audit.md): one JSON line per issued token and
	// per refused token request. Default: AuditLogPath's file, else os.Stderr (beside the
	// logs). io.Discard turns the audit trail off.
	AuditLog io.Writer
	// AuditLogPath (flag --audit-log) is where Run writes the audit trail when AuditLog is nil:
	// "-" for stdout, a file path (created 0600 if absent, appended to), or "" for stderr.
	AuditLogPath string
}

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() Options {
	return Options{
		Issuer:               DefaultIssuer,
		Addr:                 DefaultAddr,
		MetricsAddr:          DefaultMetricsAddr,
		Namespace:            DefaultNamespace,
		SigningKeySecret:     signingkey.DefaultSecretName,
		DefaultTokenTTL:      DefaultTokenTTL,
		MaxTokenTTL:          DefaultMaxTokenTTL,
		JWKSMaxAge:           DefaultJWKSMaxAge,
		RateLimit:            DefaultRateLimit,
		RateBurst:            DefaultRateBurst,
		AuthFailureRate:      DefaultAuthFailureRate,
		AuthFailureBurst:     DefaultAuthFailBurst,
		MaxAssertionLifetime: DefaultMaxAssertionLifetime,
		DPoPProofWindow:      DefaultDPoPProofWindow,
		MaxInFlight:          DefaultMaxInFlight,
		MaxBodyBytes:         DefaultMaxBodyBytes,
		BodyReadTimeout:      DefaultBodyReadTimeout,
		ShutdownTimeout:      DefaultShutdownTimeout,
		DrainDelay:           DefaultDrainDelay,
	}
}

// BindFlags binds every option to a flag, with the defaults of DefaultOptions.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	d := DefaultOptions()
	fs.StringVar(&o.Issuer, "issuer", d.Issuer, "issuer URL: the iss of every token and the base of the endpoint URLs")
	fs.StringVar(&o.Addr, "addr", d.Addr, "listen address of the token port (OAuth endpoints, JWKS, metadata)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", d.MetricsAddr, "listen address of the plain-HTTP port serving /healthz, /readyz and /metrics (never the token port)")
	fs.StringVar(&o.Namespace, "credentials-namespace", d.Namespace, "the only namespace read: credential records, the signing-key Secret and the TLS Secret")
	fs.StringVar(&o.SigningKeySecret, "signing-key-secret", d.SigningKeySecret, "name of the signing-key Secret in the credentials namespace")
	fs.StringVar(&o.TLSSecret, "tls-secret", d.TLSSecret, "name of a TLS Secret (tls.crt, tls.key) in the credentials namespace to serve HTTPS with, reloaded on change; empty serves plain HTTP")
	fs.DurationVar(&o.DefaultTokenTTL, "default-token-ttl", d.DefaultTokenTTL, "token lifetime for clients that set none")
	fs.DurationVar(&o.MaxTokenTTL, "max-token-ttl", d.MaxTokenTTL, "maximum token lifetime (the controller's --signing-key-max-token-ttl must not be lower)")
	fs.DurationVar(&o.JWKSMaxAge, "jwks-max-age", d.JWKSMaxAge, "Cache-Control max-age of the JWKS and metadata (must be shorter than the signing keys' publish-ahead)")
	fs.Float64Var(&o.RateLimit, "rate-limit", d.RateLimit, "tokens per second each client may get from this replica (sustained)")
	fs.IntVar(&o.RateBurst, "rate-burst", d.RateBurst, "tokens each client may get from this replica in a burst")
	fs.Float64Var(&o.AuthFailureRate, "auth-failure-rate", d.AuthFailureRate, "failed authentications per second tolerated per presented client id (known or not) before answering 429")
	fs.IntVar(&o.AuthFailureBurst, "auth-failure-burst", d.AuthFailureBurst, "burst of failed authentications per presented client id")
	fs.DurationVar(&o.MaxAssertionLifetime, "max-assertion-lifetime", d.MaxAssertionLifetime, "how far ahead a private_key_jwt assertion's exp may be (at most 1h); each jti is remembered until its exp")
	fs.DurationVar(&o.DPoPProofWindow, "dpop-proof-window", d.DPoPProofWindow, "how far a DPoP proof's iat may be from now, either way (at most 10m); each proof's jti is remembered that long")
	fs.BoolVar(&o.DPoPNonce, "dpop-nonce", d.DPoPNonce, "require a server-provided nonce in DPoP proofs at the token endpoint (RFC 9449 §8; stateless across replicas)")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", d.MaxInFlight, "concurrent token requests before answering 503")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", d.MaxBodyBytes, "largest token request body (413 beyond)")
	fs.DurationVar(&o.BodyReadTimeout, "body-read-timeout", d.BodyReadTimeout, "time a client has to send its request body, read before the request takes an in-flight slot (400 beyond; at most 10s)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "graceful shutdown limit")
	fs.DurationVar(&o.DrainDelay, "drain-delay", d.DrainDelay, "on shutdown, how long /readyz answers 503 before the listener closes (the Service's endpoint removal delay)")
	fs.StringVar(&o.AuditLogPath, "audit-log", d.AuditLogPath, "where the audit trail goes, one JSON line per issued token and per refused token request (docs/audit.md): - for stdout, a file path (appended to), or empty for stderr")
}

// openAuditLog opens AuditLogPath when no AuditLog writer is set; close releases it (a no-op
// for stdout and stderr).
func (o *Options) openAuditLog() (closeFn func() error, err error) {
	noop := func() error { return nil }
	switch {
	case o.AuditLog != nil || o.AuditLogPath == "":
		return noop, nil
	case o.AuditLogPath == "-":
		o.AuditLog = os.Stdout
		return noop, nil
	}
	f, err := os.OpenFile(o.AuditLogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	o.AuditLog = f
	return f.Close, nil
}

// complete fills zero values with defaults and validates.
func (o *Options) complete() error {
	d := DefaultOptions()
	fill(&o.Issuer, d.Issuer)
	fill(&o.Addr, d.Addr)
	fill(&o.MetricsAddr, d.MetricsAddr)
	fill(&o.Namespace, d.Namespace)
	fill(&o.SigningKeySecret, d.SigningKeySecret)
	fill(&o.DefaultTokenTTL, d.DefaultTokenTTL)
	fill(&o.MaxTokenTTL, d.MaxTokenTTL)
	fill(&o.JWKSMaxAge, d.JWKSMaxAge)
	fill(&o.RateLimit, d.RateLimit)
	fill(&o.RateBurst, d.RateBurst)
	fill(&o.AuthFailureRate, d.AuthFailureRate)
	fill(&o.AuthFailureBurst, d.AuthFailureBurst)
	fill(&o.MaxAssertionLifetime, d.MaxAssertionLifetime)
	fill(&o.DPoPProofWindow, d.DPoPProofWindow)
	fill(&o.MaxInFlight, d.MaxInFlight)
	fill(&o.MaxBodyBytes, d.MaxBodyBytes)
	fill(&o.BodyReadTimeout, d.BodyReadTimeout)
	fill(&o.ShutdownTimeout, d.ShutdownTimeout)
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.AuditLog == nil {
		o.AuditLog = os.Stderr
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	return o.validate()
}

func fill[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (o *Options) validate() error {
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return fmt.Errorf("--issuer: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("--issuer must be an absolute http(s) URL without user info, query or fragment")
	}
	if strings.ContainsAny(o.Issuer, `"\`) {
		return errors.New("--issuer must not contain quotes or backslashes")
	}
	switch {
	case o.DefaultTokenTTL < time.Second || o.MaxTokenTTL < time.Second:
		return errors.New("--default-token-ttl and --max-token-ttl must be at least 1s")
	case o.RateLimit < 0 || o.RateBurst < 0 || o.AuthFailureRate < 0 || o.AuthFailureBurst < 0:
		return errors.New("rate limits must not be negative")
	case o.DrainDelay < 0:
		return errors.New("--drain-delay must not be negative")
	case o.MaxInFlight < 0 || o.MaxBodyBytes < 0:
		return errors.New("--max-in-flight and --max-body-bytes must not be negative")
	case o.MaxAssertionLifetime < time.Second || o.MaxAssertionLifetime > DefaultMaxAssertionLifetime:
		return fmt.Errorf("--max-assertion-lifetime must be between 1s and %s", DefaultMaxAssertionLifetime)
	case o.DPoPProofWindow < time.Second || o.DPoPProofWindow > maxDPoPProofWindow:
		return fmt.Errorf("--dpop-proof-window must be between 1s and %s", maxDPoPProofWindow)
	case o.BodyReadTimeout < 0 || o.BodyReadTimeout > serverReadTimeout:
		return fmt.Errorf("--body-read-timeout must be between 0 and %s", serverReadTimeout)
	}
	return nil
}

// issuerPath is the path of the issuer URL without its trailing slash ("" for a bare host).
func (o *Options) issuerPath() string {
	u, err := url.Parse(o.Issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}
