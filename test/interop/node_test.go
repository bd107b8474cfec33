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

package interop

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// nodeConfig is what the Node suite reads (INTEROP_CONFIG): the system and the clients'
// credentials, private keys included, as a deployment would hand them to its client.
type nodeConfig struct {
	Issuer     string          `json:"issuer"`
	Audience   string          `json:"audience"`
	Scope      string          `json:"scope"`
	SigningAlg string          `json:"signing_alg"`
	Basic      credentials     `json:"basic"`
	Nothing    credentials     `json:"nothing"`
	Keys       []nodeKeyClient `json:"keys"`
}

type nodeKeyClient struct {
	ClientID string          `json:"client_id"`
	Alg      string          `json:"alg"`
	JWK      json.RawMessage `json:"private_jwk"`
}

// nodeLibraries runs node/interop.test.mjs (openid-client, oauth4webapi, jose,
// express-oauth2-jwt-bearer, pinned in node/package-lock.json) against the system. The
// packages are installed by hack/interop-npm.sh (npm ci, cached outside the repository).
func nodeLibraries(t *testing.T, s *system) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Node libraries (openid-client, oauth4webapi, jose, express-oauth2-jwt-bearer) are not tried")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	install := exec.Command(filepath.Join(root, "hack", "interop-npm.sh"))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("installing the Node packages: %v\n%s", err, out)
	}
	cfg := nodeConfig{Issuer: s.Issuer, Audience: audience, Scope: scopeR, SigningAlg: s.alg, Basic: s.basic, Nothing: s.nothing}
	for _, k := range s.keys {
		jwk, err := json.Marshal(jose.JSONWebKey{Key: k.priv, KeyID: k.KID})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keys = append(cfg.Keys, nodeKeyClient{ClientID: k.ClientID, Alg: k.Alg, JWK: jwk})
	}
	path := filepath.Join(t.TempDir(), "interop.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", "--test-reporter=spec", filepath.Join("node", "interop.test.mjs"))
	cmd.Env = append(os.Environ(), "INTEROP_CONFIG="+path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the Node suite failed (its output is above): %v", err)
	}
}
