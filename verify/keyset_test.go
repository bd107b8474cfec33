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

package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// TestKeyRotationWithoutFailures follows the token server's rotation protocol: a new key is
// published a max-age before it signs, then the old key is removed once its tokens expired.
// A valid token must never be refused along the way, and nothing restarts.
func TestKeyRotationWithoutFailures(t *testing.T) {
	clock := newFakeClock()
	const maxAge = 5 * time.Minute
	iss := newIssuer(t, clock, verifytest.WithMaxAge(maxAge))
	v := testVerifier(t, iss, clock)
	oldKid := iss.SigningKeyID()
	verifyAll := func(stage string, tokens ...string) {
		t.Helper()
		for i, tok := range tokens {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("%s: token %d refused: %v", stage, i, err)
			}
		}
		waitBackground(v)
	}

	oldToken := iss.Token(verifytest.TTL(10 * time.Minute))
	verifyAll("before rotation", oldToken)

	// 1. Publish the next key; it does not sign yet.
	newKid := iss.AddKey(jose.ES256)
	clock.Advance(maxAge)
	verifyAll("next key published", oldToken) // due: starts a background refresh
	if _, ok := v.keys.Key(newKid); !ok {
		t.Fatal("the periodic refresh did not pick up the next key")
	}

	// 2. Sign with the new key: verifiers know it already.
	iss.UseKey(newKid)
	newToken := iss.Token(verifytest.TTL(time.Hour))
	requests := iss.JWKSRequests()
	verifyAll("new key signing", oldToken, newToken)
	if iss.JWKSRequests() != requests {
		t.Fatal("a pre-published key needed an extra fetch")
	}

	// 3. The old key's tokens expire, then the old key is retired.
	clock.Advance(10 * time.Minute)
	iss.RemoveKey(oldKid)
	verifyAll("old key removed", newToken) // periodic refresh is due again
	if _, ok := v.keys.Key(oldKid); ok {
		t.Fatal("the removed key is still trusted")
	}
	_, err := v.Verify(context.Background(), iss.Token(verifytest.SignedBy(newKid)))
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if iss.MetadataRequests() != 1 {
		t.Fatalf("metadata fetched %d times, want once", iss.MetadataRequests())
	}
}

// TestUnknownKidTriggersRefresh: a kid that appeared without pre-publication (an emergency
// rotation) is fetched on demand once the cooldown allows.
func TestUnknownKidTriggersRefresh(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	newKid := iss.AddKey(jose.ES256)
	iss.UseKey(newKid)
	tok := iss.Token()

	_, err := v.Verify(context.Background(), tok)
	wantKind(t, err, ErrUnknownKey) // within the cooldown of the initial fetch: no fetch
	if got := iss.JWKSRequests(); got != 1 {
		t.Fatalf("JWKS requests = %d, want 1 (cooldown)", got)
	}
	clock.Advance(DefaultRefreshCooldown)
	mustVerify(t, v, tok)
	if got := iss.JWKSRequests(); got != 2 {
		t.Fatalf("JWKS requests = %d, want 2", got)
	}
}

// TestUnknownKidFloodIsRateLimited: many concurrent tokens with unknown kids cause at most
// one JWKS fetch per cooldown.
func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithRefreshCooldown(10*time.Second))
	attackKid := iss.AddKey(jose.ES256)
	forged := make([]string, 200)
	for i := range forged {
		forged[i] = iss.Token(verifytest.SignedBy(attackKid), verifytest.Header("kid", fmt.Sprintf("forged-%d", i)))
	}
	flood := func() {
		var wg sync.WaitGroup
		var accepted atomic.Int64
		for _, tok := range forged {
			wg.Go(func() {
				if _, err := v.Verify(context.Background(), tok); err == nil {
					accepted.Add(1)
				}
			})
		}
		wg.Wait()
		if accepted.Load() != 0 {
			t.Fatalf("%d forged tokens accepted", accepted.Load())
		}
	}
	want := int64(1) // the initial fetch
	for round := range 3 {
		clock.Advance(10 * time.Second) // a new cooldown window
		flood()
		flood() // same window: no new fetch
		want++
		if got := iss.JWKSRequests(); got != want {
			t.Fatalf("round %d: JWKS requests = %d, want %d", round, got, want)
		}
	}
}

func TestRefreshWaitHonoursContext(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	clock.Advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, iss.Token(verifytest.Header("kid", "not-yet-known")))
	wantKind(t, err, ErrUnknownKey)
}

// statusRecorder counts response status codes of the verifier's HTTP client.
type statusRecorder struct {
	mu       sync.Mutex
	statuses []int
	inner    http.RoundTripper
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.inner.RoundTrip(r)
	if err == nil {
		s.mu.Lock()
		s.statuses = append(s.statuses, resp.StatusCode)
		s.mu.Unlock()
	}
	return resp, err
}

func (s *statusRecorder) last() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses[len(s.statuses)-1]
}

func TestPeriodicRefreshFollowsMaxAgeAndUsesETag(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock, verifytest.WithMaxAge(2*time.Minute))
	rec := &statusRecorder{inner: iss.Client().Transport}
	v := testVerifier(t, iss, clock, WithHTTPClient(&http.Client{Transport: rec}))
	tok := iss.Token(verifytest.TTL(time.Hour))
	before, _ := v.keys.Key(iss.SigningKeyID())

	clock.Advance(2*time.Minute - time.Second)
	mustVerify(t, v, tok)
	waitBackground(v)
	if got := iss.JWKSRequests(); got != 1 {
		t.Fatalf("refreshed before max-age: %d requests", got)
	}
	clock.Advance(time.Second)
	mustVerify(t, v, tok)
	waitBackground(v)
	if got := iss.JWKSRequests(); got != 2 {
		t.Fatalf("not refreshed at max-age: %d requests", got)
	}
	if rec.last() != http.StatusNotModified {
		t.Fatalf("unchanged key set answered %d, want 304 (If-None-Match)", rec.last())
	}
	if after, _ := v.keys.Key(iss.SigningKeyID()); after != before {
		t.Fatal("an unchanged key was replaced")
	}
	if v.cache.len() != 1 {
		t.Fatal("a 304 purged the cache")
	}
}

func TestRefreshFailureKeepsKeys(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithCacheSize(0))
	tok := iss.Token(verifytest.TTL(time.Hour))
	iss.FailJWKS(http.StatusServiceUnavailable)
	clock.Advance(10 * time.Minute)
	mustVerify(t, v, tok)
	waitBackground(v)
	mustVerify(t, v, tok)
	if err := v.Refresh(context.Background()); !errors.Is(err, ErrKeySet) {
		t.Fatalf("Refresh during an outage: %v, want ErrKeySet", err)
	}
	mustVerify(t, v, tok)
}

func TestDiscoveryErrors(t *testing.T) {
	clock := newFakeClock()
	cases := map[string]func(t *testing.T) error{
		"metadata issuer differs": func(t *testing.T) error {
			iss := newIssuer(t, clock, verifytest.WithMetadataIssuer("https://evil.example"))
			_, err := New(context.Background(), iss.URL, "a", WithHTTPClient(iss.Client()))
			return err
		},
		"issuer with trailing slash": func(t *testing.T) error {
			iss := newIssuer(t, clock)
			_, err := New(context.Background(), iss.URL+"/", "a", WithHTTPClient(iss.Client()))
			return err
		},
		"no metadata": func(t *testing.T) error {
			iss := newIssuer(t, clock)
			_, err := New(context.Background(), iss.URL+"/tenant", "a", WithHTTPClient(iss.Client()))
			return err
		},
		"no usable key": func(t *testing.T) error {
			iss := newIssuer(t, clock)
			_, err := New(context.Background(), iss.URL, "a", WithHTTPClient(iss.Client()), WithAllowedAlgorithms("RS256"))
			return err
		},
		"key set down": func(t *testing.T) error {
			iss := newIssuer(t, clock)
			iss.FailJWKS(http.StatusInternalServerError)
			_, err := New(context.Background(), iss.URL, "a", WithHTTPClient(iss.Client()))
			return err
		},
		"not a URL": func(t *testing.T) error {
			_, err := New(context.Background(), "ftp://x", "a")
			return err
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			if err := run(t); !errors.Is(err, ErrKeySet) {
				t.Fatalf("got %v, want ErrKeySet", err)
			}
		})
	}
}

func TestMetadataURLs(t *testing.T) {
	got, err := metadataURLs("https://auth.example/tenant/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"https://auth.example/.well-known/oauth-authorization-server/tenant",
		"https://auth.example/tenant/.well-known/oauth-authorization-server",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCheckJWKSURIRefusesDowngrade(t *testing.T) {
	if err := checkDocumentURI("jwks_uri", "http://auth.example/jwks", "https://auth.example"); err == nil {
		t.Fatal("an http jwks_uri was accepted for an https issuer")
	}
	if err := checkDocumentURI("jwks_uri", "https://auth.example/jwks", "https://auth.example"); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshInterval(t *testing.T) {
	const lo, hi = 30 * time.Second, time.Hour
	cases := map[string]time.Duration{
		"":                        5 * time.Minute,
		"max-age=120":             2 * time.Minute,
		"public, max-age=600":     10 * time.Minute,
		"Max-Age=600":             10 * time.Minute,
		"max-age=0":               lo,
		"max-age=99999999999999":  hi,
		"no-store":                lo,
		"max-age=-5":              5 * time.Minute,
		"max-age=garbage":         5 * time.Minute,
		"max-age=\"60\", private": time.Minute,
	}
	for header, want := range cases {
		h := http.Header{}
		h.Set("Cache-Control", header)
		if got := refreshInterval(h, lo, hi); got != want {
			t.Errorf("%q: got %v, want %v", header, got, want)
		}
	}
}

func TestParseKeySetSkipsUnusableKeys(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	good := iss.KeySet().Keys[0]
	set := map[string]any{"keys": []any{
		good,
		map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"},
		map[string]any{"kty": "OKP", "crv": "X25519", "kid": "ecdh", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		withUse(t, good, "enc", "enc-key"),
		withUse(t, good, "sig", ""),
	}}
	keys, err := jws.ParseKeySet(mustJSON(t, set), defaultAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[good.KeyID] == nil {
		t.Fatalf("kept %v, want only %s", keys, good.KeyID)
	}
	// The same kid twice is ambiguous: neither is trusted.
	dup := map[string]any{"keys": []any{good, withUse(t, good, "sig", good.KeyID)}}
	if keys, _ := jws.ParseKeySet(mustJSON(t, dup), defaultAlgorithms); len(keys) != 0 {
		t.Fatalf("duplicate kid kept: %v", keys)
	}
}

func withUse(t *testing.T, k jose.JSONWebKey, use, kid string) jose.JSONWebKey {
	t.Helper()
	k.Use, k.KeyID = use, kid
	return k
}
