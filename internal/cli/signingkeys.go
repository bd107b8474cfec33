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

package cli

import (
	"flag"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// signingKeyFlags configure the signing-key reconciler of `m2m controller`.
type signingKeyFlags struct {
	secretName   string
	algorithm    string
	interval     time.Duration
	publishAhead time.Duration
	maxTokenTTL  time.Duration
	leeway       time.Duration
	jwksMaxAge   time.Duration
}

func bindSigningKeyFlags(fs *flag.FlagSet) *signingKeyFlags {
	f := &signingKeyFlags{}
	fs.StringVar(&f.secretName, "signing-key-secret", signingkey.DefaultSecretName, "name of the signing-key Secret in the credentials namespace")
	fs.StringVar(&f.algorithm, "signing-key-algorithm", signingkey.ES256, "algorithm of new signing keys: ES256, RS256 or EdDSA (a change rotates early)")
	fs.DurationVar(&f.interval, "signing-key-rotation-interval", 720*time.Hour, "how long a signing key stays active")
	fs.DurationVar(&f.publishAhead, "signing-key-publish-ahead", time.Hour, "how long a new key is published in the JWKS before it signs (must exceed --signing-key-jwks-max-age)")
	fs.DurationVar(&f.maxTokenTTL, "signing-key-max-token-ttl", tokenserver.DefaultMaxTokenTTL, "the token servers' --max-token-ttl: a retired key stays published this long plus the leeway")
	fs.DurationVar(&f.leeway, "signing-key-leeway", 5*time.Minute, "extra time a retired key stays published, for clock skew and late token servers")
	fs.DurationVar(&f.jwksMaxAge, "signing-key-jwks-max-age", tokenserver.DefaultJWKSMaxAge, "the token servers' --jwks-max-age, to check --signing-key-publish-ahead against")
	return f
}

func (f *signingKeyFlags) policy() signingkey.Policy {
	return signingkey.Policy{
		Algorithm:         f.algorithm,
		RotationInterval:  f.interval,
		PublishAhead:      f.publishAhead,
		RetainAfterRetire: f.maxTokenTTL + f.leeway,
	}
}

// setupSigningKeys registers the signing-key reconciler with the controller's manager, for the
// Secret in namespace (the credentials namespace, which the token server reads).
func setupSigningKeys(mgr ctrl.Manager, f *signingKeyFlags, namespace string) error {
	p := f.policy()
	if err := p.Validate(f.jwksMaxAge); err != nil {
		return err
	}
	if f.secretName == "" || namespace == "" {
		return fmt.Errorf("the signing-key Secret needs a name and a namespace")
	}
	r := &skctrl.Reconciler{Namespace: namespace, Name: f.secretName, Policy: p}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the signing-key controller: %w", err)
	}
	return nil
}
