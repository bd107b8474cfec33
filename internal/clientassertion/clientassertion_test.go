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

package clientassertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

func writeKey(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "private.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSignFile(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Unix(1_800_000_000, 0)
	for alg, key := range map[jose.SignatureAlgorithm]crypto.Signer{jose.ES256: ec, jose.EdDSA: ed, jose.RS256: rs} {
		s, err := SignFile(writeKey(t, key), "m2mc_abc", "https://issuer", now, 2*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		tok, err := jwt.ParseSigned(s, []jose.SignatureAlgorithm{alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		kid, _ := signingkey.Thumbprint(key.Public())
		if h := tok.Headers[0]; h.KeyID != kid || h.ExtraHeaders["typ"] != "JWT" {
			t.Fatalf("%s: header %+v, want kid %s and typ JWT", alg, h, kid)
		}
		var c jwt.Claims
		if err := tok.Claims(key.Public(), &c); err != nil {
			t.Fatalf("%s: signature: %v", alg, err)
		}
		if c.Issuer != "m2mc_abc" || c.Subject != "m2mc_abc" || !c.Audience.Contains("https://issuer") ||
			c.Expiry.Time() != now.Add(2*time.Minute) || c.NotBefore.Time() != now || len(c.ID) < 20 {
			t.Fatalf("%s: claims %+v", alg, c)
		}
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	notPEM := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ path, want string }{
		"missing file": {filepath.Join(t.TempDir(), "none"), "reading the private key"},
		"not PEM":      {notPEM, "no PEM PRIVATE KEY"},
		"EC P-384":     {writeKey(t, p384), "want P-256"},
	} {
		if _, _, err := LoadKey(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
}
