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

package tokenserver

// Each check of the ServiceAccount method on its own. Against the real API server (see
// serviceaccount_test.go) TokenReview refuses most bad tokens first, which hides the token
// server's own checks; here a cluster that vouches for anything leaves each check alone in
// front of the attack, and kubeAPI.review meets API answers a real API server rarely gives.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

const fakeClusterIssuer = "https://kubernetes.default.svc.cluster.local"

// permissiveCluster publishes fixed service-account keys and has a TokenReview that vouches
// for every token, as the subject the token itself names (or as username, when set).
type permissiveCluster struct {
	keys     map[string]*jose.JSONWebKey
	username string
	reviews  atomic.Int32
}

func (p *permissiveCluster) discover(context.Context) (string, map[string]*jose.JSONWebKey, error) {
	return fakeClusterIssuer, p.keys, nil
}

func (p *permissiveCluster) review(_ context.Context, token, _ string) (string, error) {
	p.reviews.Add(1)
	if p.username != "" {
		return p.username, nil
	}
	parts := strings.Split(token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.Sub, nil
}

// clusterJWK is k's public key as the cluster's JWKS publishes it.
func clusterJWK(k clientKey) *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig", Algorithm: string(k.alg)}
}

// as is k signing under another algorithm.
func (k clientKey) as(alg jose.SignatureAlgorithm) clientKey { k.alg = alg; return k }

// saGuardFixture is a token server bound to a permissive cluster, with one client bound to
// the ServiceAccount apps/robot.
type saGuardFixture struct {
	*testServer
	cluster *permissiveCluster
	ec, rsa clientKey
	p384    *ecdsa.PrivateKey
	rsa1024 *rsa.PrivateKey
	ed      ed25519.PrivateKey
	id      string
}

func newSAGuardFixture(t testing.TB) *saGuardFixture {
	t.Helper()
	ts := newTestServer(t, manyFailures)
	f := &saGuardFixture{testServer: ts, ec: newClientKey(t, jose.ES256, "ec"), rsa: newClientKey(t, jose.RS256, "rsa")}
	bare := clusterJWK(f.rsa)
	bare.Algorithm = "" // the API server's JWKS may omit alg
	f.cluster = &permissiveCluster{keys: map[string]*jose.JSONWebKey{"ec": clusterJWK(f.ec), "rsa": bare}}
	// Keys no API server would publish, without alg, for the signature checks' own bindings.
	var err error
	if f.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		t.Fatal(err)
	}
	if _, f.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	declared := clusterJWK(f.rsa)
	declared.KeyID, declared.Algorithm = "rsa-rs384", "RS384"
	f.cluster.keys[declared.KeyID] = declared
	for kid, k := range map[string]crypto.Signer{"p384": f.p384, "rsa1024": f.rsa1024, "ed": f.ed} {
		f.cluster.keys[kid] = &jose.JSONWebKey{Key: k.Public(), KeyID: kid, Use: "sig"}
	}
	ts.bindCluster(f.cluster)
	f.id, _ = ts.addClient(t, func(r *credential.Record) {
		r.Namespace, r.Method, r.ServiceAccountName, r.Secrets = "apps", credential.MethodServiceAccount, "robot", nil
	})
	return f
}

// claims are valid ServiceAccount token claims for apps/robot, audience the token server.
func (f *saGuardFixture) claims() map[string]any {
	now := f.clock.Now()
	return map[string]any{
		"iss": fakeClusterIssuer, "sub": "system:serviceaccount:apps:robot", "aud": []string{testIssuer},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

func (f *saGuardFixture) with(kv ...any) map[string]any {
	c := f.claims()
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// TestServiceAccountTokenServerChecksEachClaimItself: with a TokenReview that vouches for
// anything, each refusal below comes from the one check of the token server it names.
func TestServiceAccountTokenServerChecksEachClaimItself(t *testing.T) {
	f := newSAGuardFixture(t)
	now := f.clock.Now()
	stranger := newClientKey(t, jose.ES256, "ec")
	if got := f.status(t, assertionForm(f.ec.sign(t, f.claims()))); got != "200 " {
		t.Fatalf("the valid token: %s", got) // the control: refusals below are the checks'
	}
	if got := f.status(t, assertionForm(f.rsa.sign(t, f.claims()))); got != "200 " {
		t.Fatalf("the valid RS256 token: %s", got)
	}
	refused := map[string]string{
		// verifyServiceAccountToken's a.hasAudience(s.opts.Issuer)
		"aud without the token server":  f.ec.sign(t, f.with("aud", []string{"https://kubernetes.default.svc"})),
		"aud is the token endpoint URL": f.ec.sign(t, f.with("aud", testIssuer+TokenPath)),
		"another issuer":                f.ec.sign(t, f.with("iss", "https://attacker.example")),
		"expired":                       f.ec.sign(t, f.with("exp", now.Add(-time.Second).Unix())),
		"nbf in the future":             f.ec.sign(t, f.with("nbf", now.Add(time.Minute).Unix())),
		"iat in the future":             f.ec.sign(t, f.with("iat", now.Add(time.Minute).Unix())),
		"signed by another key":         stranger.sign(t, f.claims()),
		// PS256 verifies with the cluster's RSA key, but the API server never signs with it.
		"PS256 by the cluster's RSA key": f.rsa.as(jose.PS256).sign(t, f.claims()),
		// A key that declares its alg verifies that one only.
		"RS256 by a key declared RS384": clientKey{priv: f.rsa.priv, alg: jose.RS256, kid: "rsa-rs384"}.sign(t, f.claims()),
		// Each algorithm is bound to its key type and size, whatever the header says.
		"ES256 header, P-384 key signing a SHA-256 digest": unsigned(`{"alg":"ES256","kid":"p384"}`, f.claims(), func(in string) []byte {
			d := sha256.Sum256([]byte(in))
			r, s, err := ecdsa.Sign(rand.Reader, f.p384, d[:])
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, 96)
			r.FillBytes(out[:48])
			s.FillBytes(out[48:])
			return out
		}),
		"ES256 header, Ed25519 key": unsigned(`{"alg":"ES256","kid":"ed"}`, f.claims(), func(in string) []byte {
			return ed25519.Sign(f.ed, []byte(in))
		}),
		"RS256 by a 1024-bit RSA key": unsigned(`{"alg":"RS256","kid":"rsa1024"}`, f.claims(), func(in string) []byte {
			d := sha256.Sum256([]byte(in))
			sig, err := rsa.SignPKCS1v15(rand.Reader, f.rsa1024, crypto.SHA256, d[:])
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}),
	}
	for name, tok := range refused {
		t.Run(name, func(t *testing.T) {
			if got := f.status(t, assertionForm(tok)); got != "400 invalid_client" {
				t.Fatalf("got %s, want 400 invalid_client (a client assertion: no Authorization header, RFC 6749 §5.2)", got)
			}
		})
	}
}

// TestServiceAccountReviewedUserMustBeTheTokenSubject: TokenReview vouching for another user
// than the token's sub is a refusal, not a login as either.
func TestServiceAccountReviewedUserMustBeTheTokenSubject(t *testing.T) {
	f := newSAGuardFixture(t)
	f.cluster.username = "system:serviceaccount:apps:someone-else"
	if got := f.status(t, assertionForm(f.ec.sign(t, f.claims()))); got != "400 invalid_client" {
		t.Fatalf("got %s, want 400 invalid_client (a client assertion: no Authorization header, RFC 6749 §5.2)", got)
	}
}

// TestServiceAccountCachedAnswerKeepsItsLimits: an answer from the TokenReview cache still
// checks client_id and ends at the token's exp when that comes before the cache TTL.
func TestServiceAccountCachedAnswerKeepsItsLimits(t *testing.T) {
	f := newSAGuardFixture(t)
	tok := f.ec.sign(t, f.with("exp", f.clock.Now().Add(20*time.Second).Unix()))
	if got := f.status(t, assertionForm(tok)); got != "200 " {
		t.Fatalf("first use: %s", got)
	}
	reviews := f.cluster.reviews.Load()
	form := assertionForm(tok)
	form.Set("client_id", "m2mc_someoneelse")
	if got := f.status(t, form); got != "400 invalid_client" {
		t.Fatalf("cached token with another client_id: %s", got)
	}
	if got := f.status(t, assertionForm(tok)); got != "200 " {
		t.Fatalf("cached token: %s", got)
	}
	if n := f.cluster.reviews.Load() - reviews; n != 0 {
		t.Fatalf("%d TokenReviews for a cached token", n)
	}
	f.clock.Add(21 * time.Second) // past exp, within the cache TTL
	if got := f.status(t, assertionForm(tok)); got != "400 invalid_client" {
		t.Fatalf("cached token after its exp: %s", got)
	}
}

// TestKubeAPIReviewChecksTheAnswer runs kubeAPI.review against an HTTP server that speaks the
// TokenReview API. The real API server refuses a token for another audience itself
// (authenticated: false), so it cannot show that review also checks status.audiences: an
// authenticator that ignores audiences (a webhook, a static token) may answer authenticated
// with other audiences or none.
func TestKubeAPIReviewChecksTheAnswer(t *testing.T) {
	const token, user = "the-token", "system:serviceaccount:apps:robot"
	var answer atomic.Pointer[authnv1.TokenReviewStatus]
	var lastSpec atomic.Pointer[authnv1.TokenReviewSpec]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		// Speak whatever the clientset speaks (protobuf for built-in types, or JSON).
		mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
		body, err := io.ReadAll(r.Body)
		if !ok || err != nil {
			http.Error(w, "unsupported request", http.StatusUnsupportedMediaType)
			return
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		tr, isReview := obj.(*authnv1.TokenReview)
		if err != nil || !isReview {
			http.Error(w, "not a TokenReview", http.StatusBadRequest)
			return
		}
		lastSpec.Store(&tr.Spec)
		st := answer.Load()
		if st == nil {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		tr.Status = *st
		w.Header().Set("Content-Type", info.MediaType)
		w.WriteHeader(http.StatusCreated)
		_ = scheme.Codecs.EncoderForVersion(info.Serializer, authnv1.SchemeGroupVersion).Encode(tr, w)
	}))
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := kubeAPI{cs: cs}
	ok := authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"x", testIssuer}, User: authnv1.UserInfo{Username: user}}
	answer.Store(&ok)
	got, err := api.review(context.Background(), token, testIssuer)
	if err != nil || got != user {
		t.Fatalf("authenticated for the issuer: %q, %v", got, err)
	}
	if s := lastSpec.Load(); s.Token != token || len(s.Audiences) != 1 || s.Audiences[0] != testIssuer {
		t.Fatalf("the review asked %+v, want the token and audiences [issuer]", s)
	}
	refused := map[string]authnv1.TokenReviewStatus{
		"authenticated for other audiences": {Authenticated: true, Audiences: []string{"https://kubernetes.default.svc"}, User: ok.User},
		"authenticated without audiences":   {Authenticated: true, User: ok.User},
		"not authenticated":                 {Authenticated: false, Audiences: ok.Audiences, User: ok.User},
		"authenticated with an error":       {Authenticated: true, Audiences: ok.Audiences, User: ok.User, Error: "webhook failed"},
	}
	for name, st := range refused {
		t.Run(name, func(t *testing.T) {
			answer.Store(&st)
			if got, err := api.review(context.Background(), token, testIssuer); !errors.Is(err, errNotAuthenticated) {
				t.Fatalf("got %q, %v; want errNotAuthenticated", got, err)
			}
		})
	}
	t.Run("an API error is an error, not a refusal of the token", func(t *testing.T) {
		answer.Store(nil)
		if _, err := api.review(context.Background(), token, testIssuer); err == nil || errors.Is(err, errNotAuthenticated) {
			t.Fatalf("got %v", err)
		}
	})
}
