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

// Package controllers holds the reconcilers of M2MClient and ScopePolicy. Signing keys and TLS
// have their own packages below this one.
package controllers

import (
	"flag"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Defaults sized so that a policy edit reaching a thousand clients lands in seconds: each
// affected client costs about three writes (record, credential Secret, status), and a worker
// spends most of a reconcile waiting on the API server.
const (
	// DefaultMaxConcurrentReconciles is the number of workers per controller.
	DefaultMaxConcurrentReconciles = 16
	// DefaultAPIQPS and DefaultAPIBurst bound the controller's API client (client-go's own
	// default of 20 would make a thousand clients take minutes).
	DefaultAPIQPS   = 500
	DefaultAPIBurst = 1000
	// DefaultRevocationRetention is the token server's default maximum token TTL (24h) plus the
	// signing-key leeway (5m).
	DefaultRevocationRetention = 24*time.Hour + 5*time.Minute
)

// Options configure the M2MClient and ScopePolicy reconcilers.
type Options struct {
	// SystemNamespace holds the controller's workloads, its leader-election Lease and the token
	// server's CA (whose bundle is copied into credential Secrets).
	SystemNamespace string
	// CredentialsNamespace holds exactly what the token server reads: the credential records,
	// the signing keys and its TLS serving Secret. It is kept apart from SystemNamespace because
	// RBAC cannot narrow the token server's list and watch of records to some Secrets: whatever
	// else shared their namespace (the CA key above all) it could read too.
	CredentialsNamespace string
	// Issuer is the token server's issuer identifier, copied into credential Secrets.
	Issuer string
	// TokenURL is the token endpoint, copied into credential Secrets. Default: <issuer>/oauth2/token.
	TokenURL string
	// CABundle copies the token server's CA (ca.crt) into every credential Secret; on when the
	// token server serves TLS with the controller-issued certificate.
	CABundle bool
	// MaxConcurrentReconciles per controller. Default DefaultMaxConcurrentReconciles.
	MaxConcurrentReconciles int
	// RevocationRetention is how long a record keeps a revocation's not-before time: the token
	// servers' --max-token-ttl plus a leeway (`m2m controller` derives it from
	// --signing-key-max-token-ttl and --signing-key-leeway). Default DefaultRevocationRetention.
	RevocationRetention time.Duration
	// Clock is injectable so tests can move time (rotation, grace periods).
	Clock clock.PassiveClock
}

// BindFlags registers the options as command-line flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.SystemNamespace, "namespace", "m2m-system", "system namespace: the leader-election Lease and the token server's CA")
	fs.StringVar(&o.CredentialsNamespace, "credentials-namespace", "m2m-credentials", "namespace holding exactly what the token server reads: credential records, signing keys, its TLS Secret")
	fs.StringVar(&o.Issuer, "issuer", "http://127.0.0.1:8080", "issuer identifier of the token server, written into credential Secrets")
	fs.StringVar(&o.TokenURL, "token-url", "", "token endpoint written into credential Secrets (default <issuer>/oauth2/token)")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", DefaultMaxConcurrentReconciles, "workers per controller")
}

func (o *Options) complete() error {
	if o.SystemNamespace == "" || o.CredentialsNamespace == "" {
		return fmt.Errorf("the system and credentials namespaces must not be empty")
	}
	if o.TokenURL == "" {
		o.TokenURL = o.Issuer + "/oauth2/token"
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.RevocationRetention <= 0 {
		o.RevocationRetention = DefaultRevocationRetention
	}
	return nil
}

// SetupWithManager registers the field indexes and both reconcilers.
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	if err := o.complete(); err != nil {
		return err
	}
	if err := setupIndexes(mgr); err != nil {
		return err
	}
	jwks, err := newJWKSCache(mgr)
	if err != nil {
		return err
	}
	cr := &M2MClientReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		JWKSCache: jwks,
		Recorder:  mgr.GetEventRecorder("m2m-controller"),
		Options:   o,
	}
	if err := cr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the M2MClient controller: %w", err)
	}
	pr := &ScopePolicyReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("m2m-controller")}
	if err := pr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ScopePolicy controller: %w", err)
	}
	return nil
}

// requeueAfter turns a future moment into a requeue delay (zero for none or past).
func requeueAfter(now, at time.Time) time.Duration {
	if at.IsZero() {
		return 0
	}
	d := at.Sub(now)
	if d <= 0 {
		return time.Millisecond
	}
	return d
}
