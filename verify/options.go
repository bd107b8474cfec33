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

package verify

import (
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults. Each can be changed with the matching option.
const (
	// DefaultLeeway is the clock-skew allowance for "exp", "nbf" and "iat". Fresh tokens carry
	// nbf = iat = issue time, so a resource server whose clock lags the issuer's by a few
	// seconds would refuse brand-new tokens without it; 30 s covers ordinary NTP drift between
	// machines while keeping an expired token usable for at most 30 s longer.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxTokenSize caps the token before any parsing. Our tokens are well under 2 KiB.
	DefaultMaxTokenSize = 8 << 10
	// DefaultCacheSize is the number of verified tokens kept (about 1–2 KiB each).
	DefaultCacheSize = 10000
	// DefaultRefreshCooldown is the least time between two key set fetches caused by unknown
	// "kid"s, so a flood of forged kids cannot hammer the issuer.
	DefaultRefreshCooldown = 10 * time.Second
	// DefaultMinRefreshInterval and DefaultMaxRefreshInterval bound the periodic key set
	// refresh that follows the JWKS response's Cache-Control max-age.
	DefaultMinRefreshInterval = 30 * time.Second
	// DefaultMaxRefreshInterval: see DefaultMinRefreshInterval.
	DefaultMaxRefreshInterval = time.Hour
	// defaultRefreshInterval applies when the JWKS response has no usable max-age.
	defaultRefreshInterval = 5 * time.Minute
	// defaultHTTPTimeout bounds each metadata or key set request of the default client.
	defaultHTTPTimeout = 10 * time.Second
)

// Option configures a [Verifier].
type Option func(*config) error

// config collects the options before the Verifier is built.
type config struct {
	httpClient  *http.Client
	leeway      time.Duration
	now         func() time.Time
	algorithms  []jose.SignatureAlgorithm
	maxSize     int
	cacheSize   int
	cooldown    time.Duration
	minRefresh  time.Duration
	maxRefresh  time.Duration
	anyAudience bool
	realm       string
	revocation  revocationConfig
	dpop        dpopConfig
}

func defaultConfig() *config {
	return &config{
		httpClient: &http.Client{Timeout: defaultHTTPTimeout},
		leeway:     DefaultLeeway,
		now:        time.Now,
		algorithms: defaultAlgorithms,
		maxSize:    DefaultMaxTokenSize,
		cacheSize:  DefaultCacheSize,
		cooldown:   DefaultRefreshCooldown,
		minRefresh: DefaultMinRefreshInterval,
		maxRefresh: DefaultMaxRefreshInterval,
		revocation: revocationConfig{refresh: DefaultRevocationRefresh, staleness: DefaultRevocationStaleness},
	}
}

// WithHTTPClient sets the client used for metadata and key set requests (for example one that
// trusts the token server's CA). The default client has a 10 s timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(cfg *config) error {
		if c == nil {
			return fmt.Errorf("nil HTTP client")
		}
		cfg.httpClient = c
		return nil
	}
}

// WithLeeway sets the clock-skew allowance for "exp", "nbf" and "iat" (default
// [DefaultLeeway]). It must be between 0 and 5 minutes.
func WithLeeway(d time.Duration) Option {
	return func(cfg *config) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("leeway %v outside [0, 5m]", d)
		}
		cfg.leeway = d
		return nil
	}
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return func(cfg *config) error {
		if now == nil {
			return fmt.Errorf("nil clock")
		}
		cfg.now = now
		return nil
	}
}

// WithAllowedAlgorithms sets the "alg" allow-list (default ES256, RS256, PS256, EdDSA). Only
// asymmetric algorithms are accepted: ES256/384/512, RS256/384/512, PS256/384/512 and EdDSA.
// Whatever the list, each key still verifies only the algorithms of its own type.
func WithAllowedAlgorithms(algs ...string) Option {
	return func(cfg *config) error {
		if len(algs) == 0 {
			return fmt.Errorf("empty algorithm list")
		}
		list := make([]jose.SignatureAlgorithm, 0, len(algs))
		for _, a := range algs {
			if !isSupported(a) {
				return fmt.Errorf("algorithm %q is not supported (asymmetric algorithms only)", a)
			}
			list = append(list, jose.SignatureAlgorithm(a))
		}
		cfg.algorithms = list
		return nil
	}
}

func isSupported(alg string) bool {
	for _, a := range supportedAlgorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// WithMaxTokenSize sets the largest token, in bytes, that is looked at (default
// [DefaultMaxTokenSize]).
func WithMaxTokenSize(n int) Option {
	return func(cfg *config) error {
		if n < 64 || n > 1<<20 {
			return fmt.Errorf("max token size %d outside [64, 1MiB]", n)
		}
		cfg.maxSize = n
		return nil
	}
}

// WithCacheSize sets how many verified tokens are cached (default [DefaultCacheSize]); 0
// turns the cache off.
func WithCacheSize(n int) Option {
	return func(cfg *config) error {
		if n < 0 {
			return fmt.Errorf("negative cache size %d", n)
		}
		cfg.cacheSize = n
		return nil
	}
}

// WithRefreshCooldown sets the least time between two key set fetches triggered by an
// unknown "kid" (default [DefaultRefreshCooldown]). Only [New] verifiers fetch keys.
func WithRefreshCooldown(d time.Duration) Option {
	return func(cfg *config) error {
		if d < 0 {
			return fmt.Errorf("negative refresh cooldown %v", d)
		}
		cfg.cooldown = d
		return nil
	}
}

// WithRefreshInterval bounds the periodic key set refresh, which otherwise follows the JWKS
// response's Cache-Control max-age (defaults [DefaultMinRefreshInterval] and
// [DefaultMaxRefreshInterval]).
func WithRefreshInterval(minInterval, maxInterval time.Duration) Option {
	return func(cfg *config) error {
		if minInterval <= 0 || maxInterval < minInterval {
			return fmt.Errorf("invalid refresh interval bounds [%v, %v]", minInterval, maxInterval)
		}
		cfg.minRefresh, cfg.maxRefresh = minInterval, maxInterval
		return nil
	}
}

// WithAnyAudience skips the "aud" check (the claim must still be present). It is meant for the
// token server's introspection endpoint, which answers for every audience: the returned
// [Claims.Audience] tells the caller whom the token is for, and the caller decides. A resource
// server must not use it.
func WithAnyAudience() Option {
	return func(cfg *config) error {
		cfg.anyAudience = true
		return nil
	}
}

// WithRealm sets the realm of the WWW-Authenticate challenges sent by the HTTP middleware
// (default: the audience).
func WithRealm(realm string) Option {
	return func(cfg *config) error {
		cfg.realm = realm
		return nil
	}
}
