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
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// TestCATrustFollowsTheFile: after a CA renewal the controller rewrites the mounted bundle and
// the token server's next certificate is signed by the new CA; m2m authz must trust it without
// a restart, and still verify fully (a CA not in the file, or another name, is refused).
func TestCATrustFollowsTheFile(t *testing.T) {
	now := time.Now()
	caA, err := certs.NewCA("a", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caB, err := certs.NewCA("b", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving := func(ca *certs.KeyPair, name string) *tls.Certificate {
		kp, err := certs.NewServing(ca, []string{name}, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	var current atomic.Pointer[tls.Certificate]
	current.Store(serving(caA, "localhost"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }}
	srv.StartTLS()
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	file := filepath.Join(t.TempDir(), "ca.crt")
	write := func(pem []byte) {
		tmp := file + ".new" // the kubelet swaps a ConfigMap volume's files the same way
		if err := os.WriteFile(tmp, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(caA.CertPEM)
	trust, err := newCATrust(file)
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	trust.now = func() time.Time { return clock }
	c := trust.client()
	get := func() error {
		t.Helper()
		c.CloseIdleConnections() // each check is a new handshake
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("CA A's certificate: %v", err)
	}

	current.Store(serving(caB, "localhost"))
	if err := get(); err == nil {
		t.Fatal("a certificate of a CA not in the bundle was trusted")
	}
	write(caB.CertPEM)
	clock = clock.Add(caReloadInterval / 2)
	if err := get(); err == nil {
		t.Fatal("the bundle was re-read before the reload interval")
	}
	clock = clock.Add(caReloadInterval)
	if err := get(); err != nil {
		t.Fatalf("after the file changed to CA B: %v", err)
	}

	current.Store(serving(caB, "other.example"))
	if err := get(); err == nil || !strings.Contains(err.Error(), "other.example") {
		t.Fatalf("a certificate for another name: %v, want refused", err)
	}
	current.Store(serving(caB, "localhost"))

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * caReloadInterval)
	if err := get(); err != nil {
		t.Fatalf("a missing file dropped the last good bundle: %v", err)
	}
}
