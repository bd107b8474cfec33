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

// Replay protection of private_key_jwt assertions (auth_privatekeyjwt.go) and of DPoP proofs
// (dpop.go): both kinds share the client's set, under different hash seeds, and a proof lives
// in it until its iat + Options.DPoPProofWindow.
//
// Each replica remembers every accepted assertion's jti until the assertion's exp, in a
// set of the client's own (see replaySet). This stops a replay to the same replica. It does not
// stop one replay per other replica within the assertion's own lifetime (at most
// Options.MaxAssertionLifetime): replicas share no state. A client's issuance rate limit applies per replica too. Strict
// single use across replicas would need shared state, which this server deliberately does not
// have; keep assertion lifetimes short.
//
// The replay sets are per client so that no client can fill a structure others need: each
// holds at most burst + rate × (maximum assertion lifetime + leeway) entries, the most a client
// within its issuance rate limit can have unexpired at once (72,700 with the default limits and
// lifetime, 6,700 with a 5-minute lifetime; an entry is a 64-bit keyed hash of the jti and its
// exp, about 40 bytes in a Go map, so at most about 3 MB for a client that sends a fresh
// 1-hour assertion at its full issuance rate for an hour). A client
// over its cap is refused 429 slow_down with Retry-After until its oldest entry expires; no
// other client notices. Beyond the per-client caps, maxReplayEntries is the replica's memory
// safety net: once all sets together hold that many, only a client holding more than its fair
// share (maxReplayEntries / clients with entries) is refused, so the total stays below about
// twice that, and a client with few entries is never refused for others' volume.

import (
	"hash/maphash"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// maxReplayEntries is the replica's memory safety net over all clients' replay sets (see the
// comment above): about 20-40 MB at most.
const maxReplayEntries = 500000

type replayAnswer int

const (
	replayNew replayAnswer = iota
	replaySeen
	replayFull
)

// replayLimits is what every client's replay set shares: the hash seeds, the per-client cap and
// the replica-wide accounting behind the memory safety net.
type replayLimits struct {
	seed maphash.Seed
	// proofSeed keys the jtis of DPoP proofs (dpop.go), which share the client's set: a proof's
	// jti never collides with an assertion's on purpose.
	proofSeed maphash.Seed
	perClient int
	// soft is the replica-wide entry count past which only clients within their fair share
	// may add entries (maxReplayEntries; lower in tests).
	soft int64
	// total counts the entries of all sets; active the sets holding any.
	total  atomic.Int64
	active atomic.Int64
}

// newReplayLimits sizes the replay sets for assertions of at most maxLifetime and, when
// proofWindow > 0, DPoP proofs accepted within ±proofWindow.
func newReplayLimits(issueRate rate.Limit, issueBurst int, maxLifetime, proofWindow time.Duration) *replayLimits {
	n := replayCap(issueRate, issueBurst, maxLifetime+assertionLeeway)
	if proofWindow > 0 {
		n = min(maxReplayEntries, n+replayCap(issueRate, issueBurst, 2*proofWindow))
	}
	return &replayLimits{seed: maphash.MakeSeed(), proofSeed: maphash.MakeSeed(), perClient: n, soft: maxReplayEntries}
}

// replayCap is burst + rate × window: an entry lives until its assertion's exp (or its proof's
// iat + window), at most window after it was accepted, and a token bucket lets at most
// burst + rate × window requests through in any window. Each token request adds at most one
// assertion and one proof, so a client within its issuance rate limit never reaches the sum
// of both caps. It never exceeds maxReplayEntries.
func replayCap(issueRate rate.Limit, issueBurst int, window time.Duration) int {
	n := float64(issueBurst) + math.Ceil(float64(issueRate)*window.Seconds())
	return int(math.Max(1, math.Min(n, maxReplayEntries)))
}

// fairShare is the most entries one set may hold while the replica is past its safety net.
func (l *replayLimits) fairShare() int {
	return int(l.soft / max(1, l.active.Load()))
}

// replaySet is one client's memory of the assertions it has used: a keyed 64-bit hash of each
// jti and the assertion's exp. The hash seed is random per process, so no one can aim for a
// collision (which would only refuse that client's own assertion).
type replaySet struct {
	mu   sync.Mutex
	seen map[uint64]int64
	// nextExp is the earliest exp in seen: before it a sweep would free nothing, so sweeps
	// happen at most once per second (exp has whole seconds).
	nextExp int64
	// peak is the most entries since the map was last rebuilt (Go maps never shrink).
	peak int
	// dropped: the client left the index, and the set no longer counts in the limits.
	dropped bool
}

// remember records jti until exp (Unix seconds), reporting whether it was seen before, or that
// the client is over its cap or past its fair share (with the seconds until it may retry).
func (rs *replaySet) remember(l *replayLimits, jti string, exp, now int64) (replayAnswer, int) {
	return rs.rememberKey(l, maphash.String(l.seed, jti), exp, now)
}

// rememberProof is remember for the jti of a DPoP proof.
func (rs *replaySet) rememberProof(l *replayLimits, jti string, exp, now int64) (replayAnswer, int) {
	return rs.rememberKey(l, maphash.String(l.proofSeed, jti), exp, now)
}

func (rs *replaySet) rememberKey(l *replayLimits, key uint64, exp, now int64) (replayAnswer, int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.seen) > 0 && now >= rs.nextExp {
		rs.sweep(l, now)
	}
	if _, ok := rs.seen[key]; ok {
		return replaySeen, 0 // after the sweep every entry left is unexpired
	}
	if len(rs.seen) >= l.perClient {
		return replayFull, int(max(1, rs.nextExp-now))
	}
	if l.total.Load() >= l.soft && len(rs.seen) >= l.fairShare() {
		return replayFull, 1
	}
	if rs.seen == nil {
		rs.seen = map[uint64]int64{}
		rs.nextExp = exp
		rs.countSet(l, 1)
	}
	rs.seen[key] = exp
	rs.nextExp = min(rs.nextExp, exp)
	rs.peak = max(rs.peak, len(rs.seen))
	rs.countEntries(l, 1)
	return replayNew, 0
}

// sweep forgets the expired entries, and frees the map's memory when few are left.
func (rs *replaySet) sweep(l *replayLimits, now int64) {
	before, next := len(rs.seen), int64(math.MaxInt64)
	for k, exp := range rs.seen {
		if now >= exp {
			delete(rs.seen, k)
			continue
		}
		next = min(next, exp)
	}
	rs.nextExp = next
	rs.countEntries(l, int64(len(rs.seen)-before))
	switch {
	case len(rs.seen) == 0:
		rs.seen, rs.peak = nil, 0
		rs.countSet(l, -1)
	case len(rs.seen)*4 < rs.peak:
		rs.seen, rs.peak = maps.Clone(rs.seen), len(rs.seen)
	}
}

func (rs *replaySet) countEntries(l *replayLimits, n int64) {
	if !rs.dropped {
		l.total.Add(n)
	}
}

func (rs *replaySet) countSet(l *replayLimits, n int64) {
	if !rs.dropped {
		l.active.Add(n)
	}
}

// drop takes the set out of the limits when its client leaves the index (requests in flight
// may still use it); adopt puts it back when the same client is published again.
func (rs *replaySet) drop(l *replayLimits) { rs.setDropped(l, true) }

func (rs *replaySet) adopt(l *replayLimits) { rs.setDropped(l, false) }

func (rs *replaySet) setDropped(l *replayLimits, dropped bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.dropped == dropped {
		return
	}
	sign := int64(1)
	if dropped {
		sign = -1
	}
	rs.dropped = false // count the change itself
	rs.countEntries(l, sign*int64(len(rs.seen)))
	if len(rs.seen) > 0 {
		rs.countSet(l, sign)
	}
	rs.dropped = dropped
}
