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

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// clientKey is a private_key_jwt client's key pair as the client holds it.
type clientKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func newClientKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) clientKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{priv: priv, alg: alg, kid: kid}
}

// jwks is the public JWKS of the keys, as the M2MClient publishes it.
func jwksOf(t testing.TB, keys ...clientKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS of claims with the key (kid in the header when the key has one).
func (k clientKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertionClaimsFor are valid private_key_jwt claims for the client at now.
func assertionClaimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id, "sub": id, "aud": testIssuer, "jti": randomJTI(),
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
	}
}

func randomJTI() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// assertionForm is a token request authenticated by a client assertion.
func assertionForm(assertion string) url.Values {
	f := grant()
	f.Set("client_assertion_type", assertionTypeJWTBearer)
	f.Set("client_assertion", assertion)
	return f
}

func (ts *testServer) addKeyClient(t testing.TB, keys ...clientKey) string {
	t.Helper()
	id, _ := ts.addClient(t, func(r *credential.Record) {
		r.Method, r.Secrets, r.JWKS = credential.MethodPrivateKeyJWT, nil, jwksOf(t, keys...)
	})
	return id
}

// status answers "<code> <error>" for a token request.
func (ts *testServer) status(t testing.TB, form url.Values) string {
	t.Helper()
	w := ts.do(tokenReq(form, "", ""))
	return fmt.Sprintf("%d %s", w.Code, decodeResponse(t, w.Body).Error)
}

// unsigned builds a compact JWS with a hand-made header and signature.
func unsigned(header string, claims map[string]any, sig func(input string) []byte) string {
	p, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(p)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig(input))
}

// manyFailures lets one test refuse a client many times without reaching the 429 slow-down.
func manyFailures(o *Options) { o.AuthFailureBurst = 1000 }

func TestPrivateKeyJWTAcceptance(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	key := newClientKey(t, jose.ES256, "k1")
	id := ts.addKeyClient(t, key)
	now := ts.clock.Now()

	t.Run("a valid assertion gets a token for the client", func(t *testing.T) {
		a := key.sign(t, assertionClaimsFor(id, now))
		w := ts.do(tokenReq(assertionForm(a), "", ""))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		_, c, _ := verifyToken(t, decodeResponse(t, w.Body).AccessToken, ts.jwks(t))
		if c.Subject != id || c.ClientID != id {
			t.Fatalf("sub %q client_id %q, want %q", c.Subject, c.ClientID, id)
		}
		if got := ts.status(t, assertionForm(a)); got != "400 invalid_client" {
			t.Fatalf("replayed assertion: %s", got)
		}
	})

	pub := key.priv.Public().(*ecdsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pubJWK, _ := json.Marshal(jose.JSONWebKey{Key: pub})
	stranger := newClientKey(t, jose.ES256, "k1") // same kid, key not in the JWKS
	refused := map[string]func() string{
		"wrong aud": func() string {
			c := assertionClaimsFor(id, now)
			c["aud"] = "https://other.example.test"
			return key.sign(t, c)
		},
		"exp too far ahead": func() string {
			c := assertionClaimsFor(id, now)
			c["exp"] = now.Add(DefaultMaxAssertionLifetime + assertionLeeway + time.Second).Unix()
			return key.sign(t, c)
		},
		"expired": func() string {
			c := assertionClaimsFor(id, now)
			c["exp"] = now.Add(-time.Second).Unix()
			return key.sign(t, c)
		},
		"not yet valid": func() string {
			c := assertionClaimsFor(id, now)
			c["nbf"] = now.Add(time.Minute).Unix()
			return key.sign(t, c)
		},
		"no jti": func() string {
			c := assertionClaimsFor(id, now)
			delete(c, "jti")
			return key.sign(t, c)
		},
		"iss differs from sub": func() string {
			c := assertionClaimsFor(id, now)
			c["iss"] = "someone"
			return key.sign(t, c)
		},
		"alg none": func() string {
			return unsigned(`{"alg":"none","kid":"k1"}`, assertionClaimsFor(id, now), func(string) []byte { return nil })
		},
		"alg none with a signature": func() string {
			return unsigned(`{"alg":"none","kid":"k1"}`, assertionClaimsFor(id, now), func(string) []byte { return []byte("x") })
		},
		"HS256 keyed with the public key (DER)": func() string {
			return unsigned(`{"alg":"HS256","kid":"k1"}`, assertionClaimsFor(id, now), hs256(der))
		},
		"HS256 keyed with the public JWK": func() string {
			return unsigned(`{"alg":"HS256","kid":"k1"}`, assertionClaimsFor(id, now), hs256(pubJWK))
		},
		"ES256 header on an RS256 signature": func() string {
			rsaKey := newClientKey(t, jose.RS256, "k1")
			tok := rsaKey.sign(t, assertionClaimsFor(id, now))
			parts := strings.SplitN(tok, ".", 2)
			return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"k1"}`)) + "." + parts[1]
		},
		"key not in the JWKS": func() string { return stranger.sign(t, assertionClaimsFor(id, now)) },
		"jwk header naming its own key": func() string {
			return unsigned(`{"alg":"ES256","jwk":{"kty":"EC"}}`, assertionClaimsFor(id, now), func(in string) []byte { return rawES256(t, stranger, in) })
		},
		"unknown client": func() string {
			return key.sign(t, assertionClaimsFor("m2mc_unknown", now))
		},
		"not a JWS": func() string { return "not.a.jws" },
		"tampered payload": func() string {
			tok := key.sign(t, assertionClaimsFor(id, now))
			parts := strings.Split(tok, ".")
			c := assertionClaimsFor(id, now)
			c["sub"], c["iss"] = id, id
			c["aud"] = []string{testIssuer, "x"}
			p, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
		},
	}
	for name, make := range refused {
		t.Run(name, func(t *testing.T) {
			if got := ts.status(t, assertionForm(make())); got != "400 invalid_client" {
				t.Fatalf("got %s, want 400 invalid_client", got)
			}
		})
	}
}

func hs256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// rawES256 signs input with an EC key as JWS wants it (R||S).
func rawES256(t testing.TB, k clientKey, input string) []byte {
	t.Helper()
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), d[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func TestPrivateKeyJWTAlgorithmsAndAudiences(t *testing.T) {
	ts := newTestServer(t)
	keys := []clientKey{
		newClientKey(t, jose.ES256, "ec"), newClientKey(t, jose.EdDSA, "ed"),
		newClientKey(t, jose.RS256, "rs"), {alg: jose.PS256, kid: "ps"},
	}
	keys[3].priv = keys[2].priv.(*rsa.PrivateKey)
	keys[3].kid = "rs" // PS256 with the same RSA key
	id := ts.addKeyClient(t, keys[:3]...)
	now := ts.clock.Now()
	for _, k := range keys {
		for _, aud := range []any{testIssuer, testIssuer + TokenPath, []string{"x", testIssuer}} {
			c := assertionClaimsFor(id, now)
			c["aud"] = aud
			if got := ts.status(t, assertionForm(k.sign(t, c))); got != "200 " {
				t.Errorf("%s aud %v: %s", k.alg, aud, got)
			}
		}
	}
	t.Run("without a kid, every key of the JWKS is tried", func(t *testing.T) {
		k := keys[1]
		k.kid = ""
		if got := ts.status(t, assertionForm(k.sign(t, assertionClaimsFor(id, now)))); got != "200 " {
			t.Fatal(got)
		}
	})
	t.Run("client_id, when sent, must match", func(t *testing.T) {
		f := assertionForm(keys[0].sign(t, assertionClaimsFor(id, now)))
		f.Set("client_id", "m2mc_other")
		if got := ts.status(t, f); got != "400 invalid_client" {
			t.Fatal(got)
		}
		f = assertionForm(keys[0].sign(t, assertionClaimsFor(id, now)))
		f.Set("client_id", id)
		if got := ts.status(t, f); got != "200 " {
			t.Fatal(got)
		}
	})
}

func TestAssertionMethodRules(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	key := newClientKey(t, jose.ES256, "k1")
	id := ts.addKeyClient(t, key)
	secretID, secret := ts.addClient(t)
	now := ts.clock.Now()
	valid := func() string { return key.sign(t, assertionClaimsFor(id, now)) }

	t.Run("an assertion with Basic credentials too", func(t *testing.T) {
		w := ts.do(tokenReq(assertionForm(valid()), secretID, secret))
		if w.Code != 400 || decodeResponse(t, w.Body).Error != errInvalidRequest {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("an assertion with client_secret too", func(t *testing.T) {
		f := assertionForm(valid())
		f.Set("client_secret", secret)
		if got := ts.status(t, f); got != "400 invalid_request" {
			t.Fatal(got)
		}
	})
	t.Run("an assertion without its type", func(t *testing.T) {
		f := assertionForm(valid())
		f.Del("client_assertion_type")
		if got := ts.status(t, f); got != "400 invalid_request" {
			t.Fatal(got)
		}
	})
	t.Run("an unsupported assertion type", func(t *testing.T) {
		f := assertionForm(valid())
		f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
		if got := ts.status(t, f); got != "400 invalid_client" {
			t.Fatal(got)
		}
	})
	t.Run("a PrivateKeyJWT client has no secret to present", func(t *testing.T) {
		f := grant()
		f.Set("client_id", id)
		f.Set("client_secret", secret)
		if got := ts.status(t, f); got != "400 invalid_client" {
			t.Fatal(got)
		}
	})
	t.Run("a ClientSecret client cannot use an assertion, even one its id signs", func(t *testing.T) {
		other := newClientKey(t, jose.ES256, "k1")
		if got := ts.status(t, assertionForm(other.sign(t, assertionClaimsFor(secretID, now)))); got != "400 invalid_client" {
			t.Fatal(got)
		}
	})
	t.Run("a ServiceAccount-looking assertion without an API server is refused", func(t *testing.T) {
		c := assertionClaimsFor(id, now)
		c["iss"], c["sub"] = "https://kubernetes.default.svc", "system:serviceaccount:payments:robot"
		if got := ts.status(t, assertionForm(key.sign(t, c))); got != "400 invalid_client" {
			t.Fatal(got)
		}
	})
	t.Run("a client whose JWKS was found invalid has no key", func(t *testing.T) {
		noKeys, _ := ts.addClient(t, func(r *credential.Record) { r.Method, r.Secrets = credential.MethodPrivateKeyJWT, nil })
		if got := ts.status(t, assertionForm(key.sign(t, assertionClaimsFor(noKeys, now)))); got != "400 invalid_client" {
			t.Fatal(got)
		}
	})
	t.Run("introspection accepts the caller's assertion", func(t *testing.T) {
		tok := ts.issue(t, assertionForm(valid()), "", "").AccessToken
		form := url.Values{"token": {tok}, "client_assertion_type": {assertionTypeJWTBearer}, "client_assertion": {valid()}}
		r := tokenReq(form, "", "")
		r.URL.Path = IntrospectionPath
		w := ts.do(r)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"active":true`) {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}

// TestReplaySetIsPerClientAndBounded: each client's replay set is capped on its own; a full
// set refuses only its client, with the seconds until its oldest entry expires; replays are
// still recognised when full; expired entries free their room.
func TestReplaySetIsPerClientAndBounded(t *testing.T) {
	l := newReplayLimits(0.01, 5, 5*time.Minute, 0) // cap 5 + ceil(0.01 × 330) = 9
	if l.perClient != 9 {
		t.Fatalf("per-client cap %d, want 9", l.perClient)
	}
	var a, b replaySet
	now := testT0.Unix()
	for i := 0; i < l.perClient; i++ {
		if got, _ := a.remember(l, fmt.Sprint(i), now+60+int64(i), now); got != replayNew {
			t.Fatalf("jti %d: %v", i, got)
		}
	}
	if got, retry := a.remember(l, "one more", now+60, now); got != replayFull || retry != 60 {
		t.Fatalf("full set answered %v, retry after %d s; want full, 60 s", got, retry)
	}
	if got, _ := a.remember(l, "0", now+60, now); got != replaySeen {
		t.Fatalf("a replay into a full set answered %v", got)
	}
	for i := 0; i < l.perClient; i++ {
		if got, _ := b.remember(l, fmt.Sprint(i), now+60, now); got != replayNew {
			t.Fatalf("another client's jti %d: %v", i, got)
		}
	}
	if got, _ := a.remember(l, "one more", now+200, now+60); got != replayNew {
		t.Fatalf("after the oldest entry expired: %v", got)
	}
	if len(a.seen) != l.perClient {
		t.Fatalf("%d entries after the sweep, want %d", len(a.seen), l.perClient)
	}
	if got, want := l.total.Load(), int64(2*l.perClient); got != want {
		t.Fatalf("replica-wide count %d, want %d", got, want)
	}
	if got, _ := a.remember(l, "after all expired", now+1000, now+500); got != replayNew || len(a.seen) != 1 || l.total.Load() != int64(1+l.perClient) {
		t.Fatalf("after every entry expired: %v, %d entries, %d counted", got, len(a.seen), l.total.Load())
	}
}

// TestReplayCapHoldsEveryClientWithinItsRateLimit: a client that uses its whole burst, then
// one assertion per 1/rate seconds, each living the longest allowed, never reaches its cap.
func TestReplayCapHoldsEveryClientWithinItsRateLimit(t *testing.T) {
	const rateLimit, burst = 0.5, 7
	l := newReplayLimits(rateLimit, burst, DefaultMaxAssertionLifetime, 0)
	var rs replaySet
	lifetime := int64((DefaultMaxAssertionLifetime + assertionLeeway) / time.Second)
	now := testT0.Unix()
	n := 0
	for ; n < burst; n++ {
		if got, _ := rs.remember(l, fmt.Sprint(n), now+lifetime, now); got != replayNew {
			t.Fatalf("burst assertion %d: %v", n, got)
		}
	}
	for step := int64(0); step < 3*lifetime; step += int64(1 / rateLimit) {
		at := now + step + 1
		if got, _ := rs.remember(l, fmt.Sprint(n), at+lifetime, at); got != replayNew {
			t.Fatalf("assertion %d at +%ds (within the rate limit): %v with %d entries, cap %d", n, step, got, len(rs.seen), l.perClient)
		}
		n++
	}
}

// TestReplaySafetyNetSparesSmallClients: once the replica-wide safety net is reached, a client
// holding more than its fair share is refused, one holding little is not.
func TestReplaySafetyNetSparesSmallClients(t *testing.T) {
	l := newReplayLimits(1e6, 1e6, DefaultMaxAssertionLifetime, 0)
	l.soft = 100
	var big, small replaySet
	now := testT0.Unix()
	for i := 0; i < 100; i++ {
		if got, _ := big.remember(l, fmt.Sprint(i), now+60, now); got != replayNew {
			t.Fatalf("jti %d: %v", i, got)
		}
	}
	if got, _ := small.remember(l, "a", now+60, now); got != replayNew {
		t.Fatalf("a small client past the safety net: %v", got)
	}
	if got, retry := big.remember(l, "x", now+60, now); got != replayFull || retry < 1 {
		t.Fatalf("the big client past the safety net: %v (retry %d)", got, retry)
	}
	big.drop(l)
	if l.total.Load() != 1 || l.active.Load() != 1 {
		t.Fatalf("after the big client left: %d entries in %d sets counted", l.total.Load(), l.active.Load())
	}
}

// TestOneClientCannotLockOutOtherAssertions: a private_key_jwt client that sends assertion
// after assertion is refused 429 slow_down with Retry-After once its own replay set is full;
// another private_key_jwt client's valid assertions keep getting tokens.
func TestOneClientCannotLockOutOtherAssertions(t *testing.T) {
	ts := newTestServer(t, manyFailures, func(o *Options) { o.RateLimit, o.RateBurst = 0.01, 5 })
	perClientCap := ts.replayLimits.perClient
	floodKey, victimKey := newClientKey(t, jose.ES256, "f"), newClientKey(t, jose.ES256, "v")
	flood, victim := ts.addKeyClient(t, floodKey), ts.addKeyClient(t, victimKey)
	now := ts.clock.Now()
	var w *httptest.ResponseRecorder
	for i := 0; i <= perClientCap; i++ {
		w = ts.do(tokenReq(assertionForm(floodKey.sign(t, assertionClaimsFor(flood, now))), "", ""))
	}
	tr := decodeResponse(t, w.Body)
	if w.Code != http.StatusTooManyRequests || tr.Error != errSlowDown || w.Header().Get("Retry-After") != "120" {
		t.Fatalf("flooding client after %d assertions: %d %s Retry-After %q, want 429 slow_down, 120", perClientCap+1, w.Code, tr.Error, w.Header().Get("Retry-After"))
	}
	for i := 0; i < 5; i++ { // the victim's burst
		if got := ts.status(t, assertionForm(victimKey.sign(t, assertionClaimsFor(victim, now)))); got != "200 " {
			t.Fatalf("the other client's assertion %d: %s", i, got)
		}
	}
	ts.clock.Add(3 * time.Minute) // the flood's assertions expire: nothing is locked for good
	w = ts.do(tokenReq(assertionForm(floodKey.sign(t, assertionClaimsFor(flood, ts.clock.Now()))), "", ""))
	if tr := decodeResponse(t, w.Body); w.Code == http.StatusTooManyRequests && strings.Contains(tr.ErrorDescription, "assertions") {
		t.Fatalf("the flooding client is still refused after its assertions expired: %s", tr.ErrorDescription)
	}
}

// signEd25519Name signs claims with an Ed25519 key under RFC 9864's fully-specified algorithm
// name "Ed25519", as openid-client, oauth4webapi and jose do (go-jose knows only "EdDSA").
func signEd25519Name(k clientKey, claims map[string]any) string {
	hdr := `{"alg":"Ed25519","typ":"JWT"}`
	if k.kid != "" {
		hdr = `{"alg":"Ed25519","kid":"` + k.kid + `","typ":"JWT"}`
	}
	return unsigned(hdr, claims, func(in string) []byte { return ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(in)) })
}

// TestPrivateKeyJWTEd25519AlgorithmName: an assertion signed with alg "Ed25519" is accepted
// like "EdDSA", whichever name the client's JWK declares; the name binds to Ed25519 keys only.
func TestPrivateKeyJWTEd25519AlgorithmName(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	now := ts.clock.Now()
	ed := newClientKey(t, jose.EdDSA, "ed")
	for _, declared := range []string{"", "EdDSA", "Ed25519"} {
		doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ed.priv.Public(), KeyID: "ed", Algorithm: declared, Use: "sig"}}})
		id, _ := ts.addClient(t, func(r *credential.Record) { r.Method, r.Secrets, r.JWKS = credential.MethodPrivateKeyJWT, nil, doc })
		if got := ts.status(t, assertionForm(signEd25519Name(ed, assertionClaimsFor(id, now)))); got != "200 " {
			t.Errorf("JWK alg %q, assertion alg Ed25519: %s", declared, got)
		}
		if got := ts.status(t, assertionForm(ed.sign(t, assertionClaimsFor(id, now)))); got != "200 " {
			t.Errorf("JWK alg %q, assertion alg EdDSA: %s", declared, got)
		}
	}
	ec := newClientKey(t, jose.ES256, "ec")
	id := ts.addKeyClient(t, ec, ed)
	forged := unsigned(`{"alg":"Ed25519","kid":"ec"}`, assertionClaimsFor(id, now), func(in string) []byte { return rawES256(t, ec, in) })
	if got := ts.status(t, assertionForm(forged)); got != "400 invalid_client" {
		t.Errorf("alg Ed25519 over an EC key's signature: %s", got)
	}
}

// TestAssertionLifetimeUpToOneHour: an assertion that lives an hour (Authlib's exp = iat +
// 3600) is accepted by default, and its jti is refused again until it expires; a lower
// --max-assertion-lifetime refuses it; the per-client replay cap follows the option and
// stays bounded.
func TestAssertionLifetimeUpToOneHour(t *testing.T) {
	ts := newTestServer(t, manyFailures)
	key := newClientKey(t, jose.ES256, "k1")
	id := ts.addKeyClient(t, key)
	now := ts.clock.Now()
	c := assertionClaimsFor(id, now)
	c["exp"] = now.Add(time.Hour).Unix()
	a := key.sign(t, c)
	if got := ts.status(t, assertionForm(a)); got != "200 " {
		t.Fatalf("a 1-hour assertion: %s", got)
	}
	ts.clock.Add(59 * time.Minute)
	if got := ts.status(t, assertionForm(a)); got != "400 invalid_client" {
		t.Fatalf("the same assertion replayed 59 minutes later: %s", got)
	}

	short := newTestServer(t, func(o *Options) { o.MaxAssertionLifetime = 5 * time.Minute })
	sid := short.addKeyClient(t, key)
	now = short.clock.Now()
	c = assertionClaimsFor(sid, now)
	c["exp"] = now.Add(time.Hour).Unix()
	if got := short.status(t, assertionForm(key.sign(t, c))); got != "400 invalid_client" {
		t.Fatalf("a 1-hour assertion with --max-assertion-lifetime=5m: %s", got)
	}
	c["exp"], c["jti"] = now.Add(5*time.Minute).Unix(), randomJTI()
	if got := short.status(t, assertionForm(key.sign(t, c))); got != "200 " {
		t.Fatalf("a 5-minute assertion with --max-assertion-lifetime=5m: %s", got)
	}

	d := DefaultOptions()
	if got, want := newReplayLimits(rate.Limit(d.RateLimit), d.RateBurst, d.MaxAssertionLifetime, 0).perClient, 72700; got != want {
		t.Errorf("default per-client replay cap %d, want %d (100 + 20/s × 3630 s)", got, want)
	}
	if got := newReplayLimits(rate.Limit(d.RateLimit), d.RateBurst, 5*time.Minute, 0).perClient; got != 6700 {
		t.Errorf("per-client replay cap with a 5-minute lifetime %d, want 6700", got)
	}
	if got := newReplayLimits(1e6, 1e6, time.Hour, 0).perClient; got != maxReplayEntries {
		t.Errorf("per-client replay cap with huge limits %d, want the safety net %d", got, maxReplayEntries)
	}
	for _, bad := range []time.Duration{-time.Second, time.Hour + time.Second} {
		if _, err := New(Options{MaxAssertionLifetime: bad}); err == nil {
			t.Errorf("MaxAssertionLifetime %s was accepted", bad)
		}
	}
}
