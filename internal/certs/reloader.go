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

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// Reloader holds a server's current certificate and swaps it atomically, so that a TLS server
// picks up a renewed certificate on its next handshake without a restart. The zero value is ready
// to use and holds no certificate until the first successful Update.
type Reloader struct {
	current atomic.Pointer[tls.Certificate]
}

// Update parses a PEM certificate chain (leaf first) and its PEM private key and, only if both are
// valid and belong together, makes them the certificate served from now on. On error the previous
// certificate stays in use: a broken Secret must not take a working server down.
func (r *Reloader) Update(certPEM, keyPEM []byte) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls errors describe the problem without quoting the key.
		return fmt.Errorf("loading the TLS key pair: %w", err)
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return fmt.Errorf("parsing the TLS certificate: %w", err)
		}
		pair.Leaf = leaf
	}
	r.current.Store(&pair)
	return nil
}

// GetCertificate serves as tls.Config.GetCertificate: it returns the current certificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.current.Load()
	if c == nil {
		return nil, errors.New("no TLS certificate loaded yet")
	}
	return c, nil
}

// Leaf returns the current certificate, or nil before the first Update. Useful for readiness
// checks and metrics (expiry).
func (r *Reloader) Leaf() *x509.Certificate {
	if c := r.current.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// Loaded reports whether a certificate has been loaded, for a readiness check.
func (r *Reloader) Loaded() bool { return r.current.Load() != nil }

// TLSConfig returns a server configuration that serves the Reloader's current certificate, TLS 1.2
// at least.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
