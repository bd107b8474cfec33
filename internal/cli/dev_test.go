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
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// TestDevSigningKeyAlgorithm: `m2m dev --signing-key-algorithm EdDSA` serves EdDSA keys and
// says so in its metadata, so non-ES256 verifiers can be tried locally; an unknown algorithm
// is refused before anything starts.
func TestDevSigningKeyAlgorithm(t *testing.T) {
	fs, f, _ := devFlagSet()
	if err := fs.Parse([]string{"--signing-key-algorithm", "EdDSA"}); err != nil {
		t.Fatal(err)
	}
	if f.signingKeyAlgorithm != "EdDSA" {
		t.Fatalf("flag parsed to %q", f.signingKeyAlgorithm)
	}
	if _, err := StartDev(context.Background(), DevConfig{SigningKeyAlgorithm: "HS256"}); err == nil {
		t.Fatal("HS256 was accepted")
	}
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys, err := StartDev(ctx, DevConfig{Addr: "127.0.0.1:0", Dir: t.TempDir(), Namespace: "m2m-system", SigningKeyAlgorithm: f.signingKeyAlgorithm})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Stop()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		var jwks struct {
			Keys []struct {
				Alg string `json:"alg"`
				Kty string `json:"kty"`
			} `json:"keys"`
		}
		getJSON(g, sys.Issuer+tokenserver.JWKSPath, &jwks)
		g.Expect(jwks.Keys).To(HaveLen(1))
		g.Expect(jwks.Keys[0].Alg).To(Equal("EdDSA"))
		g.Expect(jwks.Keys[0].Kty).To(Equal("OKP"))
		var md struct {
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		getJSON(g, sys.Issuer+tokenserver.OIDCMetadataPath, &md)
		g.Expect(md.Algs).To(HaveExactElements("EdDSA", "RS256"))
	}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

func getJSON(g Gomega, url string, v any) {
	resp, err := http.Get(url)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(json.NewDecoder(resp.Body).Decode(v)).To(Succeed())
}
