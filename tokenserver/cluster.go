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

// What the ServiceAccount method (auth_serviceaccount.go) asks of the API server: the
// service-account issuer and its keys (OIDC discovery), and TokenReview, with the cache of
// TokenReview answers.

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

const (
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
)

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
	// The API server's keys are parsed as a resource server parses an issuer's: only keys
	// of the algorithms it signs ServiceAccount tokens with are kept.
	keys, err := jws.ParseKeySet(body, serviceAccountAlgorithms)
	if err != nil {
		return "", nil, fmt.Errorf("decoding the service-account issuer keys: %w", err)
	}
	return doc.Issuer, keys, nil
}

func (k kubeAPI) review(ctx context.Context, token, audience string) (string, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	res, err := k.cs.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenReview: %w", err)
	}
	st := res.Status
	if !st.Authenticated || st.Error != "" || !slices.Contains(st.Audiences, audience) {
		return "", errNotAuthenticated
	}
	return st.User.Username, nil
}

var errNotAuthenticated = errors.New("the API server does not authenticate the token")

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
	api clusterAPI
	log logr.Logger
	// keys are the service-account issuer's keys, fetched again on an unknown kid at most
	// once per clusterKeysCooldown (the key set of package verify/jws); issuerName is the
	// issuer they were read with.
	keys       *jws.KeySet
	issuerName atomic.Pointer[string]
	cache      *reviewCache
	reviews    singleflight.Group
}

// bindCluster gives the server the API it verifies ServiceAccount tokens with.
func (s *Server) bindCluster(api clusterAPI) {
	sa := &serviceAccounts{api: api, log: s.log.WithName("serviceaccounts"), cache: newReviewCache()}
	sa.keys = jws.NewKeySet(sa.fetchKeys, jws.KeySetOptions{Cooldown: clusterKeysCooldown, FetchTimeout: apiTimeout})
	s.serviceAccounts.Store(sa)
}

// fetchKeys is the key set's jws.FetchFunc: the issuer and its keys by OIDC discovery. The
// issuer is stored before the keys are returned to be installed, so a request that finds a new
// key also finds the issuer it came with.
func (sa *serviceAccounts) fetchKeys(ctx context.Context) (map[string]*jose.JSONWebKey, error) {
	issuer, keys, err := sa.api.discover(ctx)
	if err != nil {
		sa.log.Error(err, "cannot read the cluster's service-account issuer keys; ServiceAccount clients are refused until they can be read")
		return nil, err
	}
	if keys == nil {
		keys = map[string]*jose.JSONWebKey{} // nil would keep the previous keys
	}
	sa.issuerName.Store(&issuer)
	sa.log.Info("service-account issuer keys loaded", "issuer", issuer, "keys", len(keys))
	return keys, nil
}

// issuer is the service-account issuer, "" before its keys were first read.
func (sa *serviceAccounts) issuer() string {
	if p := sa.issuerName.Load(); p != nil {
		return *p
	}
	return ""
}
