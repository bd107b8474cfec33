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

package dpop

import (
	"hash/maphash"
	"sync"
	"time"
)

// Defaults of a ReplayCache.
const (
	// DefaultReplayPerKey is how many unexpired proofs one key may have remembered: a client
	// sending 800 requests per second through the whole 2-minute life of its proofs (±60 s).
	DefaultReplayPerKey = 100000
	// DefaultReplayTotal bounds the whole cache: about 50 bytes an entry, 25 MB in all.
	DefaultReplayTotal = 500000
)

// ReplayCache remembers the proofs a server accepted until they expire, so that each is used
// once (RFC 9449 §11.1). It is bounded per proof key and overall: one key (one client, since a
// resource server remembers only the proofs of tokens bound to their key) over its share is
// refused, never another key. Entries are keyed 64-bit hashes of key and jti under a random
// seed. It is safe for concurrent use; the zero value is not usable, use NewReplayCache.
type ReplayCache struct {
	seed   maphash.Seed
	perKey int
	total  int

	mu      sync.Mutex
	seen    map[uint64]replayEntry // hash of key and jti → entry
	perKeyN map[uint64]int         // hash of the key → entries
	nextExp int64
}

// replayEntry is one remembered proof: its expiry (Unix seconds) and its key's hash.
type replayEntry struct {
	exp   int64
	owner uint64
}

// NewReplayCache returns a cache holding at most perKey proofs of one key and total proofs in
// all (0 takes the defaults).
func NewReplayCache(perKey, total int) *ReplayCache {
	if perKey <= 0 {
		perKey = DefaultReplayPerKey
	}
	if total <= 0 {
		total = DefaultReplayTotal
	}
	return &ReplayCache{seed: maphash.MakeSeed(), perKey: perKey, total: total,
		seen: map[uint64]replayEntry{}, perKeyN: map[uint64]int{}}
}

// Use records the proof as used, or returns an error matching ErrReplay (and ErrInvalidProof)
// when it was used before, or ErrInvalidProof when its key, or the cache past its fair share,
// holds too many unexpired proofs.
func (c *ReplayCache) Use(p *Proof, now time.Time) error {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_, _ = h.WriteString(p.JKT)
	owner := h.Sum64()
	_ = h.WriteByte(0)
	_, _ = h.WriteString(p.ID)
	key := h.Sum64()
	exp, t := p.Expiry.Unix(), now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) > 0 && t >= c.nextExp {
		c.sweep(t)
	}
	if _, ok := c.seen[key]; ok {
		return &proofError{kind: ErrReplay, detail: "the proof was used before"}
	}
	// Past half the cache, a key may only grow to its fair share of the other half: the cache
	// stays within total, and a key with few entries is never refused for others' volume.
	n := c.perKeyN[owner]
	if n >= c.perKey || (len(c.seen) >= c.total/2 && n >= c.total/(2*max(1, len(c.perKeyN)))) {
		return invalid("too many unexpired proofs for this key; retry later")
	}
	if len(c.seen) == 0 || exp < c.nextExp {
		c.nextExp = exp
	}
	c.seen[key] = replayEntry{exp: exp, owner: owner}
	c.perKeyN[owner] = n + 1
	return nil
}

// sweep forgets the expired entries.
func (c *ReplayCache) sweep(now int64) {
	next := int64(1) << 62
	for k, e := range c.seen {
		if now < e.exp {
			next = min(next, e.exp)
			continue
		}
		if c.perKeyN[e.owner] <= 1 {
			delete(c.perKeyN, e.owner)
		} else {
			c.perKeyN[e.owner]--
		}
		delete(c.seen, k)
	}
	c.nextExp = next
}

// Len returns the number of proofs remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
