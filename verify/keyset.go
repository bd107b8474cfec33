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

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// maxDocumentSize bounds the metadata and key set responses.
const maxDocumentSize = 1 << 20

// fetchTimeout bounds a key set fetch shared by several callers: it runs detached from any one
// caller's context, so that one caller giving up does not fail the others.
const fetchTimeout = 30 * time.Second

// metadata is what a verifier reads of the issuer's RFC 8414 metadata.
type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	// RevocationListURI is the m2m token server's own field (WithRevocationList).
	RevocationListURI string `json:"m2m_revocation_list_uri"`
}

// discover reads the issuer's RFC 8414 metadata.
func discover(ctx context.Context, client *http.Client, issuer string) (*metadata, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, u := range urls {
		md, err := fetchMetadata(ctx, client, u, issuer)
		if err == nil {
			return md, nil
		}
		lastErr = err
		if !errors.Is(err, errNotFound) {
			break
		}
	}
	return nil, wrap(ErrKeySet, "discovery", lastErr)
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
func fetchMetadata(ctx context.Context, client *http.Client, metadataURL, issuer string) (*metadata, error) {
	body, resp, err := get(ctx, client, metadataURL, "") //nolint:bodyclose // get has read and closed the body
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("metadata: %w", errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metadata: HTTP status %d", resp.StatusCode)
	}
	var md metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	// RFC 8414 §3.3: the issuer in the document must be identical to the one we asked for,
	// or an attacker-controlled document could substitute its own keys.
	if md.Issuer != issuer {
		return nil, fmt.Errorf("metadata issuer %s differs from %s", excerpt(md.Issuer), excerpt(issuer))
	}
	if err := checkDocumentURI("jwks_uri", md.JWKSURI, issuer); err != nil {
		return nil, err
	}
	return &md, nil
}

// checkDocumentURI refuses a metadata location (field name) that would downgrade the
// transport.
func checkDocumentURI(field, uri, issuer string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("metadata %s %s is not an http(s) URL", field, excerpt(uri))
	}
	if u.Scheme == "http" && strings.HasPrefix(issuer, "https:") {
		return fmt.Errorf("metadata %s %s is not https", field, excerpt(uri))
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

// remoteKeySet is the issuer's JWKS, fetched over HTTP: a jws.KeySet (the cache, the
// unknown-kid fetch with its cooldown, one fetch for all concurrent callers) whose fetch is a
// conditional GET, refreshed in the background when the response's Cache-Control max-age runs
// out.
type remoteKeySet struct {
	set        *jws.KeySet
	url        string
	client     *http.Client
	now        func() time.Time
	algorithms []jose.SignatureAlgorithm
	minRefresh time.Duration
	maxRefresh time.Duration

	mu   sync.Mutex
	etag string

	nextRefresh atomic.Int64   // unix nanos at which the periodic refresh is due
	refreshing  atomic.Bool    // a background refresh is running
	background  sync.WaitGroup // background refreshes, for tests
}

func newRemoteKeySet(jwksURL string, cfg *config, onRemove func([]string)) *remoteKeySet {
	s := &remoteKeySet{
		url:        jwksURL,
		client:     cfg.httpClient,
		now:        cfg.now,
		algorithms: cfg.algorithms,
		minRefresh: cfg.minRefresh,
		maxRefresh: cfg.maxRefresh,
	}
	s.set = jws.NewKeySet(s.fetch, jws.KeySetOptions{
		Cooldown: cfg.cooldown, FetchTimeout: fetchTimeout, Now: cfg.now, OnRemove: onRemove,
	})
	return s
}

// Key implements KeySource.
func (s *remoteKeySet) Key(kid string) (*jose.JSONWebKey, bool) { return s.set.Key(kid) }

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
		_ = s.set.Refresh(context.Background()) // failures reschedule; old keys stay
	}()
}

// fetch is the key set's jws.FetchFunc: a GET (conditional, with the last ETag) that also
// schedules the next periodic refresh. On failure the current keys stay in use.
func (s *remoteKeySet) fetch(ctx context.Context) (map[string]*jose.JSONWebKey, error) {
	start := s.now()
	s.mu.Lock()
	etag := s.etag
	s.mu.Unlock()

	body, resp, err := get(ctx, s.client, s.url, etag) //nolint:bodyclose // get has read and closed the body
	if err != nil {
		s.schedule(start, s.minRefresh)
		return nil, wrap(ErrKeySet, "fetching the key set", err)
	}
	var keys map[string]*jose.JSONWebKey
	switch resp.StatusCode {
	case http.StatusNotModified:
	case http.StatusOK:
		if keys, err = jws.ParseKeySet(body, s.algorithms); err != nil {
			s.schedule(start, s.minRefresh)
			return nil, wrap(ErrKeySet, "", err)
		}
		s.mu.Lock()
		s.etag = resp.Header.Get("ETag")
		s.mu.Unlock()
	default:
		s.schedule(start, s.minRefresh)
		return nil, failf(ErrKeySet, "fetching the key set: HTTP status %d", resp.StatusCode)
	}
	s.schedule(start, refreshInterval(resp.Header, s.minRefresh, s.maxRefresh))
	return keys, nil
}

func (s *remoteKeySet) schedule(from time.Time, after time.Duration) {
	s.nextRefresh.Store(from.Add(after).UnixNano())
}

// asKeySetError keeps an *Error, and reports any other failure of the first fetch (the
// caller's context ending) as ErrKeySet.
func asKeySetError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return wrap(ErrKeySet, "fetching the key set", err)
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
