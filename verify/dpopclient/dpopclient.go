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

// Package dpopclient is the client side of DPoP (RFC 9449) for Go programs calling APIs with
// m2m tokens: an http.RoundTripper that keeps a private key, gets DPoP-bound tokens with the
// client credentials grant, and signs a fresh proof for every request. It follows server
// nonces (use_dpop_nonce) from the token server and from resource servers, retrying once.
//
// A stolen token is worthless without the key, which never leaves the process: the default
// key is generated in memory (ES256) when the Transport is built.
//
// It depends on the standard library and go-jose only (no golang.org/x/oauth2), like package
// verify.
package dpopclient

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/dpop"
)

// refreshBefore is how long before its expiry a token is replaced.
const refreshBefore = 30 * time.Second

// maxTokenResponse bounds the token endpoint's answer.
const maxTokenResponse = 64 << 10

// Config configures a Transport.
type Config struct {
	// TokenURL is the token endpoint (the credential Secret's token_url).
	TokenURL string
	// ClientID and ClientSecret authenticate the client (client_secret_basic).
	ClientID, ClientSecret string
	// Audience, when set, is sent as the audience parameter (required when the client has
	// several audiences).
	Audience string
	// Scopes, when set, are requested; default: every scope granted for the audience.
	Scopes []string
	// Key is the proof key; default a fresh ECDSA P-256 key (ES256).
	Key crypto.Signer
	// Base sends the requests, to the token endpoint and to APIs; default
	// http.DefaultTransport.
	Base http.RoundTripper
	// Now is the clock of proofs and token expiry; default time.Now.
	Now func() time.Time
}

// Transport is an http.RoundTripper adding a DPoP-bound token and a proof to every request. It
// is safe for concurrent use.
type Transport struct {
	cfg    Config
	signer *dpop.Signer

	mu      sync.Mutex
	token   string
	expires time.Time
	// nonces are the last nonce each origin (scheme://host) sent, the token endpoint's too;
	// under nmu, not mu, which is held across a token request.
	nmu    sync.Mutex
	nonces map[string]string
}

// New returns a Transport for cfg.
func New(cfg Config) (*Transport, error) {
	if cfg.TokenURL == "" || cfg.ClientID == "" {
		return nil, errors.New("dpopclient: TokenURL and ClientID are required")
	}
	if cfg.Key == nil {
		k, err := dpop.GenerateKey()
		if err != nil {
			return nil, err
		}
		cfg.Key = k
	}
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s, err := dpop.NewSigner(cfg.Key)
	if err != nil {
		return nil, err
	}
	return &Transport{cfg: cfg, signer: s, nonces: map[string]string{}}, nil
}

// Thumbprint returns the proof key's thumbprint: the cnf.jkt of the tokens this Transport gets.
func (t *Transport) Thumbprint() string { return t.signer.Thumbprint() }

// Client returns an http.Client sending through t.
func (t *Transport) Client() *http.Client { return &http.Client{Transport: t} }

// RoundTrip sends req with "Authorization: DPoP <token>" and a proof for its method and URL.
// When the server answers 401 use_dpop_nonce with a DPoP-Nonce, it signs a proof with that
// nonce and sends the request once more (when its body can be sent again).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := t.Token(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.send(req, token)
	if err != nil || !wantsNonce(resp) || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	drain(resp)
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("dpopclient: rewinding the request body: %w", err)
		}
	}
	return t.send(retry, token)
}

// send signs a proof for req (with the origin's last nonce) and sends it.
func (t *Transport) send(req *http.Request, token string) (*http.Response, error) {
	origin := originOf(req.URL)
	proof, err := t.signer.Proof(req.Method, req.URL.String(), token, t.nonce(origin), t.cfg.Now())
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", dpop.Scheme+" "+token)
	out.Header.Set(dpop.HeaderName, proof)
	resp, err := t.cfg.Base.RoundTrip(out)
	if err == nil {
		t.keepNonce(origin, resp)
	}
	return resp, err
}

// Token returns a DPoP-bound access token, fetching a new one when none is held or the held
// one is about to expire.
func (t *Transport) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.cfg.Now().Before(t.expires.Add(-refreshBefore)) {
		return t.token, nil
	}
	tok, exp, err := t.fetch(ctx)
	if err != nil {
		return "", err
	}
	t.token, t.expires = tok, exp
	return tok, nil
}

// tokenResponse is the RFC 6749 §5.1 / §5.2 answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// fetch runs the client credentials grant with a proof, once more with the server's nonce
// when it asks for one (RFC 9449 §8). It is called with t.mu held.
func (t *Transport) fetch(ctx context.Context) (string, time.Time, error) {
	for attempt := 0; ; attempt++ {
		tr, err := t.requestToken(ctx)
		if err != nil {
			return "", time.Time{}, err
		}
		if tr.Error == "use_dpop_nonce" && attempt == 0 {
			continue
		}
		if tr.Error != "" {
			return "", time.Time{}, fmt.Errorf("dpopclient: token request refused: %s: %s", tr.Error, tr.Description)
		}
		if !strings.EqualFold(tr.TokenType, dpop.TokenType) || tr.AccessToken == "" {
			return "", time.Time{}, fmt.Errorf("dpopclient: the token endpoint issued a %q token, not a DPoP-bound one", tr.TokenType)
		}
		return tr.AccessToken, t.cfg.Now().Add(time.Duration(tr.ExpiresIn) * time.Second), nil
	}
}

// requestToken sends one token request and decodes the answer.
func (t *Transport) requestToken(ctx context.Context) (*tokenResponse, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if t.cfg.Audience != "" {
		form.Set("audience", t.cfg.Audience)
	}
	if len(t.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(t.cfg.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("dpopclient: building the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(t.cfg.ClientID), url.QueryEscape(t.cfg.ClientSecret))
	origin := originOf(req.URL)
	proof, err := t.signer.Proof(http.MethodPost, t.cfg.TokenURL, "", t.nonce(origin), t.cfg.Now())
	if err != nil {
		return nil, err
	}
	req.Header.Set(dpop.HeaderName, proof)
	resp, err := t.cfg.Base.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("dpopclient: token request: %w", err)
	}
	defer drain(resp)
	t.keepNonce(origin, resp)
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&tr); err != nil {
		return nil, fmt.Errorf("dpopclient: token response (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK && tr.Error == "" {
		tr.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return &tr, nil
}

func (t *Transport) nonce(origin string) string {
	t.nmu.Lock()
	defer t.nmu.Unlock()
	return t.nonces[origin]
}

func (t *Transport) keepNonce(origin string, resp *http.Response) {
	n := resp.Header.Get(dpop.NonceHeader)
	if n == "" {
		return
	}
	t.nmu.Lock()
	defer t.nmu.Unlock()
	t.nonces[origin] = n
}

// wantsNonce reports a resource server's 401 error="use_dpop_nonce" with a nonce (RFC 9449 §9).
func wantsNonce(resp *http.Response) bool {
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(dpop.NonceHeader) == "" {
		return false
	}
	for _, c := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(c, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}

func originOf(u *url.URL) string { return strings.ToLower(u.Scheme + "://" + u.Host) }

// drain reads a little of an unused body and closes it, so that the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}
