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

// Package tlscontroller keeps the token server's TLS material: a self-signed CA (Secret m2m-ca
// in the system namespace, which only the controller reads), name-constrained to the token
// server's DNS names, and a serving certificate for the token server's Service signed by it
// (Secret m2m-tokenserver-tls, type kubernetes.io/tls, in the credentials namespace, which the
// token server reads). It issues both when absent, renews them at two thirds of their life (and
// the CA as soon as its name constraints are not those of the Service's names), and repairs them
// when they are deleted or corrupt. Token servers watch the serving Secret and reload it; the CA
// bundle is copied into credential Secrets so that clients can verify the token server, and
// published alone in ConfigMap m2m-tokenserver-ca of the system namespace for components that
// mount it (m2m authz).
package tlscontroller

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"k8s.io/utils/clock"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// Names of the Secrets and their keys.
const (
	// CASecretName is the CA Secret in the system namespace.
	CASecretName = "m2m-ca"
	// ServingSecretName is the token server's serving Secret (type kubernetes.io/tls) in the
	// credentials namespace.
	ServingSecretName = "m2m-tokenserver-tls"
	// CACertKey holds the CA bundle, PEM: the CA that signs now first, then older CAs that are
	// still valid, so that clients keep trusting certificates they signed.
	CACertKey = "ca.crt"
	// CAKeyKey holds the private key of the first certificate of CACertKey, PKCS#8 PEM.
	CAKeyKey = "ca.key"
)

// Defaults of Options.
const (
	DefaultServiceName   = "m2m-tokenserver"
	DefaultClusterDomain = "cluster.local"
)

// Options configure the TLS controller of `m2m controller`.
type Options struct {
	// Enabled turns the controller on. Off by default in the binary, so that `m2m dev` serves
	// plain HTTP on loopback; the in-cluster install turns it on (--tokenserver-tls).
	Enabled bool
	// ServiceName is the token server's Service in the system namespace; the certificate holds
	// its DNS names, and the CA is name-constrained to them.
	ServiceName string
	// ClusterDomain is the cluster's DNS domain, for the fully qualified Service name.
	ClusterDomain string
	// CAValidity is the lifetime of a new CA.
	CAValidity time.Duration
	// ServingValidity is the lifetime of a new serving certificate.
	ServingValidity time.Duration
	// Clock is injectable so that tests can move time past a renewal point. Default: real time.
	Clock clock.PassiveClock
}

// BindFlags registers the options as command-line flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Enabled, "tokenserver-tls", false, "issue and renew the token server's CA (Secret "+CASecretName+" in the system namespace) and serving certificate (Secret "+ServingSecretName+" in the credentials namespace)")
	fs.StringVar(&o.ServiceName, "tls-service-name", DefaultServiceName, "name of the token server's Service in the system namespace: the serving certificate holds its DNS names, and the CA may sign for no other")
	fs.StringVar(&o.ClusterDomain, "tls-cluster-domain", DefaultClusterDomain, "the cluster's DNS domain, for <service>.<namespace>.svc.<domain>")
	fs.DurationVar(&o.CAValidity, "tls-ca-validity", certs.DefaultCAValidity, "lifetime of a new CA certificate (renewed at two thirds of it)")
	fs.DurationVar(&o.ServingValidity, "tls-serving-validity", certs.DefaultServingValidity, "lifetime of a new serving certificate (renewed at two thirds of it)")
}

// complete fills zero values with defaults and validates.
func (o *Options) complete() error {
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if o.CAValidity == 0 {
		o.CAValidity = certs.DefaultCAValidity
	}
	if o.ServingValidity == 0 {
		o.ServingValidity = certs.DefaultServingValidity
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	switch {
	case o.CAValidity < time.Hour || o.ServingValidity < time.Minute:
		return errors.New("--tls-ca-validity must be at least 1h and --tls-serving-validity at least 1m")
	case o.ServingValidity > o.CAValidity/3:
		// The serving certificate never outlives its CA, and the CA is renewed at two thirds of
		// its life: a longer serving lifetime would be cut short, every time.
		return fmt.Errorf("--tls-serving-validity (%s) must not exceed a third of --tls-ca-validity (%s)", o.ServingValidity, o.CAValidity)
	}
	return nil
}

// DNSNames returns the names a Service is reached by from inside the cluster: <svc>,
// <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.<clusterDomain>.
func DNSNames(service, namespace, clusterDomain string) []string {
	svc := service + "." + namespace + ".svc"
	return []string{service, service + "." + namespace, svc, svc + "." + clusterDomain}
}
