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
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	. "github.com/onsi/gomega"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// TestKeygenAndAssertion: the PrivateKeyJWT recipe. The JWKS keygen writes is one the
// controller accepts (public only), and the assertion signed with the private key verifies
// against it, with the RFC 7523 claims the token server checks.
func TestKeygenAndAssertion(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			g := NewWithT(t)
			dir := filepath.Join(t.TempDir(), "keys")
			g.Expect(keygen(dir, alg, io.Discard)).To(Succeed())
			fi, err := os.Stat(filepath.Join(dir, privateKeyFile))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(fi.Mode().Perm()).To(Equal(os.FileMode(0o600)))
			g.Expect(keygen(dir, alg, io.Discard)).To(MatchError(ContainSubstring("exists")), "a key is never overwritten")

			doc, err := os.ReadFile(filepath.Join(dir, publicJWKSFile))
			g.Expect(err).NotTo(HaveOccurred())
			keys, err := credential.ParseClientJWKS(doc)
			g.Expect(err).NotTo(HaveOccurred(), "the controller accepts the JWKS")
			g.Expect(keys).To(HaveLen(1))

			creds := t.TempDir()
			g.Expect(os.WriteFile(filepath.Join(creds, "client_id"), []byte("m2mc_x\n"), 0o600)).To(Succeed())
			g.Expect(os.WriteFile(filepath.Join(creds, "issuer"), []byte("http://127.0.0.1:1"), 0o600)).To(Succeed())
			now := time.Now()
			a, err := buildAssertion(&assertionFlags{key: filepath.Join(dir, privateKeyFile), credentials: creds, ttl: time.Minute}, now)
			g.Expect(err).NotTo(HaveOccurred())

			var set jose.JSONWebKeySet
			g.Expect(json.Unmarshal(doc, &set)).To(Succeed())
			tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tok.Headers[0].KeyID).To(Equal(set.Keys[0].KeyID))
			var c jwt.Claims
			g.Expect(tok.Claims(set.Keys[0].Key, &c)).To(Succeed(), "signed by the key of jwks.json")
			g.Expect(c.Issuer).To(Equal("m2mc_x"))
			g.Expect(c.Subject).To(Equal("m2mc_x"))
			g.Expect([]string(c.Audience)).To(Equal([]string{"http://127.0.0.1:1"}))
			g.Expect(c.ID).NotTo(BeEmpty())
			g.Expect(c.Expiry.Time()).To(BeTemporally("~", now.Add(time.Minute), time.Second))
		})
	}
}
