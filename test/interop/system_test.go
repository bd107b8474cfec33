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
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/cli"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// algEnv selects the signing algorithm of the system one child process runs the suite against.
const algEnv = "INTEROP_SIGNING_ALG"

// The tenant the suite creates: one API (audience) and its clients.
const (
	tenant   = "interop"
	audience = "api.interop"
	scopeR   = "things:read"
	scopeW   = "things:write"
)

// TestInterop runs the whole suite once per signing algorithm, each in a child process of its
// own: a process holds one controller (controller-runtime keeps controller names global), and
// every library must work against every algorithm the token server can sign with.
func TestInterop(t *testing.T) {
	if os.Getenv(algEnv) != "" {
		t.Skip("child process: TestAgainstSystem runs")
	}
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			start := time.Now()
			args := []string{"-test.run=^TestAgainstSystem$", "-test.timeout=10m"}
			if testing.Verbose() {
				args = append(args, "-test.v")
			}
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), algEnv+"="+alg)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("the suite against the %s system failed (its output is above): %v", alg, err)
			}
			t.Logf("INTEROP %s: every library passed in %s", alg, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// system is the running system and what the suite created in it.
type system struct {
	*cli.DevSystem
	alg string
	// asMetadata and oidcMetadata are the two discovery documents' URLs.
	asMetadata, oidcMetadata string
	// basic is a ClientSecret client; keys are PrivateKeyJWT clients by key algorithm.
	basic credentials
	keys  []keyClient
	// nothing is a ClientSecret client that no policy grants anything.
	nothing credentials
}

// credentials are a client's id and secret (none for PrivateKeyJWT clients).
type credentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// keyClient is a PrivateKeyJWT client and its private key, which only the client holds.
type keyClient struct {
	credentials
	// Alg is the JWS algorithm the client signs with: ES256, RS256 or Ed25519 (RFC 9864).
	Alg  string
	KID  string
	priv crypto.Signer
}

// startSystem starts the system as `m2m dev --signing-key-algorithm alg` does, and creates a
// policy and its clients.
func startSystem(t *testing.T, alg string) *system {
	t.Helper()
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir, err := testenv.AssetsDir()
		if err != nil {
			t.Fatalf("no control plane: %v", err)
		}
		t.Setenv("KUBEBUILDER_ASSETS", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dev, err := cli.StartDev(ctx, cli.DevConfig{Addr: "127.0.0.1:0", Dir: t.TempDir(), Namespace: "m2m-system",
		SigningKeyAlgorithm: alg, AuditLog: io.Discard})
	if err != nil {
		t.Fatalf("starting the system: %v", err)
	}
	t.Cleanup(dev.Stop)
	s := &system{DevSystem: dev, alg: alg,
		asMetadata:   dev.Issuer + "/.well-known/oauth-authorization-server",
		oidcMetadata: dev.Issuer + "/.well-known/openid-configuration"}
	eventually(t, "the token server is ready", func() error { return s.ready() })
	s.apply(t, ctx, fmt.Sprintf(policyYAML, tenant, tenant, audience, scopeR, scopeW, scopeR, scopeW, tenant))
	s.basic = s.secretClient(t, ctx, "basic")
	s.nothing = s.secretClient(t, ctx, "nothing") // asks for a scope no grant holds
	for _, alg := range []string{"ES256", "RS256", "Ed25519"} {
		s.keys = append(s.keys, s.keyClient(t, ctx, alg))
	}
	return s
}

const policyYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: %s
---
apiVersion: auth.m2m.dev/v1alpha1
kind: ScopePolicy
metadata:
  name: api
  namespace: %s
spec:
  audience: %s
  scopes:
    - name: %s
    - name: %s
  grants:
    - scopes: [%q, %q]
      clients:
        namespaces: [%s]
        selector:
          matchLabels:
            interop: "granted"
`

// ready reports whether /readyz answers 200.
func (s *system) ready() error {
	resp, err := http.Get(s.MetricsURL + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("readyz: %d %s", resp.StatusCode, b)
	}
	return nil
}

// apply creates every object of a YAML stream.
func (s *system) apply(t *testing.T, ctx context.Context, stream string) {
	t.Helper()
	for _, doc := range strings.Split(stream, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("parsing %s: %v", doc, err)
		}
		if err := s.Client.Create(ctx, u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// secretClient creates a ClientSecret client and returns its credentials once it is Ready.
// Only "basic" is granted (by label).
func (s *system) secretClient(t *testing.T, ctx context.Context, name string) credentials {
	t.Helper()
	m := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes, Audiences: audiences},
	}
	if name == "basic" {
		m.Labels = map[string]string{"interop": "granted"}
	}
	sec := s.create(t, ctx, m)
	return credentials{ClientID: string(sec.Data["client_id"]), ClientSecret: string(sec.Data["client_secret"])}
}

// keyClient creates a PrivateKeyJWT client whose JWKS holds the public half of a new key of
// the algorithm (ES256: P-256, RS256: RSA 2048, Ed25519: an OKP key; the JWK declares no alg,
// as jose's exportJWK writes it).
func (s *system) keyClient(t *testing.T, ctx context.Context, alg string) keyClient {
	t.Helper()
	priv := newPrivateKey(t, alg)
	kid := "interop-" + strings.ToLower(alg)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: kid, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	m := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "key-" + strings.ToLower(alg), Labels: map[string]string{"interop": "granted"}},
		Spec: authv1alpha1.M2MClientSpec{Scopes: scopes, Audiences: audiences,
			Authentication: &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT, JWKS: string(jwks)}},
	}
	sec := s.create(t, ctx, m)
	return keyClient{credentials: credentials{ClientID: string(sec.Data["client_id"])}, Alg: alg, KID: kid, priv: priv}
}

// newPrivateKey generates a key for alg: ES256 (P-256), RS256 (RSA 2048) or Ed25519.
func newPrivateKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "Ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// create creates the client and waits until it has a credential Secret, and is Ready if a
// grant holds it.
func (s *system) create(t *testing.T, ctx context.Context, m *authv1alpha1.M2MClient) *corev1.Secret {
	t.Helper()
	if err := s.Client.Create(ctx, m); err != nil {
		t.Fatalf("creating M2MClient %s: %v", m.Name, err)
	}
	sec := &corev1.Secret{}
	eventually(t, "M2MClient "+m.Name+" is ready", func() error {
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
			return err
		}
		granted := m.Labels["interop"] == "granted"
		if m.Status.ObservedGeneration != m.Generation || (granted && !meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionReady)) {
			return fmt.Errorf("not ready: %+v", m.Status.Conditions)
		}
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, sec); err != nil {
			return err
		}
		if len(sec.Data["client_id"]) == 0 {
			return fmt.Errorf("secret %s has no client_id yet", sec.Name)
		}
		return nil
	})
	return sec
}

// eventually retries check every 50 ms for 60 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 60 s: %v", what, err)
		}
		<-tick.C
	}
}

// TestAgainstSystem is the suite for one signing algorithm (a child process of TestInterop).
func TestAgainstSystem(t *testing.T) {
	alg := os.Getenv(algEnv)
	if alg == "" {
		t.Skip("run by TestInterop once per signing algorithm (or set " + algEnv + ")")
	}
	start := time.Now()
	s := startSystem(t, alg)
	t.Logf("INTEROP %s: system and clients ready in %s", alg, time.Since(start).Round(100*time.Millisecond))
	t.Run("go", func(t *testing.T) { goLibraries(t, s) })
	t.Run("node", func(t *testing.T) { nodeLibraries(t, s) })
}

// What every client of the suite asks for.
var (
	scopes    = []authv1alpha1.ScopeToken{scopeR, scopeW}
	audiences = []authv1alpha1.Audience{audience}
)
