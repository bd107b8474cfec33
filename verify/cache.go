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
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// sweepInterval spaces out scans for expired entries when the cache is full, so that a full
// cache of live tokens costs O(1) per insertion rather than a scan each time.
const sweepInterval = time.Second

// tokenCache remembers verified tokens so a token presented again costs a hash and a map
// lookup instead of a signature check.
//
// Entries are keyed by a keyed 64-bit hash (hash/maphash, with a per-cache random seed, so
// nobody can aim collisions at it) and hold the full token, which is compared on every hit: a
// hash collision can cost a cache miss, never let one token pass for another.
//
// Eviction is random (Go randomises map iteration) after dropping expired entries: unlike LRU it
// needs no write on the hit path, which stays under a read lock.
type tokenCache struct {
	seed     maphash.Seed
	capacity int

	mu      sync.RWMutex
	entries map[uint64]*cacheEntry
	sweepAt int64 // unix nanos before which a sweep is not tried again
}

type cacheEntry struct {
	token    string
	claims   *Claims
	deadline int64 // unix nanos from which the token counts as expired (exp + leeway)
	kid      string
	key      *jose.JSONWebKey
}

// newTokenCache returns a cache of the given capacity, or nil (caching off) for 0.
func newTokenCache(capacity int) *tokenCache {
	if capacity <= 0 {
		return nil
	}
	return &tokenCache{
		seed:     maphash.MakeSeed(),
		capacity: capacity,
		entries:  make(map[uint64]*cacheEntry, min(capacity, 1024)),
	}
}

// lookup returns the claims of a cached token that is still valid at now and whose key keys
// still holds. exp is checked on every hit.
func (c *tokenCache) lookup(token string, now int64, keys KeySource) *Claims {
	if c == nil {
		return nil
	}
	h := maphash.String(c.seed, token)
	c.mu.RLock()
	e := c.entries[h]
	c.mu.RUnlock()
	if e == nil || e.token != token {
		return nil
	}
	if now >= e.deadline {
		c.remove(h, e)
		return nil
	}
	if k, ok := keys.Key(e.kid); !ok || !jws.SameKey(k, e.key) {
		c.remove(h, e)
		return nil
	}
	return e.claims
}

// store caches a verified token until deadline.
func (c *tokenCache) store(token string, claims *Claims, kid string, key *jose.JSONWebKey, deadline, now int64) {
	if c == nil || deadline <= now {
		return
	}
	e := &cacheEntry{
		token:    strings.Clone(token), // do not pin a larger buffer the caller's string may share
		claims:   claims,
		deadline: deadline,
		kid:      kid,
		key:      key,
	}
	h := maphash.String(c.seed, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[h]; !exists && len(c.entries) >= c.capacity {
		c.makeRoom(now)
	}
	c.entries[h] = e
}

// makeRoom frees at least one slot. Called with mu held.
func (c *tokenCache) makeRoom(now int64) {
	if now >= c.sweepAt {
		c.sweepAt = now + int64(sweepInterval)
		for h, e := range c.entries {
			if now >= e.deadline {
				delete(c.entries, h)
			}
		}
	}
	for h := range c.entries {
		if len(c.entries) < c.capacity {
			return
		}
		delete(c.entries, h)
	}
}

// remove deletes e if it is still the entry for h.
func (c *tokenCache) remove(h uint64, e *cacheEntry) {
	c.mu.Lock()
	if c.entries[h] == e {
		delete(c.entries, h)
	}
	c.mu.Unlock()
}

// purge drops every token signed by one of kids: the key set no longer holds those keys (or
// holds different keys under those kids).
func (c *tokenCache) purge(kids []string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if slices.Contains(kids, e.kid) {
			delete(c.entries, h)
		}
	}
}

// len returns the number of cached tokens.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
