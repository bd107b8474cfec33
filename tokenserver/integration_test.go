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

// Tests against a real API server (envtest): the informers, the signing-key reconciler, and a
// real HTTP listener. The control plane starts once, on first use, so that unit tests, benchmarks
// and fuzzing do not pay for it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

var (
	envOnce sync.Once
	envErr  error
	testEnv *envtest.Environment
	envCfg  *rest.Config
	envK8s  client.Client
	nsSeq   atomic.Int32
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testEnv != nil {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// apiServer starts the shared control plane on first use. This package needs no CRDs.
func apiServer(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	envOnce.Do(func() {
		testEnv, envErr = testenv.New()
		if envErr != nil {
			return
		}
		testEnv.CRDDirectoryPaths, testEnv.ErrorIfCRDPathMissing = nil, false
		if envCfg, envErr = testEnv.Start(); envErr != nil {
			testEnv = nil
			return
		}
		envK8s, envErr = client.New(envCfg, client.Options{Scheme: testenv.Scheme()})
	})
	if envErr != nil {
		t.Fatalf("envtest: %v", envErr)
	}
	return envCfg, envK8s
}

// liveServer is a token server fed by informers from envtest, serving on a real listener.
type liveServer struct {
	*testServer
	k8s client.Client
	ns  string
	url string
	// metricsURL is the base URL of the metrics port (/healthz, /readyz, /metrics).
	metricsURL string
	keys       *skctrl.Reconciler
	keysReq    reconcile.Request
}

func startLiveServer(t *testing.T, mut ...func(*Options)) *liveServer {
	t.Helper()
	return startLiveServerWith(t, nil, mut...)
}

// startLiveServerWith is startLiveServer with the token server's API client built from the
// config as wrap changes it (to observe its requests).
func startLiveServerWith(t testing.TB, wrap func(*rest.Config), mut ...func(*Options)) *liveServer {
	t.Helper()
	cfg, k8s := apiServer(t)
	if wrap != nil {
		cfg = rest.CopyConfig(cfg)
		wrap(cfg)
	}
	ns := fmt.Sprintf("m2m-system-%d", nsSeq.Add(1))
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	// The signing-key Secret comes from the real reconciler, driven by the same fake clock.
	ls := &liveServer{k8s: k8s, ns: ns,
		keys: &skctrl.Reconciler{Client: k8s, Namespace: ns, Name: signingkey.DefaultSecretName, Clock: clock.Now,
			Policy: signingkey.Policy{Algorithm: signingkey.ES256, RotationInterval: 24 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 2 * time.Hour}},
		keysReq: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: signingkey.DefaultSecretName}},
	}
	ls.reconcileKeys(t)

	ln, metricsLn := loopbackListener(t), loopbackListener(t)
	ls.url, ls.metricsURL = "http://"+ln.Addr().String(), "http://"+metricsLn.Addr().String()
	opts := Options{Issuer: ls.url, Namespace: ns, Clock: clock.Now, RateLimit: 1e6, RateBurst: 1e6}
	for _, m := range mut {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ls.testServer = &testServer{Server: s, clock: clock}
	runCtx, cancel := context.WithCancel(ctx)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StartInformers(runCtx, cs); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeWithMetrics(runCtx, ln, metricsLn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	NewWithT(t).Eventually(s.Ready).WithTimeout(10 * time.Second).Should(BeTrue())
	return ls
}

func (ls *liveServer) reconcileKeys(t testing.TB) {
	t.Helper()
	if _, err := ls.keys.Reconcile(context.Background(), ls.keysReq); err != nil {
		t.Fatalf("reconciling signing keys: %v", err)
	}
}

func (ls *liveServer) keySet(t *testing.T) *signingkey.Set {
	t.Helper()
	sec := &corev1.Secret{}
	if err := ls.k8s.Get(context.Background(), ls.keysReq.NamespacedName, sec); err != nil {
		t.Fatal(err)
	}
	set, err := signingkey.Decode(sec.Data[signingkey.DataKey])
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// recordSecret is the credential record Secret the controller writes.
func (ls *liveServer) recordSecret(t testing.TB, rec *credential.Record) *corev1.Secret {
	t.Helper()
	data, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ls.ns, Name: rec.UID, Labels: map[string]string{
			authv1alpha1.LabelClientID: rec.ClientID, authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue,
		}},
		Type: authv1alpha1.SecretTypeCredentialRecord,
		Data: map[string][]byte{credential.RecordKey: data},
	}
}

func (ls *liveServer) putRecord(t testing.TB, rec *credential.Record) {
	t.Helper()
	ctx := context.Background()
	want := ls.recordSecret(t, rec)
	cur := &corev1.Secret{}
	err := ls.k8s.Get(ctx, client.ObjectKeyFromObject(want), cur)
	if err != nil {
		if err := ls.k8s.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		return
	}
	cur.Data = want.Data
	if err := ls.k8s.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
}

// fetchJWKS gets the JWKS over HTTP.
func fetchJWKS(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: status %d, %v", resp.StatusCode, err)
	}
	return b
}

// TestInteropWithGolangOAuth2 gets tokens with golang.org/x/oauth2/clientcredentials, in both
// auth styles, from the real server fed through the informers, and verifies each with go-jose
// against the JWKS fetched over HTTP.
func TestInteropWithGolangOAuth2(t *testing.T) {
	ls := startLiveServer(t)
	rec, secret := newRecord(t, func(r *credential.Record) {
		r.Claims = map[string]string{"team": "payments"}
		r.Grants = append(r.Grants, credential.AudienceGrant{Audience: audReports, Scopes: []string{"reports:read"}})
	})
	ls.putRecord(t, rec)
	NewWithT(t).Eventually(func() bool { return ls.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())

	jwks := fetchJWKS(t, ls.url)
	active := ls.keySet(t).Find(signingkey.StateActive).KID
	for name, style := range map[string]oauth2.AuthStyle{"client_secret_basic": oauth2.AuthStyleInHeader, "client_secret_post": oauth2.AuthStyleInParams} {
		t.Run(name, func(t *testing.T) {
			cc := clientcredentials.Config{
				ClientID: rec.ClientID, ClientSecret: secret, TokenURL: ls.url + TokenPath, AuthStyle: style,
				Scopes: []string{"invoices:read"}, EndpointParams: url.Values{"resource": {audBilling}},
			}
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
				t.Errorf("token type %q expiry %v", tok.TokenType, tok.Expiry)
			}
			hdr, c, raw := verifyToken(t, tok.AccessToken, jwks)
			if hdr.ExtraHeaders["typ"] != "at+jwt" || hdr.KeyID != active || hdr.Algorithm != "ES256" {
				t.Errorf("header %+v", hdr)
			}
			if c.Issuer != ls.url || c.Subject != rec.ClientID || c.ClientID != rec.ClientID || c.Scope != "invoices:read" ||
				c.Namespace != rec.Namespace || c.Team != "payments" || raw["aud"] != audBilling || c.ID == "" {
				t.Errorf("claims %+v", raw)
			}
			if c.Expiry.Time().Sub(c.IssuedAt.Time()) != DefaultTokenTTL || c.NotBefore == nil {
				t.Errorf("exp-iat %v", c.Expiry.Time().Sub(c.IssuedAt.Time()))
			}
		})
	}
	// A wrong secret surfaces as the library's RetrieveError with the RFC 6749 code.
	_, err := (&clientcredentials.Config{ClientID: rec.ClientID, ClientSecret: "m2ms_wrong", TokenURL: ls.url + TokenPath, AuthStyle: oauth2.AuthStyleInHeader}).Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != errInvalidClient || re.Response.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestRecordChangesApplyWithinOneSecond updates the record Secret in the API server and expects
// the token endpoint to follow within 1 s.
func TestRecordChangesApplyWithinOneSecond(t *testing.T) {
	ls := startLiveServer(t)
	g := NewWithT(t)
	rec, secret := newRecord(t)
	status := func(form url.Values, id, sec string) func() string {
		return func() string {
			w := ls.do(tokenReq(form, id, sec))
			return fmt.Sprintf("%d %s", w.Code, decodeResponse(t, w.Body).Error)
		}
	}
	within := func(f func() string, want string) {
		t.Helper()
		g.Eventually(f).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Equal(want))
	}
	ls.putRecord(t, rec)
	within(status(grant(), rec.ClientID, secret), "200 ")

	rec.Disabled = true
	ls.putRecord(t, rec)
	within(status(grant(), rec.ClientID, secret), "400 unauthorized_client")

	rec.Disabled = false
	ls.putRecord(t, rec)
	within(status(grant(), rec.ClientID, secret), "200 ")

	// Secret rotation: the new hash replaces the old one.
	newSecret, _ := credential.NewSecret()
	rec.Secrets = []credential.SecretHash{{SHA256: credential.HashSecret(newSecret).String()}}
	ls.putRecord(t, rec)
	within(status(grant(), rec.ClientID, secret), "401 invalid_client")
	within(status(grant(), rec.ClientID, newSecret), "200 ")

	// Grant change: a scope is withdrawn.
	write := grant()
	write.Set("scope", "invoices:write")
	within(status(write, rec.ClientID, newSecret), "200 ")
	rec.Grants[0].Scopes = []string{"invoices:read"}
	ls.putRecord(t, rec)
	within(status(write, rec.ClientID, newSecret), "400 invalid_scope")

	// A broken record: the client is unknown (fail closed), and counted.
	sec := &corev1.Secret{}
	g.Expect(ls.k8s.Get(context.Background(), types.NamespacedName{Namespace: ls.ns, Name: rec.UID}, sec)).To(Succeed())
	sec.Data[credential.RecordKey] = []byte(`{"version":1,`)
	g.Expect(ls.k8s.Update(context.Background(), sec)).To(Succeed())
	within(status(grant(), rec.ClientID, newSecret), "401 invalid_client")
	g.Expect(ls.metricsText(t)).To(ContainSubstring("m2m_tokenserver_broken_records 1"))

	ls.putRecord(t, rec)
	within(status(grant(), rec.ClientID, newSecret), "200 ")

	// Deletion.
	g.Expect(ls.k8s.Delete(context.Background(), ls.recordSecret(t, rec))).To(Succeed())
	within(status(grant(), rec.ClientID, newSecret), "401 invalid_client")
}

func (ls *liveServer) metricsText(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(ls.metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestInformersSeeOnlyTheirSecrets: records in other namespaces and Secrets of another type in
// the system namespace are neither loaded nor counted as broken.
func TestInformersSeeOnlyTheirSecrets(t *testing.T) {
	ls := startLiveServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	elsewhere, _ := newRecord(t)
	other := ls.recordSecret(t, elsewhere)
	other.Namespace = "default"
	g.Expect(ls.k8s.Create(ctx, other)).To(Succeed())
	wrongType, _ := newRecord(t)
	pod := ls.recordSecret(t, wrongType)
	pod.Type = authv1alpha1.SecretTypeClientCredentials
	g.Expect(ls.k8s.Create(ctx, pod)).To(Succeed())
	unlabelled, _ := newRecord(t)
	plain := ls.recordSecret(t, unlabelled)
	plain.Labels = nil
	g.Expect(ls.k8s.Create(ctx, plain)).To(Succeed())

	// Created last: once it is loaded, the informer has seen everything before it.
	rec, _ := newRecord(t)
	ls.putRecord(t, rec)
	g.Eventually(func() bool { return ls.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())
	g.Expect(ls.Index().Len()).To(Equal(1))
	for _, r := range []*credential.Record{elsewhere, wrongType, unlabelled} {
		g.Expect(ls.Index().Lookup(r.ClientID)).To(BeFalse())
	}
	g.Expect(ls.metricsText(t)).To(ContainSubstring("m2m_tokenserver_broken_records 0"))
}

// TestRotationThroughTheAPIServer: the signing-key reconciler rotates (fake clock), the token
// server follows through its informer, and verifiers holding an older JWKS keep working.
func TestRotationThroughTheAPIServer(t *testing.T) {
	ls := startLiveServer(t)
	g := NewWithT(t)
	rec, secret := newRecord(t)
	ls.putRecord(t, rec)
	g.Eventually(func() bool { return ls.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())
	signedBy := func() string {
		w := ls.do(tokenReq(grant(), rec.ClientID, secret))
		if w.Code != 200 {
			return fmt.Sprintf("status %d", w.Code)
		}
		hdr, _, _ := verifyToken(t, decodeResponse(t, w.Body).AccessToken, fetchJWKS(t, ls.url))
		return hdr.KeyID
	}
	oldKID := ls.keySet(t).Find(signingkey.StateActive).KID
	g.Expect(signedBy()).To(Equal(oldKID))

	ls.clock.Set(testT0.Add(23 * time.Hour))
	ls.reconcileKeys(t)
	nextKID := ls.keySet(t).Find(signingkey.StateNext).KID
	g.Eventually(func() string { return string(fetchJWKS(t, ls.url)) }).WithTimeout(time.Second).Should(ContainSubstring(nextKID))
	cachedJWKS := fetchJWKS(t, ls.url)
	g.Expect(signedBy()).To(Equal(oldKID), "the next key must not sign before its activation")
	oldToken := ls.issue(t, grant(), rec.ClientID, secret).AccessToken

	ls.clock.Set(testT0.Add(24 * time.Hour))
	ls.reconcileKeys(t)
	g.Eventually(signedBy).WithTimeout(time.Second).Should(Equal(nextKID))
	verifyToken(t, ls.issue(t, grant(), rec.ClientID, secret).AccessToken, cachedJWKS) // an old cache knows the new key
	verifyToken(t, oldToken, fetchJWKS(t, ls.url))                                     // old tokens still verify

	ls.clock.Set(testT0.Add(26 * time.Hour))
	ls.reconcileKeys(t)
	g.Eventually(func() string { return string(fetchJWKS(t, ls.url)) }).WithTimeout(time.Second).ShouldNot(ContainSubstring(oldKID))
	g.Expect(strings.Contains(string(fetchJWKS(t, ls.url)), nextKID)).To(BeTrue())
}

// TestRunServesAndStops runs the whole server with Run and stops it through its context: the
// probes and metrics answer on the metrics port only.
func TestRunServesAndStops(t *testing.T) {
	ls := startLiveServer(t) // provides a namespace with signing keys
	cfg, _ := apiServer(t)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Issuer: "http://" + addr, Addr: addr, MetricsAddr: metricsAddr, Namespace: ls.ns, AuditLog: io.Discard})
	}()
	g := NewWithT(t)
	g.Eventually(func() int { return httpStatus("http://" + metricsAddr + "/readyz") }).WithTimeout(10 * time.Second).Should(Equal(200))
	g.Expect(httpStatus("http://" + metricsAddr + "/metrics")).To(Equal(200))
	g.Expect(httpStatus("http://" + addr + JWKSPath)).To(Equal(200))
	for _, p := range []string{"/readyz", "/healthz", "/metrics"} {
		g.Expect(httpStatus("http://"+addr+p)).To(Equal(404), "the token port serves %s", p)
	}
	cancel()
	g.Eventually(done).WithTimeout(15 * time.Second).Should(Receive(BeNil()))
}

// loopbackListener listens on a free loopback port.
func loopbackListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln := loopbackListener(t)
	defer ln.Close()
	return ln.Addr().String()
}
