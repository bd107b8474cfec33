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
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"golang.org/x/sync/singleflight"
)

// maxDocumentSize bounds the metadata and key set responses.
const maxDocumentSize = 1 << 20

// fetchTimeout bounds a key set fetch shared by several callers: it runs detached from any one
// caller's context, so that one caller giving up does not fail the others.
const fetchTimeout = 30 * time.Second

// errCooldown reports that an unknown-kid refresh was skipped because the last fetch is too
// recent.
var errCooldown = errors.New("key set fetched too recently")

// discover reads the issuer's RFC 8414 metadata and returns its jwks_uri.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, u := range urls {
		jwksURL, err := fetchMetadata(ctx, client, u, issuer)
		if err == nil {
			return jwksURL, nil
		}
		lastErr = err
		if !errors.Is(err, errNotFound) {
			break
		}
	}
	return "", wrap(ErrKeySet, "discovery", lastErr)
}

// metadataURLs lists where the metadata may live: RFC 8414 §3.1 inserts the well-known path
// between host and issuer path; many servers instead append it, which is the same URL when the
// issuer has no path.
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, wrap(ErrKeySet, "issuer is not a URL", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, failf(ErrKeySet, "issuer %s must be an http(s) URL without query or fragment", excerpt(issuer))
	}
	const wellKnown = "/.well-known/oauth-authorization-server"
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	base := u.Scheme + "://" + u.Host
	if path == "" {
		return []string{base + wellKnown}, nil
	}
	return []string{base + wellKnown + path, base + path + wellKnown}, nil
}

var errNotFound = errors.New("not found")

// fetchMetadata GETs one metadata document and checks it.
func fetchMetadata(ctx context.Context, client *http.Client, metadataURL, issuer string) (string, error) {
	body, resp, err := get(ctx, client, metadataURL, "")
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("metadata: %w", errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata: HTTP status %d", resp.StatusCode)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	// RFC 8414 §3.3: the issuer in the document must be identical to the one we asked for,
	// or an attacker-controlled document could substitute its own keys.
	if md.Issuer != issuer {
		return "", fmt.Errorf("metadata issuer %s differs from %s", excerpt(md.Issuer), excerpt(issuer))
	}
	if err := checkJWKSURI(md.JWKSURI, issuer); err != nil {
		return "", err
	}
	return md.JWKSURI, nil
}

// checkJWKSURI refuses a key set location that would downgrade the transport.
func checkJWKSURI(jwksURI, issuer string) error {
	u, err := url.Parse(jwksURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("metadata jwks_uri %s is not an http(s) URL", excerpt(jwksURI))
	}
	if u.Scheme == "http" && strings.HasPrefix(issuer, "https:") {
		return fmt.Errorf("metadata jwks_uri %s is not https", excerpt(jwksURI))
	}
	return nil
}

// get performs a GET and reads at most maxDocumentSize bytes of the body.
func get(ctx context.Context, client *http.Client, target, etag string) ([]byte, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxDocumentSize {
		return nil, nil, fmt.Errorf("%s: response larger than %d bytes", target, maxDocumentSize)
	}
	return body, resp, nil
}

// remoteKeySet is the issuer's JWKS, fetched over HTTP and refreshed lazily.
type remoteKeySet struct {
	url        string
	client     *http.Client
	now        func() time.Time
	algorithms []jose.SignatureAlgorithm
	cooldown   time.Duration
	minRefresh time.Duration
	maxRefresh time.Duration
	onRemove   func(kids []string)

	mu   sync.RWMutex
	keys map[string]*jose.JSONWebKey
	etag string

	nextRefresh atomic.Int64 // unix nanos at which the periodic refresh is due
	lastFetch   atomic.Int64 // unix nanos at which the last fetch started
	refreshing  atomic.Bool  // a background refresh is running
	group       singleflight.Group
	background  sync.WaitGroup // background refreshes, for tests
}

func newRemoteKeySet(jwksURL string, cfg *config, onRemove func([]string)) *remoteKeySet {
	return &remoteKeySet{
		url:        jwksURL,
		client:     cfg.httpClient,
		now:        cfg.now,
		algorithms: cfg.algorithms,
		cooldown:   cfg.cooldown,
		minRefresh: cfg.minRefresh,
		maxRefresh: cfg.maxRefresh,
		onRemove:   onRemove,
		keys:       map[string]*jose.JSONWebKey{},
	}
}

// Key implements KeySource.
func (s *remoteKeySet) Key(kid string) (*jose.JSONWebKey, bool) {
	s.mu.RLock()
	k, ok := s.keys[kid]
	s.mu.RUnlock()
	return k, ok
}

func (s *remoteKeySet) size() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// maybeRefresh starts a background refresh when the periodic one is due. Costs one atomic load
// otherwise, since it runs on every verification.
func (s *remoteKeySet) maybeRefresh(now time.Time) {
	if now.UnixNano() < s.nextRefresh.Load() {
		return
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer s.refreshing.Store(false)
		_ = s.refresh(context.Background(), false) // failures reschedule; old keys stay
	}()
}

// refresh fetches the key set once for all concurrent callers. With honorCooldown (the
// unknown-kid path) it does nothing when the last fetch started less than the cooldown ago.
// The fetch runs detached from ctx; ctx only bounds this caller's wait.
func (s *remoteKeySet) refresh(ctx context.Context, honorCooldown bool) error {
	err := s.refreshOnce(ctx, honorCooldown)
	// A forced refresh that joined an unknown-kid refresh skipped for cooldown has fetched
	// nothing: it tries again (bounded, in case more cooldown-skips keep winning the race).
	for tries := 0; !honorCooldown && errors.Is(err, errCooldown) && tries < 3; tries++ {
		err = s.refreshOnce(ctx, honorCooldown)
	}
	return err
}

// refreshOnce runs or joins one shared fetch.
func (s *remoteKeySet) refreshOnce(ctx context.Context, honorCooldown bool) error {
	ch := s.group.DoChan("jwks", func() (any, error) {
		if honorCooldown && s.inCooldown() {
			return nil, errCooldown
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return nil, s.fetch(fctx)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *remoteKeySet) inCooldown() bool {
	last := s.lastFetch.Load()
	return last != 0 && s.now().UnixNano()-last < int64(s.cooldown)
}

// fetch GETs the key set (conditionally, with the last ETag), installs it and schedules the
// next periodic refresh. On failure the current keys stay in use.
func (s *remoteKeySet) fetch(ctx context.Context) error {
	start := s.now()
	s.lastFetch.Store(start.UnixNano())
	s.mu.RLock()
	etag := s.etag
	s.mu.RUnlock()

	body, resp, err := get(ctx, s.client, s.url, etag)
	if err != nil {
		s.schedule(start, s.minRefresh)
		return wrap(ErrKeySet, "fetching the key set", err)
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
	case http.StatusOK:
		keys, err := parseKeySet(body, s.algorithms)
		if err != nil {
			s.schedule(start, s.minRefresh)
			return err
		}
		s.install(keys, resp.Header.Get("ETag"))
	default:
		s.schedule(start, s.minRefresh)
		return failf(ErrKeySet, "fetching the key set: HTTP status %d", resp.StatusCode)
	}
	s.schedule(start, refreshInterval(resp.Header, s.minRefresh, s.maxRefresh))
	return nil
}

func (s *remoteKeySet) schedule(from time.Time, after time.Duration) {
	s.nextRefresh.Store(from.Add(after).UnixNano())
}

// install swaps in a new key set. Unchanged keys keep their pointer, so cached tokens stay
// cheap to re-check; removed or changed kids are reported so their cached tokens are purged.
func (s *remoteKeySet) install(keys map[string]*jose.JSONWebKey, etag string) {
	s.mu.Lock()
	var removed []string
	for kid, old := range s.keys {
		if k, ok := keys[kid]; ok && sameKey(old, k) {
			keys[kid] = old
			continue
		}
		removed = append(removed, kid)
	}
	s.keys = keys
	s.etag = etag
	s.mu.Unlock()
	if len(removed) > 0 && s.onRemove != nil {
		s.onRemove(removed)
	}
}

// parseKeySet decodes a JWKS and keeps the keys usable for signature verification. A key this
// package cannot use (another type, "use": "enc", no kid, no allowed algorithm) is skipped
// rather than failing the whole set, so that a new key type published by the issuer does not
// break older verifiers. A kid that appears twice is dropped: key selection must be
// unambiguous.
func parseKeySet(body []byte, algorithms []jose.SignatureAlgorithm) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, wrap(ErrKeySet, "decoding the key set", err)
	}
	keys := make(map[string]*jose.JSONWebKey, len(set.Keys))
	dup := map[string]bool{}
	for _, raw := range set.Keys {
		k, ok := usableKey(raw, algorithms)
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

// usableKey decodes one JWK and reports whether it can verify tokens under the allow-list.
func usableKey(raw json.RawMessage, algorithms []jose.SignatureAlgorithm) (*jose.JSONWebKey, bool) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, false
	}
	if k.KeyID == "" || len(k.KeyID) > maxKeyIDLen || (k.Use != "" && k.Use != "sig") {
		return nil, false
	}
	if !k.IsPublic() {
		k = k.Public() // a server bug, but the public half is still the right key
	}
	for _, alg := range algorithms {
		if algFitsKey(string(alg), &k) {
			return &k, true
		}
	}
	return nil, false
}

// refreshInterval reads Cache-Control max-age and clamps it to [minInterval, maxInterval].
func refreshInterval(h http.Header, minInterval, maxInterval time.Duration) time.Duration {
	d := defaultRefreshInterval
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return minInterval
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(value, "\""), 10, 64); err == nil && secs >= 0 {
				d = time.Duration(min(secs, int64(maxInterval/time.Second)+1)) * time.Second
			}
		}
	}
	return min(max(d, minInterval), maxInterval)
}
