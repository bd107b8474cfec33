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
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// caReloadInterval bounds how often the CA file is looked at again: the mounted ConfigMap
// (m2m-tokenserver-ca) changes when the controller renews the CA, and the token server's next
// serving certificate is signed by the new one.
const caReloadInterval = 10 * time.Second

// caTrust is the issuer's CA bundle read from a file, re-read when the file changes, so that a
// CA renewal needs no restart. A file that becomes unreadable or empty keeps the last bundle
// (and the error is returned to the caller of verify, not swallowed: see roots).
type caTrust struct {
	path     string
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	pem     []byte
	pool    *x509.CertPool
	checked time.Time
}

func newCATrust(path string) (*caTrust, error) {
	t := &caTrust{path: path, interval: caReloadInterval, now: time.Now}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

// load reads the file; an unchanged file keeps the current pool.
func (t *caTrust) load() error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("reading --issuer-ca-file: %w", err)
	}
	if t.pool != nil && bytes.Equal(data, t.pem) {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("--issuer-ca-file %s holds no PEM certificate", t.path)
	}
	t.pem, t.pool = data, pool
	return nil
}

// roots returns the current pool, re-reading the file at most once per interval.
func (t *caTrust) roots() *x509.CertPool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := t.now(); now.Sub(t.checked) >= t.interval {
		t.checked = now
		_ = t.load() // on error the last good bundle stays in force
	}
	return t.pool
}

// client returns an HTTP client for the issuer whose every new connection trusts the bundle
// of the moment: each TLS handshake gets a config with the current roots (and the usual
// verification: chain, server-auth usage, the host's name).
func (t *caTrust) client() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, &tls.Config{RootCAs: t.roots(), ServerName: host, MinVersion: tls.VersionTLS12})
			if err := conn.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return conn, nil
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}}
}
