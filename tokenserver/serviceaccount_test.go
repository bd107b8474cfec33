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

// The ServiceAccount method against envtest's genuine API server: TokenRequest issues the
// projected tokens, the API server's OIDC discovery serves the keys, TokenReview confirms.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// saFixture is a live token server (clock at the genuine time: ServiceAccount tokens carry genuine
// times) and a client namespace.
type saFixture struct {
	*liveServer
	cs      kubernetes.Interface
	ns      string
	reviews *atomic.Int32
}

func newSAFixture(t testing.TB, mut ...func(*Options)) *saFixture {
	t.Helper()
	reviews := &atomic.Int32{}
	opts := append([]func(*Options){func(o *Options) { o.AuthFailureBurst = 1000; o.AuditLog = io.Discard }}, mut...)
	ls := startLiveServerWith(t, countTokenReviews(reviews), opts...)
	ls.clock.Set(time.Now())
	cfg, _ := apiServer(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &saFixture{liveServer: ls, cs: cs, reviews: reviews, ns: ls.namespace(t, "apps")}
	return f
}

// countTokenReviews counts the token server's TokenReview requests.
func countTokenReviews(n *atomic.Int32) func(*rest.Config) {
	return func(c *rest.Config) {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/tokenreviews") {
					n.Add(1)
				}
				return rt.RoundTrip(r)
			})
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// namespace creates a fresh namespace named after prefix.
func (ls *liveServer) namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsSeq.Add(1))
	if err := ls.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (f *saFixture) serviceAccount(t testing.TB, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := f.k8s.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	return sa
}

// token asks TokenRequest for a token of the ServiceAccount; no audience means the API
// server's default.
func (f *saFixture) token(t testing.TB, ns, name string, audiences ...string) string {
	t.Helper()
	return f.tokenFor(t, ns, name, 10*time.Minute, audiences...)
}

// tokenFor asks TokenRequest for a token that lives ttl.
func (f *saFixture) tokenFor(t testing.TB, ns, name string, ttl time.Duration, audiences ...string) string {
	t.Helper()
	exp := int64(ttl / time.Second)
	tr, err := f.cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// bind loads a ServiceAccount client's record and waits until the server has it.
func (f *saFixture) bind(t testing.TB, ns, sa string) *credential.Record {
	t.Helper()
	rec, _ := newRecord(t, func(r *credential.Record) {
		r.Namespace, r.Method, r.ServiceAccountName, r.Secrets = ns, credential.MethodServiceAccount, sa, nil
	})
	f.putRecord(t, rec)
	NewWithT(t).Eventually(func() bool { return f.Index().lookupSubject(ns+"/"+sa) != nil }).WithTimeout(5 * time.Second).Should(BeTrue())
	return rec
}

// apiAuthenticates asks TokenReview itself whether it accepts the token for the token server.
func (f *saFixture) apiAuthenticates(t testing.TB, token string) bool {
	t.Helper()
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{f.url}}}
	res, err := f.cs.AuthenticationV1().TokenReviews().Create(context.Background(), tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status.Authenticated
}

func (f *saFixture) exchange(t testing.TB, assertion string) (int, tokenResponse) {
	t.Helper()
	w := f.do(tokenReq(assertionForm(assertion), "", ""))
	return w.Code, decodeResponse(t, w.Body)
}

func TestServiceAccountAcceptance(t *testing.T) {
	f := newSAFixture(t)
	g := NewWithT(t)
	f.serviceAccount(t, f.ns, "robot")
	rec := f.bind(t, f.ns, "robot")
	other := f.namespace(t, "elsewhere")
	f.serviceAccount(t, other, "robot")

	t.Run("a token for robot with the issuer as audience is exchanged for an access token", func(t *testing.T) {
		code, tr := f.exchange(t, f.token(t, f.ns, "robot", f.url))
		if code != 200 {
			t.Fatalf("status %d %+v", code, tr)
		}
		_, c, raw := verifyToken(t, tr.AccessToken, fetchJWKS(t, f.url))
		if c.Subject != rec.ClientID || c.ClientID != rec.ClientID || c.Namespace != f.ns || raw["aud"] != audBilling {
			t.Fatalf("claims %+v", raw)
		}
	})
	refused := map[string]func(t *testing.T) string{
		"the API server's default audience": func(t *testing.T) string { return f.token(t, f.ns, "robot") },
		"another audience only":             func(t *testing.T) string { return f.token(t, f.ns, "robot", "https://other.example.test") },
		"another namespace's robot":         func(t *testing.T) string { return f.token(t, other, "robot", f.url) },
		"a forged token naming robot":       func(t *testing.T) string { return forgeServiceAccountToken(t, f.token(t, f.ns, "robot", f.url)) },
		"a token cut short":                 func(t *testing.T) string { tok := f.token(t, f.ns, "robot", f.url); return tok[:len(tok)-2] },
		"a token with a trailing newline":   func(t *testing.T) string { return f.token(t, f.ns, "robot", f.url) + "\n" },
	}
	for name, make := range refused {
		t.Run(name, func(t *testing.T) {
			if code, tr := f.exchange(t, make(t)); code != 400 || tr.Error != errInvalidClient {
				t.Fatalf("got %d %s, want 400 invalid_client", code, tr.Error)
			}
		})
	}
	t.Run("client_id, when sent, must be robot's client", func(t *testing.T) {
		form := assertionForm(f.token(t, f.ns, "robot", f.url))
		form.Set("client_id", "m2mc_someoneelse")
		if w := f.do(tokenReq(form, "", "")); w.Code != 400 {
			t.Fatalf("status %d", w.Code)
		}
		form.Set("client_id", rec.ClientID)
		if w := f.do(tokenReq(form, "", "")); w.Code != 200 {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
	})
	t.Run("an expired token", func(t *testing.T) {
		tok := f.token(t, f.ns, "robot", f.url)
		if code, _ := f.exchange(t, tok); code != 200 {
			t.Fatalf("fresh token: %d", code)
		}
		f.clock.Add(11 * time.Minute) // TokenRequest's token lives 10 minutes
		defer f.clock.Set(time.Now())
		if code, tr := f.exchange(t, tok); code != 400 || tr.Error != errInvalidClient {
			t.Fatalf("expired token: %d %s", code, tr.Error)
		}
	})
	t.Run("a token of a deleted ServiceAccount", func(t *testing.T) {
		doomed := f.serviceAccount(t, f.ns, "doomed")
		f.bind(t, f.ns, "doomed")
		unused := f.token(t, f.ns, "doomed", f.url)
		used := f.tokenFor(t, f.ns, "doomed", time.Hour, f.url)
		if code, _ := f.exchange(t, used); code != 200 {
			t.Fatalf("before deletion: %d", code)
		}
		g.Expect(f.k8s.Delete(context.Background(), doomed)).To(Succeed())
		// The signature still verifies: only TokenReview knows the ServiceAccount is gone. The
		// API server learns of the deletion asynchronously, and a yes it gives meanwhile would
		// be cached (by it for 10 s, by the token server for a minute of the still clock), so
		// wait for its own no first: then the token server must refuse a token it never
		// confirmed, at once.
		g.Eventually(func() bool { return f.apiAuthenticates(t, unused) }).WithTimeout(30 * time.Second).Should(BeFalse())
		if code, tr := f.exchange(t, unused); code != 400 || tr.Error != errInvalidClient {
			t.Fatalf("a token of the deleted ServiceAccount: %d %s", code, tr.Error)
		}
		// A token confirmed before the deletion is trusted for at most a minute more: once the
		// cached answer expires, TokenReview is asked again. The API server itself caches a
		// successful authentication for a few seconds (10 s in kube-apiserver), so the refusal
		// comes within a minute plus that, hence one minute more of server clock per poll.
		defer f.clock.Set(time.Now())
		g.Eventually(func() string {
			f.clock.Add(reviewCacheTTL)
			code, tr := f.exchange(t, used)
			return fmt.Sprint(code, " ", tr.Error)
		}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Equal("400 invalid_client"))
	})
}

func TestServiceAccountTokenReviewIsCached(t *testing.T) {
	f := newSAFixture(t)
	f.serviceAccount(t, f.ns, "robot")
	f.bind(t, f.ns, "robot")
	tok := f.token(t, f.ns, "robot", f.url)
	before := f.reviews.Load()
	for i := 0; i < 5; i++ {
		if code, tr := f.exchange(t, tok); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, tr.Error)
		}
	}
	if n := f.reviews.Load() - before; n != 1 {
		t.Fatalf("%d TokenReviews for five uses of one token, want 1", n)
	}
	f.clock.Add(reviewCacheTTL + time.Second)
	defer f.clock.Set(time.Now())
	if code, _ := f.exchange(t, tok); code != 200 {
		t.Fatalf("after the cache expired: %d", code)
	}
	if n := f.reviews.Load() - before; n != 2 {
		t.Fatalf("%d TokenReviews after the cached answer expired, want 2", n)
	}
}

func TestTwoClientsBoundToOneServiceAccountAreBothRefused(t *testing.T) {
	f := newSAFixture(t)
	f.serviceAccount(t, f.ns, "shared")
	first := f.bind(t, f.ns, "shared")
	tok := f.token(t, f.ns, "shared", f.url)
	if code, _ := f.exchange(t, tok); code != 200 {
		t.Fatalf("one client: %d", code)
	}
	second, _ := newRecord(t, func(r *credential.Record) {
		r.Namespace, r.Method, r.ServiceAccountName, r.Secrets = f.ns, credential.MethodServiceAccount, "shared", nil
	})
	f.putRecord(t, second)
	g := NewWithT(t)
	g.Eventually(func() int { code, _ := f.exchange(t, f.token(t, f.ns, "shared", f.url)); return code }).WithTimeout(5 * time.Second).Should(Equal(400))
	g.Expect(f.k8s.Delete(context.Background(), f.recordSecret(t, second))).To(Succeed())
	g.Eventually(func() string {
		_, tr := f.exchange(t, f.token(t, f.ns, "shared", f.url))
		if tr.AccessToken == "" {
			return tr.Error
		}
		_, c, _ := verifyToken(t, tr.AccessToken, fetchJWKS(t, f.url))
		return c.ClientID
	}).WithTimeout(5 * time.Second).Should(Equal(first.ClientID))
}

// forgeServiceAccountToken re-signs a genuine token's header and claims with a key of its own
// (same kid, same alg): only the cluster's key may vouch for a ServiceAccount.
func forgeServiceAccountToken(t testing.TB, genuine string) string {
	t.Helper()
	parts := strings.Split(genuine, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	var key any
	var err error
	if strings.HasPrefix(h["alg"].(string), "ES") {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(h["alg"].(string)), Key: key},
		(&jose.SignerOptions{}).WithHeader("kid", h["kid"]))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// TestReviewCacheIsPerSubject: a ServiceAccount at its cap has no further answers cached; the
// others' answers stay, and theirs are still cached; past the safety net only a subject above
// its fair share is refused; expired answers make room again.
func TestReviewCacheIsPerSubject(t *testing.T) {
	rc := newReviewCache()
	rc.perSubject, rc.soft = 4, 10
	now := testT0
	until := now.Add(reviewCacheTTL)
	hash := func(s string) [32]byte { return hashAssertion([]byte(s)) }
	rc.put(hash("victim-1"), "apps/victim", until, now)
	for i := 0; i < 20; i++ {
		rc.put(hash(fmt.Sprint("flood-", i)), "apps/flood", until, now)
	}
	if n := rc.subjects["apps/flood"].n; n != rc.perSubject {
		t.Fatalf("the flooding subject holds %d answers, want its cap %d", n, rc.perSubject)
	}
	for _, tok := range []string{"victim-1", "victim-2"} {
		h := hash(tok)
		rc.put(h, "apps/victim", until, now)
		if sub, ok := rc.get(&h, now); !ok || sub != "apps/victim" {
			t.Fatalf("%s is not cached after the flood: %q %v", tok, sub, ok)
		}
	}
	// Past the safety net (10 entries): subjects above 10/4 are refused, a new one is not.
	for i := 0; i < 4; i++ {
		rc.put(hash(fmt.Sprint("other-", i)), "apps/other", until, now)
	}
	h := hash("newcomer")
	rc.put(h, "apps/newcomer", until, now)
	if _, ok := rc.get(&h, now); !ok {
		t.Fatal("a subject with no answer cached was refused room past the safety net")
	}
	if len(rc.entries) > 2*rc.soft {
		t.Fatalf("%d entries, more than twice the safety net", len(rc.entries))
	}
	later := until.Add(time.Second)
	h = hash("flood-after")
	rc.put(h, "apps/flood", later.Add(reviewCacheTTL), later)
	if _, ok := rc.get(&h, later); !ok || len(rc.entries) != 1 || len(rc.subjects) != 1 {
		t.Fatalf("expired answers were not swept: %d entries, %d subjects", len(rc.entries), len(rc.subjects))
	}
}

// TestServiceAccountFloodKeepsOthersCached: against the genuine API server, one ServiceAccount
// exchanges more distinct tokens than its share of the TokenReview cache; another
// ServiceAccount's tokens, old and new, are still answered from the cache (one TokenReview
// each), and the flood's tokens are all still accepted.
func TestServiceAccountFloodKeepsOthersCached(t *testing.T) {
	f := newSAFixture(t)
	cache := f.serviceAccounts.Load().cache
	cache.mu.Lock()
	cache.perSubject, cache.soft = 4, 16
	cache.mu.Unlock()
	for _, sa := range []string{"robot", "flood"} {
		f.serviceAccount(t, f.ns, sa)
		f.bind(t, f.ns, sa)
	}
	exchangeOK := func(tok string) {
		t.Helper()
		if code, tr := f.exchange(t, tok); code != 200 {
			t.Fatalf("status %d %s", code, tr.Error)
		}
	}
	before := f.token(t, f.ns, "robot", f.url)
	exchangeOK(before)
	for i := 0; i < 24; i++ {
		exchangeOK(f.token(t, f.ns, "flood", f.url))
	}
	after := f.token(t, f.ns, "robot", f.url)
	reviews := f.reviews.Load()
	exchangeOK(after) // one TokenReview: first use
	for i := 0; i < 3; i++ {
		exchangeOK(before)
		exchangeOK(after)
	}
	if n := f.reviews.Load() - reviews; n != 1 {
		t.Fatalf("%d TokenReviews for robot's two tokens after the flood, want 1 (its first use of the new one)", n)
	}
}
