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
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/dpop"
	"github.com/m2m-dev/m2m-operator/verify/dpopclient"
)

const apiOrigin = "https://api.example.test"

// inProcess routes requests by host to handlers. Like a real transport it consumes the
// request's body, so a client that sends a request again must rewind it.
type inProcess map[string]http.Handler

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	in := r.Clone(r.Context())
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		in.Body = io.NopCloser(bytes.NewReader(b))
	}
	w := httptest.NewRecorder()
	p[r.URL.Host].ServeHTTP(w, in)
	return w.Result(), nil
}

func counting(n *atomic.Int32, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); h.ServeHTTP(w, r) })
}

// TestDPoPEndToEnd: the Go client gets a bound token from the token server (following its
// nonce), calls an API protected by verify (following the API's nonce), and the token it holds
// is refused to anyone without its key.
func TestDPoPEndToEnd(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.DPoPNonce = true })
	id, secret := ts.addClient(t, func(r *credential.Record) { r.TokenBinding = credential.TokenBindingDPoP })
	rs, err := verify.NewWithKeySource(testIssuer, audBilling, publishedKeys{&ts.keys}, verify.WithClock(ts.clock.Now),
		verify.WithExternalURL(apiOrigin), verify.WithDPoPNonces(dpop.NewNonces(DefaultDPoPProofWindow, []byte("the API's own nonce key, 32 B..."))))
	if err != nil {
		t.Fatal(err)
	}
	var seen *verify.Claims
	var body string
	var asCalls, apiCalls atomic.Int32
	api := rs.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = verify.FromContext(r.Context())
		if r.Body != nil { // in process, a client request without a body has none
			b, _ := io.ReadAll(r.Body)
			body = string(b)
		}
	}))
	routes := inProcess{"m2m.example.test": counting(&asCalls, ts.Handler()), "api.example.test": counting(&apiCalls, api)}
	tr, err := dpopclient.New(dpopclient.Config{TokenURL: testTokenURL, ClientID: id, ClientSecret: secret, Base: routes, Now: ts.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.Client().Get(apiOrigin + "/invoices?page=1")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || seen == nil || seen.JKT != tr.Thumbprint() {
		t.Fatalf("API answered %d %q, claims %+v", resp.StatusCode, resp.Header.Values("WWW-Authenticate"), seen)
	}
	if asCalls.Load() != 2 || apiCalls.Load() != 2 {
		t.Fatalf("calls: token server %d, API %d; want 2 each (one use_dpop_nonce round each)", asCalls.Load(), apiCalls.Load())
	}
	// The next call reuses the token and the API's latest nonce: one request.
	resp, err = tr.Client().Get(apiOrigin + "/invoices")
	if err != nil || resp.StatusCode != http.StatusOK || apiCalls.Load() != 3 || asCalls.Load() != 2 {
		t.Fatalf("second call: %v %v, calls %d/%d", resp, err, asCalls.Load(), apiCalls.Load())
	}
	_ = resp.Body.Close()

	// A request with a body is sent again, body included, after the API asks for a nonce.
	fresh, err := dpopclient.New(dpopclient.Config{TokenURL: testTokenURL, ClientID: id, ClientSecret: secret, Base: routes, Now: ts.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	before := apiCalls.Load()
	resp, err = fresh.Client().Post(apiOrigin+"/invoices", "text/plain", strings.NewReader("invoice 42"))
	if err != nil || resp.StatusCode != http.StatusOK || body != "invoice 42" || apiCalls.Load() != before+2 {
		t.Fatalf("POST: %v %v, body %q, API calls %d", resp, err, body, apiCalls.Load()-before)
	}
	_ = resp.Body.Close()

	// The token alone is worthless: as Bearer, or with a proof by another key.
	stolen, err := tr.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	thief := newProofSigner(t)
	for _, name := range []string{"as Bearer", "with the thief's proof"} {
		req := httptest.NewRequest(http.MethodGet, apiOrigin+"/invoices", nil)
		if name == "as Bearer" {
			req.Header.Set("Authorization", "Bearer "+stolen)
		} else {
			p, _ := thief.Proof("GET", apiOrigin+"/invoices", stolen, "", ts.clock.Now())
			req.Header.Set("Authorization", "DPoP "+stolen)
			req.Header.Set("DPoP", p)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("stolen token %s: %d", name, w.Code)
		}
	}
}
