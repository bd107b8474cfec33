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

package jws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"golang.org/x/sync/singleflight"
)

// defaultFetchTimeout bounds a fetch when KeySetOptions.FetchTimeout is 0.
const defaultFetchTimeout = 30 * time.Second

// errCooldown reports that a fetch for an unknown kid was skipped because the last fetch is
// too recent.
var errCooldown = errors.New("jws: key set fetched too recently")

// FetchFunc reads the current keys, by kid. It returns nil keys and a nil error when the keys
// are known to be unchanged since the last fetch (an HTTP 304 Not Modified).
type FetchFunc func(ctx context.Context) (map[string]*jose.JSONWebKey, error)

// KeySetOptions configure a KeySet. The zero value fetches for every unknown kid.
type KeySetOptions struct {
	// Cooldown is the least time between the start of one fetch and a fetch for an unknown
	// kid: tokens naming unknown kids cannot make the key set fetch more often than this.
	Cooldown time.Duration
	// FetchTimeout bounds one fetch (default 30 seconds). A fetch runs detached from the
	// contexts of the callers waiting for it, so that one caller giving up fails no other.
	FetchTimeout time.Duration
	// Now is the clock of the cooldown (default time.Now).
	Now func() time.Time
	// OnRemove, when set, is called after a fetch with the kids it removed or whose key it
	// changed, for example to forget what was verified with them.
	OnRemove func(kids []string)
}

// KeySet caches the keys a FetchFunc reads. A lookup of a known kid is a read-locked map
// lookup; a lookup of an unknown kid fetches the keys again, once for all concurrent callers
// and at most once per Cooldown, which is how a verifier follows a key rotation it has not yet
// seen. A failed fetch keeps the keys held before. A key that did not change between fetches
// keeps its pointer. It is safe for concurrent use.
type KeySet struct {
	fetch    FetchFunc
	cooldown time.Duration
	timeout  time.Duration
	now      func() time.Time
	onRemove func(kids []string)

	mu   sync.RWMutex
	keys map[string]*jose.JSONWebKey

	lastFetch atomic.Int64 // unix nanos at which the last fetch started
	group     singleflight.Group
}

// NewKeySet returns an empty KeySet that reads its keys with fetch. Nothing is fetched until
// Lookup or Refresh is called.
func NewKeySet(fetch FetchFunc, opts KeySetOptions) *KeySet {
	s := &KeySet{fetch: fetch, cooldown: opts.Cooldown, timeout: opts.FetchTimeout, now: opts.Now,
		onRemove: opts.OnRemove, keys: map[string]*jose.JSONWebKey{}}
	if s.timeout <= 0 {
		s.timeout = defaultFetchTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Key returns the held key with this kid, without fetching.
func (s *KeySet) Key(kid string) (*jose.JSONWebKey, bool) {
	s.mu.RLock()
	k, ok := s.keys[kid]
	s.mu.RUnlock()
	return k, ok
}

// Len returns the number of keys held.
func (s *KeySet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// Lookup returns the key with this kid, fetching the keys first when kid is unknown and the
// cooldown has passed. It returns nil when no key has the kid, with the fetch's error when
// the fetch it waited for failed. ctx bounds only this caller's wait.
func (s *KeySet) Lookup(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := s.Key(kid); ok && k != nil {
		return k, nil
	}
	if err := s.refresh(ctx, true); err != nil && !errors.Is(err, errCooldown) {
		return nil, err
	}
	if k, ok := s.Key(kid); ok && k != nil {
		return k, nil
	}
	return nil, nil
}

// Refresh fetches the keys now, whatever the cooldown; concurrent calls share one fetch. ctx
// bounds only this caller's wait.
func (s *KeySet) Refresh(ctx context.Context) error { return s.refresh(ctx, false) }

// refresh fetches the keys once for all concurrent callers. With honorCooldown (the
// unknown-kid path) it does nothing when the last fetch started less than the cooldown ago.
func (s *KeySet) refresh(ctx context.Context, honorCooldown bool) error {
	err := s.refreshOnce(ctx, honorCooldown)
	// A forced refresh that joined an unknown-kid refresh skipped for cooldown has fetched
	// nothing: it tries again (bounded, in case more cooldown-skips keep winning the race).
	for tries := 0; !honorCooldown && errors.Is(err, errCooldown) && tries < 3; tries++ {
		err = s.refreshOnce(ctx, honorCooldown)
	}
	return err
}

// refreshOnce runs or joins one shared fetch.
func (s *KeySet) refreshOnce(ctx context.Context, honorCooldown bool) error {
	ch := s.group.DoChan("keys", func() (any, error) {
		if honorCooldown && s.inCooldown() {
			return nil, errCooldown
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		return nil, s.fetchAndInstall(fctx)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *KeySet) inCooldown() bool {
	last := s.lastFetch.Load()
	return last != 0 && s.now().UnixNano()-last < int64(s.cooldown)
}

// fetchAndInstall runs the fetch and installs what it read; on failure the keys held stay.
func (s *KeySet) fetchAndInstall(ctx context.Context) error {
	s.lastFetch.Store(s.now().UnixNano())
	keys, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	if keys != nil {
		s.install(keys)
	}
	return nil
}

// install swaps in a new key map. Unchanged keys keep their pointer, so whatever was verified
// with them stays cheap to re-check; removed or changed kids are reported to OnRemove.
func (s *KeySet) install(keys map[string]*jose.JSONWebKey) {
	s.mu.Lock()
	var removed []string
	for kid, old := range s.keys {
		if k, ok := keys[kid]; ok && SameKey(old, k) {
			keys[kid] = old
			continue
		}
		removed = append(removed, kid)
	}
	s.keys = keys
	s.mu.Unlock()
	if len(removed) > 0 && s.onRemove != nil {
		s.onRemove(removed)
	}
}

// ParseKeySet decodes a JWKS (RFC 7517 §5) and keeps, by kid, the keys that can verify a
// signature under one of algs (Fits). A key it cannot use (another type or size, "use" other
// than "sig", no kid or one longer than MaxKeyIDLen, no algorithm of algs) is skipped rather
// than failing the whole set, so that a new key type an issuer publishes does not break older
// verifiers. A kid that appears twice is dropped: key selection must be unambiguous. A private
// key is kept as its public half.
func ParseKeySet(doc []byte, algs []jose.SignatureAlgorithm) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("jws: decoding the key set: %w", err)
	}
	keys := make(map[string]*jose.JSONWebKey, len(set.Keys))
	dup := map[string]bool{}
	for _, raw := range set.Keys {
		k, ok := usableKey(raw, algs)
		if !ok {
			continue
		}
		if _, seen := keys[k.KeyID]; seen || dup[k.KeyID] {
			dup[k.KeyID] = true
			delete(keys, k.KeyID)
			continue
		}
		keys[k.KeyID] = k
	}
	return keys, nil
}

// usableKey decodes one JWK and reports whether it can verify signatures under algs.
func usableKey(raw json.RawMessage, algs []jose.SignatureAlgorithm) (*jose.JSONWebKey, bool) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, false
	}
	if k.KeyID == "" || len(k.KeyID) > MaxKeyIDLen || (k.Use != "" && k.Use != "sig") {
		return nil, false
	}
	if !k.IsPublic() {
		k = k.Public() // a publisher's bug, but the public half is still the right key
	}
	for _, alg := range algs {
		if Fits(string(alg), &k) {
			return &k, true
		}
	}
	return nil, false
}
