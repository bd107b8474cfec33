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

// The ServiceAccount method: a pod presents its projected ServiceAccount token, with the token
// server's issuer as audience, as an RFC 7523 client assertion.
//
// Choices:
//   - The token's signature is checked against the cluster's service-account issuer keys, read
//     by OIDC discovery from the API server itself (/.well-known/openid-configuration for the
//     issuer, /openid/v1/jwks for the keys, through the token server's own API client: its
//     ServiceAccount may read both through the default system:service-account-issuer-discovery
//     binding, so no RBAC is added for them). A jwks_uri elsewhere in the discovery document is
//     not followed. Keys are cached and fetched again on an unknown kid, at most once per
//     cooldown.
//   - Then iss, aud (must include this server's issuer), exp and nbf are checked, and the token
//     is confirmed once with the TokenReview API (audiences = [issuer]): a token bound to a pod
//     or ServiceAccount that no longer exists is refused. The positive answer is cached by the
//     token's SHA-256 until the token's exp, and never longer than a minute, so a deleted pod's
//     token stops working within a minute, and a hot token costs one hash and two map lookups.
//   - "system:serviceaccount:<ns>:<name>" maps to the client through an index of the client
//     index; the namespace is part of the key, so another namespace's ServiceAccount of the
//     same name never matches. Two clients bound to one ServiceAccount are both refused for it.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// serviceAccountPrefix starts the username (and sub) of every ServiceAccount token.
	serviceAccountPrefix = "system:serviceaccount:"
	// reviewCacheTTL bounds how long a TokenReview answer is trusted.
	reviewCacheTTL = time.Minute
	// maxReviewsPerSubject bounds the cached answers of one ServiceAccount: one per pod token
	// in use (the pods of a Deployment share a ServiceAccount, each with a token of its own).
	// Beyond it that ServiceAccount's further tokens are confirmed on every use; no other's
	// answer is evicted or refused room.
	maxReviewsPerSubject = 1024
	// maxReviewCache is the memory safety net of the whole cache (about 80 bytes an entry):
	// past it only a ServiceAccount holding more than its fair share (maxReviewCache /
	// ServiceAccounts cached) is refused room, so the cache stays below about twice that and
	// one ServiceAccount, capped far below it, can never reach it alone.
	maxReviewCache = 65536
	// reviewSweepEvery spaces the sweeps of expired answers, which happen only when a bound is
	// reached.
	reviewSweepEvery = time.Second
	// clusterKeysCooldown is the least time between two fetches of the cluster's keys.
	clusterKeysCooldown = 10 * time.Second
	// apiTimeout bounds one discovery, key or TokenReview call.
	apiTimeout = 5 * time.Second
	// assertionLeeway tolerates clock skew on nbf and iat.
	assertionLeeway = 30 * time.Second
)

// serviceAccountAlgorithms are the algorithms the API server signs ServiceAccount tokens with.
var serviceAccountAlgorithms = map[string]bool{"RS256": true, "ES256": true, "ES384": true, "ES512": true}

// clusterAPI is what the ServiceAccount method asks of the API server.
type clusterAPI interface {
	// discover returns the service-account issuer and its public keys by kid.
	discover(ctx context.Context) (string, map[string]*jose.JSONWebKey, error)
	// review asks TokenReview whether the token is valid for the audience, and as whom.
	review(ctx context.Context, token, audience string) (username string, err error)
}

// kubeAPI is clusterAPI over a Kubernetes clientset.
type kubeAPI struct{ cs kubernetes.Interface }

func (k kubeAPI) discover(ctx context.Context) (string, map[string]*jose.JSONWebKey, error) {
	rc := k.cs.Discovery().RESTClient()
	body, err := rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("reading the service-account issuer discovery document: %w", err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		return "", nil, errors.New("the service-account issuer discovery document has no issuer")
	}
	body, err = rc.Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("reading the service-account issuer keys: %w", err)
	}
	keys, err := parseClusterKeys(body)
	if err != nil {
		return "", nil, err
	}
	return doc.Issuer, keys, nil
}

// parseClusterKeys keeps the public signing keys with a kid.
func parseClusterKeys(body []byte) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding the service-account issuer keys: %w", err)
	}
	out := make(map[string]*jose.JSONWebKey, len(set.Keys))
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || !k.IsPublic() || k.KeyID == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, symmetric := k.Key.([]byte); symmetric {
			continue
		}
		out[k.KeyID] = &k
	}
	return out, nil
}

func (k kubeAPI) review(ctx context.Context, token, audience string) (string, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	res, err := k.cs.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenReview: %w", err)
	}
	st := res.Status
	if !st.Authenticated || st.Error != "" || !containsString(st.Audiences, audience) {
		return "", errNotAuthenticated
	}
	return st.User.Username, nil
}

var errNotAuthenticated = errors.New("the API server does not authenticate the token")

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// clusterKeys caches the service-account issuer and keys.
type clusterKeys struct {
	api       clusterAPI
	log       logr.Logger
	state     atomic.Pointer[clusterKeyState]
	lastFetch atomic.Int64
	group     singleflight.Group
}

type clusterKeyState struct {
	issuer string
	keys   map[string]*jose.JSONWebKey
}

// key returns the issuer and the key for kid, fetching the keys when kid is unknown and the
// cooldown has passed.
func (ck *clusterKeys) key(ctx context.Context, kid string) (string, *jose.JSONWebKey, bool) {
	if st := ck.state.Load(); st != nil {
		if k, ok := st.keys[kid]; ok {
			return st.issuer, k, true
		}
	}
	if time.Since(time.Unix(0, ck.lastFetch.Load())) < clusterKeysCooldown {
		return "", nil, false
	}
	_, _, _ = ck.group.Do("fetch", func() (any, error) {
		ck.fetch(ctx)
		return nil, nil
	})
	st := ck.state.Load()
	if st == nil {
		return "", nil, false
	}
	k, ok := st.keys[kid]
	return st.issuer, k, ok
}

func (ck *clusterKeys) fetch(ctx context.Context) {
	if time.Since(time.Unix(0, ck.lastFetch.Load())) < clusterKeysCooldown {
		return
	}
	ck.lastFetch.Store(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
	defer cancel()
	issuer, keys, err := ck.api.discover(ctx)
	if err != nil {
		ck.log.Error(err, "cannot read the cluster's service-account issuer keys; ServiceAccount clients are refused until they can be read")
		return
	}
	ck.state.Store(&clusterKeyState{issuer: issuer, keys: keys})
	ck.log.Info("service-account issuer keys loaded", "issuer", issuer, "keys", len(keys))
}

// reviewCache holds positive TokenReview answers by token hash, with a count per
// ServiceAccount so that none can crowd out the others (see maxReviewsPerSubject).
type reviewCache struct {
	mu       sync.RWMutex
	entries  map[[32]byte]reviewEntry
	subjects map[string]*subjectReviews
	// perSubject and soft are maxReviewsPerSubject and maxReviewCache (lower in tests).
	perSubject int
	soft       int
	lastSweep  time.Time
}

// subjectReviews is one ServiceAccount's share of the cache; its key is shared by its entries.
type subjectReviews struct {
	key string
	n   int
}

type reviewEntry struct {
	subject *subjectReviews
	// deadline is in Unix nanoseconds.
	deadline int64
}

func newReviewCache() *reviewCache {
	return &reviewCache{entries: map[[32]byte]reviewEntry{}, subjects: map[string]*subjectReviews{},
		perSubject: maxReviewsPerSubject, soft: maxReviewCache}
}

func (rc *reviewCache) get(h *[32]byte, now time.Time) (string, bool) {
	rc.mu.RLock()
	e, ok := rc.entries[*h]
	rc.mu.RUnlock()
	if !ok || now.UnixNano() >= e.deadline {
		return "", false
	}
	return e.subject.key, true
}

// put caches a confirmed token of subject ("<namespace>/<name>") until deadline, unless that
// subject has no room left.
func (rc *reviewCache) put(h [32]byte, subject string, deadline, now time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e, ok := rc.entries[h]; ok && e.subject.key == subject {
		e.deadline = deadline.UnixNano() // confirmed again after its answer expired
		rc.entries[h] = e
		return
	}
	sr := rc.subjects[subject]
	if rc.full(sr) {
		rc.sweep(now)
		sr = rc.subjects[subject]
		if rc.full(sr) {
			return
		}
	}
	if sr == nil {
		sr = &subjectReviews{key: subject}
		rc.subjects[subject] = sr
	}
	sr.n++
	rc.entries[h] = reviewEntry{subject: sr, deadline: deadline.UnixNano()}
}

// full reports whether the subject may not add an answer: it holds its cap, or the cache is
// past its safety net and the subject holds at least its fair share.
func (rc *reviewCache) full(sr *subjectReviews) bool {
	n := 0
	if sr != nil {
		n = sr.n
	}
	if n >= rc.perSubject {
		return true
	}
	return len(rc.entries) >= rc.soft && n >= rc.soft/max(1, len(rc.subjects))
}

// sweep drops the expired answers, at most once per reviewSweepEvery.
func (rc *reviewCache) sweep(now time.Time) {
	if now.Sub(rc.lastSweep) < reviewSweepEvery {
		return
	}
	rc.lastSweep = now
	t := now.UnixNano()
	for k, e := range rc.entries {
		if t < e.deadline {
			continue
		}
		delete(rc.entries, k)
		if e.subject.n--; e.subject.n == 0 {
			delete(rc.subjects, e.subject.key)
		}
	}
}

// serviceAccounts authenticates ServiceAccount clients.
type serviceAccounts struct {
	api     clusterAPI
	keys    clusterKeys
	cache   *reviewCache
	reviews singleflight.Group
}

// bindCluster gives the server the API it verifies ServiceAccount tokens with.
func (s *Server) bindCluster(api clusterAPI) {
	sa := &serviceAccounts{api: api, cache: newReviewCache()}
	sa.keys.api, sa.keys.log = api, s.log.WithName("serviceaccounts")
	s.serviceAccounts.Store(sa)
}

// authenticateServiceAccount authenticates a ServiceAccount token assertion; a refusal is
// logged with its reason (refusals.go).
func (s *Server) authenticateServiceAccount(ctx context.Context, req *tokenRequest, h *[32]byte, a *assertion, now time.Time) (*Client, *oauthError) {
	sa := s.serviceAccounts.Load()
	if sa == nil {
		return nil, s.refuseAssertion(refusedNoCluster, a.sub, a)
	}
	key, ok := subjectKey(a.sub)
	if !ok {
		return nil, s.refuseAssertion(refusedMalformed, a.sub, a)
	}
	c := s.index.lookupSubject(key)
	switch {
	case c == nil:
		return nil, s.refuseAssertion(refusedUnknownClient, a.sub, a)
	case len(req.id) > 0 && string(req.id) != c.id:
		return nil, s.refuseAssertion(refusedClientMismatch, a.sub, a)
	}
	if why := s.serviceAccountTokenRefusal(ctx, sa, a, now); why != "" {
		return nil, s.refuseAssertion(why, a.sub, a)
	}
	if !sa.confirm(ctx, string(req.assertion), *h, a, s.opts.Issuer, now) {
		return nil, s.refuseAssertion(refusedTokenReview, a.sub, a)
	}
	return c, nil
}

// cachedServiceAccount answers from the TokenReview cache: the client bound to the
// ServiceAccount of a token confirmed less than a minute ago and not yet expired.
func (s *Server) cachedServiceAccount(req *tokenRequest, h *[32]byte, now time.Time) *Client {
	sa := s.serviceAccounts.Load()
	if sa == nil {
		return nil
	}
	key, ok := sa.cache.get(h, now)
	if !ok {
		return nil
	}
	c := s.index.lookupSubject(key)
	if c == nil || (len(req.id) > 0 && string(req.id) != c.id) {
		return nil
	}
	return c
}

// serviceAccountTokenRefusal checks the signature with the cluster's keys, then iss, aud, exp
// and nbf: "" when they hold.
func (s *Server) serviceAccountTokenRefusal(ctx context.Context, sa *serviceAccounts, a *assertion, now time.Time) refusal {
	if !serviceAccountAlgorithms[a.alg] || a.kid == "" {
		return refusedNoMatchingKey
	}
	issuer, key, ok := sa.keys.key(ctx, a.kid)
	switch {
	case !ok || (key.Algorithm != "" && key.Algorithm != a.alg):
		return refusedNoMatchingKey
	case a.iss != issuer:
		return refusedWrongIssuer
	case !verifySignature(a.alg, key.Key, a.signingInput, a.sig):
		return refusedBadSignature
	case !a.hasAudience(s.opts.Issuer):
		return refusedWrongAudience
	}
	return timesRefusal(a, now)
}

// timesRefusal: "" when not expired and not before nbf or iat (with leeway for clock skew).
func timesRefusal(a *assertion, now time.Time) refusal {
	t := now.Unix()
	skew := int64(assertionLeeway / time.Second)
	switch {
	case t >= a.exp:
		return refusedExpired
	case (a.nbf != 0 && a.nbf > t+skew) || (a.iat != 0 && a.iat > t+skew):
		return refusedNotYetValid
	}
	return ""
}

// confirm asks TokenReview once per token (concurrent first uses share one call) and caches
// a positive answer until min(exp, now + reviewCacheTTL).
func (sa *serviceAccounts) confirm(ctx context.Context, token string, h [32]byte, a *assertion, audience string, now time.Time) bool {
	v, err, _ := sa.reviews.Do(string(h[:]), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiTimeout)
		defer cancel()
		return sa.api.review(rctx, token, audience)
	})
	if err != nil {
		if !errors.Is(err, errNotAuthenticated) {
			sa.keys.log.Error(err, "TokenReview failed; refusing the ServiceAccount token")
		}
		return false
	}
	if v.(string) != a.sub {
		return false
	}
	deadline := now.Add(reviewCacheTTL)
	if exp := time.Unix(a.exp, 0); exp.Before(deadline) {
		deadline = exp
	}
	key, _ := subjectKey(a.sub)
	sa.cache.put(h, key, deadline, now)
	return true
}

// subjectKey turns "system:serviceaccount:<ns>:<name>" into "<ns>/<name>".
func subjectKey(sub string) (string, bool) {
	rest, ok := strings.CutPrefix(sub, serviceAccountPrefix)
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, ":/") || strings.Contains(ns, "/") {
		return "", false
	}
	return ns + "/" + name, true
}

// isServiceAccountSubject reports whether an assertion is a ServiceAccount token.
func isServiceAccountSubject(sub string) bool { return strings.HasPrefix(sub, serviceAccountPrefix) }

// hashAssertion is the cache key of an assertion.
func hashAssertion(raw []byte) [32]byte { return sha256.Sum256(raw) }
