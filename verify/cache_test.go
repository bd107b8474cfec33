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
	"hash/maphash"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

func TestCacheHitReturnsSameClaims(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	tok := iss.Token()
	first := mustVerify(t, v, tok)
	if second := mustVerify(t, v, tok); second != first {
		t.Fatal("second verification did not come from the cache")
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens, want 1", v.cache.len())
	}
}

func TestCacheHitStillChecksExpiry(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithLeeway(5*time.Second))
	tok := iss.Token(verifytest.TTL(time.Minute))
	mustVerify(t, v, tok)
	clock.Advance(time.Minute + 4*time.Second)
	mustVerify(t, v, tok) // within leeway, from the cache
	clock.Advance(time.Second)
	_, err := v.Verify(context.Background(), tok)
	wantKind(t, err, ErrExpired)
	if v.cache.len() != 0 {
		t.Fatal("the expired token is still cached")
	}
}

func TestKeyRemovalPurgesCache(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	oldKid := iss.SigningKeyID()
	oldToken := iss.Token()
	mustVerify(t, v, oldToken)

	newKid := iss.AddKey(jose.ES256)
	iss.UseKey(newKid)
	newToken := iss.Token()
	iss.RemoveKey(oldKid)
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 0 {
		t.Fatalf("cache holds %d tokens of a removed key", v.cache.len())
	}
	_, err := v.Verify(context.Background(), oldToken)
	wantKind(t, err, ErrUnknownKey)
	mustVerify(t, v, newToken)
}

// mutableSource is a KeySource whose keys the test changes.
type mutableSource struct {
	mu   sync.Mutex
	keys map[string]*jose.JSONWebKey
}

func (s *mutableSource) Key(kid string) (*jose.JSONWebKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	return k, ok
}

func TestKeySourceRemovalStopsCachedTokens(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	kid := iss.SigningKeyID()
	k, _ := iss.Key(kid)
	src := &mutableSource{keys: map[string]*jose.JSONWebKey{kid: k}}
	v, err := NewWithKeySource(iss.URL, "", src, WithAnyAudience(), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Token()
	mustVerify(t, v, tok)

	// An equal key under a new pointer keeps the token valid.
	clone := *k
	src.mu.Lock()
	src.keys[kid] = &clone
	src.mu.Unlock()
	mustVerify(t, v, tok)

	src.mu.Lock()
	delete(src.keys, kid)
	src.mu.Unlock()
	_, err = v.Verify(context.Background(), tok)
	wantKind(t, err, ErrUnknownKey)
}

func TestCacheIsBounded(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithCacheSize(3))
	for range 10 {
		mustVerify(t, v, iss.Token())
		if n := v.cache.len(); n > 3 {
			t.Fatalf("cache grew to %d entries, capacity 3", n)
		}
	}
}

func TestCacheSweepsExpiredFirst(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithCacheSize(2), WithLeeway(0))
	short := iss.Token(verifytest.TTL(time.Minute))
	long := iss.Token(verifytest.TTL(time.Hour))
	mustVerify(t, v, short)
	mustVerify(t, v, long)
	clock.Advance(2 * time.Minute)
	mustVerify(t, v, iss.Token())
	h := maphash.String(v.cache.seed, long)
	if e := v.cache.entries[h]; e == nil || e.token != long {
		t.Fatal("a live token was evicted while an expired one could go")
	}
}

// TestCacheComparesFullToken: even a 64-bit hash collision cannot make one token pass for
// another, because a hit compares the whole token.
func TestCacheComparesFullToken(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	victim := iss.Token()
	claims := mustVerify(t, v, victim)
	forged := iss.Token(verifytest.Scope("admin:*"))[:40] + "forged"
	// Plant the victim's entry under the forged token's hash, as a collision would.
	v.cache.mu.Lock()
	v.cache.entries[maphash.String(v.cache.seed, forged)] = v.cache.entries[maphash.String(v.cache.seed, victim)]
	v.cache.mu.Unlock()
	if got := v.cache.lookup(forged, clock.Now().UnixNano(), v.keys); got != nil {
		t.Fatalf("a colliding token got the victim's claims %v", claims)
	}
}

func TestCacheDisabled(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock, WithCacheSize(0))
	tok := iss.Token()
	if mustVerify(t, v, tok) == mustVerify(t, v, tok) { //nolint:staticcheck // two calls, two results: the same pointer means a cache hit
		t.Fatal("claims were cached with the cache off")
	}
}

func TestCacheDeadlineCapped(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v := testVerifier(t, iss, clock)
	c := mustVerify(t, v, iss.Token(verifytest.TTL(24*365*time.Hour)))
	if got := time.Duration(v.cacheDeadline(c, clock.Now()) - clock.Now().UnixNano()); got != maxCacheLifetime {
		t.Fatalf("cache lifetime %v, want %v", got, maxCacheLifetime)
	}
}
