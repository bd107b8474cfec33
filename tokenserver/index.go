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
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// Client is a client compiled from its credential record for the hot path. It is immutable once
// published in the index (its rate limiters are safe for concurrent use).
type Client struct {
	id        string
	namespace string
	name      string
	// auth is the client's authentication method (clientAuthMethods); nil for a method this
	// server does not know, which no request can then use.
	auth     clientAuthMethod
	disabled bool
	secrets  []acceptedSecret
	// keys are the public keys of a PrivateKeyJWT client.
	keys []credential.ClientKey
	// subject is "<namespace>/<name>" of the ServiceAccount of a ServiceAccount client.
	subject   string
	tokenTTL  time.Duration
	audiences []*audience
	// prefix opens every token payload: {"iss":…,"sub":…,"client_id":…,"namespace":… and the
	// record's extra claims.
	prefix []byte
	// issue limits token issuance.
	issue *rate.Limiter
	// replay remembers the private_key_jwt assertions and DPoP proofs the client used.
	replay *replaySet
	// notBefore (unix seconds) revokes the client's tokens issued before it, for every
	// audience; revokedAudiences does so per audience (revocation.go).
	notBefore        int64
	revokedAudiences map[string]int64
	// requireDPoP: the client asked for bound tokens only (M2MClient spec.tokenBinding).
	requireDPoP bool
}

type acceptedSecret struct {
	hash credential.Hash
	// notAfter is when the secret stops being accepted; zero means never.
	notAfter time.Time
}

// audience is what one audience grants a client. Clients granted an audience the same way (by
// one ScopePolicy grant, typically) share one *audience: the index interns them by key (see
// Index.adoptAudiences).
type audience struct {
	// key identifies what it was compiled from: the grant's JSON encoding, so that every field
	// a grant gains takes part in the interning, and every other per-client value it holds
	// (notBefore: compileRevocations). Two clients share an audience only if their keys agree.
	key       string
	name      string
	scopes    map[string]struct{}
	allScopes string
	maxTTL    time.Duration
	// policyNamespace is where the ScopePolicy owning the audience lives: clients there may
	// introspect tokens for it.
	policyNamespace string
	// claim is `,"aud":"<name>"`.
	claim []byte
	// notBefore is the latest of the client's not-before times that apply to this audience:
	// new tokens for it are dated no earlier (mint.go).
	notBefore int64
	issued    prometheus.Counter
	// requireDPoP: the audience's ScopePolicy requires bound tokens.
	requireDPoP bool
}

// ID returns the client id.
func (c *Client) ID() string { return c.id }

// audienceCounters hands out the issued-token counter of each audience, counting the compiled
// clients that grant it (see audienceSeries).
type audienceCounters interface {
	acquire(audience string) prometheus.Counter
	release(audience string)
}

// indexConfig is what compiling a record needs besides the record.
type indexConfig struct {
	issuer         string
	issueRate      rate.Limit
	issueBurst     int
	replay         *replayLimits
	log            logr.Logger
	audiences      audienceCounters
	onCountsChange func(loaded, broken int)
	onBroken       func()
}

const shardCount = 64

// snapshot is one immutable version of the index: client id → client, and ServiceAccount
// ("<namespace>/<name>") → client, in shards so that a change copies one small map rather than
// all of them.
type snapshot struct {
	shards   [shardCount]map[string]*Client
	subjects [shardCount]map[string]*Client
}

// Index maps client ids to clients. Lookups are lock-free reads of an immutable snapshot;
// changes are serialised, build a new snapshot and swap it in atomically. A broken record, or a
// client id claimed by more than one record, makes the client unknown: it fails closed.
type Index struct {
	cfg  indexConfig
	root atomic.Pointer[snapshot]

	mu      sync.Mutex
	sources map[string]*sourceEntry
	// owners maps a client id to the sources claiming it: one, unless records collide.
	owners map[string][]string
	// audiences interns the compiled audiences of every source's client, by key, with the
	// number of source clients using each. At 10,000 clients granted alike this is most of
	// what the index would otherwise hold once per client (docs/performance.md).
	audiences map[string]*sharedAudience
	// subjectOwners maps a ServiceAccount to the published clients bound to it.
	subjectOwners map[string]map[string]*Client
	loaded        int
	broken        int
	// revoked holds the published clients that revoke tokens (revocation.go); revGen counts
	// its changes, so the revocation list is rebuilt only after one.
	revoked map[string]*Client
	revGen  atomic.Uint64
}

// sourceEntry is what one record Secret contributes: a client, or an error.
type sourceEntry struct {
	clientID string
	client   *Client
	err      error
}

func newIndex(cfg indexConfig) *Index {
	ix := &Index{cfg: cfg, sources: map[string]*sourceEntry{}, owners: map[string][]string{},
		subjectOwners: map[string]map[string]*Client{}, audiences: map[string]*sharedAudience{},
		revoked: map[string]*Client{}}
	s := &snapshot{}
	for i := range s.shards {
		s.shards[i] = map[string]*Client{}
		s.subjects[i] = map[string]*Client{}
	}
	ix.root.Store(s)
	return ix
}

func shardOf(id []byte) int {
	h := uint32(2166136261)
	for _, c := range id {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % shardCount)
}

// lookup returns the client with that id, or nil. It neither locks nor allocates.
func (ix *Index) lookup(id []byte) *Client {
	return ix.root.Load().shards[shardOf(id)][string(id)]
}

// lookupSubject returns the client bound to the ServiceAccount "<namespace>/<name>", or nil
// when none is (or more than one is: ambiguity fails closed).
func (ix *Index) lookupSubject(key string) *Client {
	return ix.root.Load().subjects[shardOf([]byte(key))][key]
}

// Lookup returns whether a client with that id is loaded.
func (ix *Index) Lookup(id string) bool { return ix.lookup([]byte(id)) != nil }

// Len returns the number of clients loaded.
func (ix *Index) Len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.loaded
}

// Put loads (or replaces) the record that source (e.g. "namespace/name" of its Secret)
// provides. An invalid record is kept as broken: its client becomes unknown, and the error is
// returned.
func (ix *Index) Put(source string, rec *credential.Record) error {
	c, err := ix.compile(rec)
	if err != nil {
		ix.PutBroken(source, rec.ClientID, err)
		return err
	}
	ix.set(source, &sourceEntry{clientID: rec.ClientID, client: c})
	return nil
}

// PutBroken records that source holds a record that cannot be used, for client id clientID
// (from its label; may be empty). That client becomes unknown until the record is fixed.
func (ix *Index) PutBroken(source, clientID string, err error) {
	if err == nil {
		err = errors.New("broken record")
	}
	ix.set(source, &sourceEntry{clientID: clientID, err: err})
	if ix.cfg.onBroken != nil {
		ix.cfg.onBroken()
	}
}

// Remove forgets what source provided.
func (ix *Index) Remove(source string) { ix.set(source, nil) }

func (ix *Index) set(source string, e *sourceEntry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	old := ix.sources[source]
	// The new client's audiences first: an audience it keeps is shared, never recompiled, and
	// never loses its series.
	if e != nil {
		ix.adoptAudiences(e.client)
	}
	if old != nil {
		defer ix.releaseAudiences(old.client)
	}
	if old != nil {
		ix.unown(source, old)
	}
	if e != nil {
		ix.sources[source] = e
		ix.own(source, e)
	} else {
		delete(ix.sources, source)
	}
	if old != nil && (e == nil || old.clientID != e.clientID) {
		ix.republish(old.clientID)
	}
	if e != nil {
		ix.republish(e.clientID)
	}
	if ix.cfg.onCountsChange != nil {
		ix.cfg.onCountsChange(ix.loaded, ix.broken)
	}
}

// sharedAudience is an interned audience and the number of source clients using it.
type sharedAudience struct {
	a    *audience
	refs int
}

// adoptAudiences replaces each audience of a compiled client, not yet published, with the
// interned one of the same key, or interns it (with its issued-token counter).
func (ix *Index) adoptAudiences(c *Client) {
	if c == nil {
		return
	}
	for i, a := range c.audiences {
		if sh := ix.audiences[a.key]; sh != nil {
			sh.refs++
			c.audiences[i] = sh.a
			continue
		}
		if ix.cfg.audiences != nil {
			a.issued = ix.cfg.audiences.acquire(a.name)
		}
		ix.audiences[a.key] = &sharedAudience{a: a, refs: 1}
	}
}

// releaseAudiences drops a client its record no longer provides from the interned audiences,
// forgetting (and releasing the counter of) each no other client uses.
func (ix *Index) releaseAudiences(c *Client) {
	if c == nil {
		return
	}
	for _, a := range c.audiences {
		sh := ix.audiences[a.key]
		if sh == nil {
			continue
		}
		if sh.refs--; sh.refs > 0 {
			continue
		}
		delete(ix.audiences, a.key)
		if ix.cfg.audiences != nil {
			ix.cfg.audiences.release(a.name)
		}
	}
}

func (ix *Index) own(source string, e *sourceEntry) {
	if e.err != nil {
		ix.broken++
	}
	if e.clientID == "" {
		return
	}
	ix.owners[e.clientID] = append(ix.owners[e.clientID], source)
}

func (ix *Index) unown(source string, e *sourceEntry) {
	if e.err != nil {
		ix.broken--
	}
	set := slices.DeleteFunc(ix.owners[e.clientID], func(s string) bool { return s == source })
	if len(set) == 0 {
		delete(ix.owners, e.clientID)
		return
	}
	ix.owners[e.clientID] = set
}

// republish publishes the client for id when exactly one source provides it and that record
// is good; otherwise the id becomes unknown.
func (ix *Index) republish(id string) {
	if id == "" {
		return
	}
	var c *Client
	owners := ix.owners[id]
	for _, src := range owners {
		c = ix.sources[src].client
	}
	if len(owners) > 1 {
		ix.cfg.log.Error(nil, "several credential records claim one client id; refusing the client until only one does", "clientID", id, "records", len(owners))
		c = nil
	}
	ix.store(id, c)
}

// store swaps in a snapshot where id maps to c (or is absent when c is nil). Rate limiters
// carry over from the client it replaces.
func (ix *Index) store(id string, c *Client) {
	ix.trackRevocations(id, c)
	cur := ix.root.Load()
	i := shardOf([]byte(id))
	prev := cur.shards[i][id]
	if prev == nil && c == nil {
		return
	}
	if c != nil && c.issue == nil {
		c.issue, c.replay = ix.limitersFor(prev)
	}
	ix.rebindReplay(prev, c)
	shard := make(map[string]*Client, len(cur.shards[i])+1)
	for k, v := range cur.shards[i] {
		shard[k] = v
	}
	if c == nil {
		delete(shard, id)
		ix.loaded--
	} else {
		if prev == nil {
			ix.loaded++
		}
		shard[id] = c
	}
	next := *cur
	next.shards[i] = shard
	ix.root.Store(&next)
	ix.rebindSubject(id, prev, c)
}

// rebindSubject moves the client id's ServiceAccount binding from prev to c and republishes
// the ServiceAccounts concerned.
func (ix *Index) rebindSubject(id string, prev, c *Client) {
	if prev != nil && prev.subject != "" {
		if set := ix.subjectOwners[prev.subject]; set != nil {
			delete(set, id)
			if len(set) == 0 {
				delete(ix.subjectOwners, prev.subject)
			}
		}
	}
	if c != nil && c.subject != "" {
		set := ix.subjectOwners[c.subject]
		if set == nil {
			set = map[string]*Client{}
			ix.subjectOwners[c.subject] = set
		}
		set[id] = c
		ix.publishSubject(c.subject)
	}
	if prev != nil && prev.subject != "" && (c == nil || c.subject != prev.subject) {
		ix.publishSubject(prev.subject)
	}
}

// publishSubject maps a ServiceAccount to its client when exactly one client is bound to it.
// Two M2MClients naming the same ServiceAccount would make its token ambiguous: both are then
// refused for it until only one does.
func (ix *Index) publishSubject(key string) {
	var c *Client
	owners := ix.subjectOwners[key]
	for _, o := range owners {
		c = o
	}
	if len(owners) > 1 {
		ix.cfg.log.Error(nil, "several clients are bound to one ServiceAccount; refusing its tokens until only one is", "serviceAccount", key, "clients", len(owners))
		c = nil
	}
	cur := ix.root.Load()
	i := shardOf([]byte(key))
	if cur.subjects[i][key] == c {
		return
	}
	shard := make(map[string]*Client, len(cur.subjects[i])+1)
	for k, v := range cur.subjects[i] {
		shard[k] = v
	}
	if c == nil {
		delete(shard, key)
	} else {
		shard[key] = c
	}
	next := *cur
	next.subjects[i] = shard
	ix.root.Store(&next)
}

// limitersFor returns the per-client state a newly published client starts with: that of the
// client it replaces, so an update neither refills a bucket nor forgets an assertion.
func (ix *Index) limitersFor(prev *Client) (*rate.Limiter, *replaySet) {
	if prev != nil {
		return prev.issue, prev.replay
	}
	return rate.NewLimiter(ix.cfg.issueRate, ix.cfg.issueBurst), &replaySet{}
}

// rebindReplay keeps the replica-wide replay accounting to the published clients: a client
// that leaves the index takes its entries out of the count, and one published again (the same
// compiled client, after a duplicate id was resolved) puts them back.
func (ix *Index) rebindReplay(prev, c *Client) {
	if ix.cfg.replay == nil {
		return
	}
	if prev != nil && (c == nil || c.replay != prev.replay) {
		prev.replay.drop(ix.cfg.replay)
	}
	if c != nil {
		c.replay.adopt(ix.cfg.replay)
	}
}

// compile validates a record and prepares everything the hot path needs from it.
func (ix *Index) compile(rec *credential.Record) (*Client, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		id:        rec.ClientID,
		namespace: rec.Namespace,
		name:      rec.Name,
		disabled:  rec.Disabled,
		tokenTTL:  time.Duration(rec.TokenTTLSeconds) * time.Second,

		requireDPoP: rec.TokenBinding == credential.TokenBindingDPoP,
	}
	if c.auth = authMethodFor(rec.Method); c.auth != nil {
		if err := c.auth.compile(c, rec); err != nil {
			return nil, err
		}
	}
	for i := range rec.Grants {
		a, err := ix.compileAudience(&rec.Grants[i])
		if err != nil {
			return nil, fmt.Errorf("grants[%d]: %w", i, err)
		}
		c.audiences = append(c.audiences, a)
	}
	c.prefix = claimsPrefix(ix.cfg.issuer, rec)
	compileRevocations(c, rec)
	return c, nil
}

func (ix *Index) compileAudience(g *credential.AudienceGrant) (*audience, error) {
	key, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("audience %q: %w", g.Audience, err)
	}
	a := &audience{
		key:             string(key),
		name:            g.Audience,
		scopes:          make(map[string]struct{}, len(g.Scopes)),
		maxTTL:          time.Duration(g.MaxTokenTTLSeconds) * time.Second,
		policyNamespace: g.PolicyNamespace,
		requireDPoP:     g.TokenBinding == credential.TokenBindingRequired,
	}
	var all []string
	for _, s := range g.Scopes {
		if !validScopeToken([]byte(s)) {
			return nil, fmt.Errorf("audience %q grants a malformed scope", g.Audience)
		}
		if _, dup := a.scopes[s]; !dup {
			a.scopes[s] = struct{}{}
			all = append(all, s)
		}
	}
	a.allScopes = strings.Join(all, " ")
	a.claim = appendJSONString([]byte(`,"aud":`), g.Audience)
	return a, nil
}
