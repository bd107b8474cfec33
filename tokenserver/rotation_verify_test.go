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
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/verify"
)

// TestVerifierFollowsRotationUnderTraffic runs the whole chain for real: the signing-key
// reconciler rotates in the API server, the token server follows through its informer, and a
// verify.Verifier built once from the server's RFC 8414 metadata keeps verifying every token
// that goroutines fetch over HTTP with x/oauth2 — through publish-ahead, activation and
// removal of the old key — without a restart and without a single refusal.
func TestVerifierFollowsRotationUnderTraffic(t *testing.T) {
	ls := startLiveServer(t, func(o *Options) { o.AuditLog = io.Discard })
	g := NewWithT(t)
	rec, secret := newRecord(t)
	ls.putRecord(t, rec)
	g.Eventually(func() bool { return ls.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())

	// The clock moves only while no request is in flight: a token fetched just before a jump of
	// hours would be refused as expired, which is the clock's doing, not the rotation's.
	var clockMu sync.RWMutex
	now := func() time.Time { return ls.clock.Now() }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := verify.New(ctx, ls.url, audBilling, verify.WithClock(now))
	g.Expect(err).NotTo(HaveOccurred())

	cc := clientcredentials.Config{ClientID: rec.ClientID, ClientSecret: secret, TokenURL: ls.url + TokenPath, AuthStyle: oauth2.AuthStyleInHeader}
	var verified, failed atomic.Int64
	var kidsMu sync.Mutex
	kids := map[string]int{}
	var firstFailure atomic.Value
	call := func() {
		clockMu.RLock()
		defer clockMu.RUnlock()
		tok, err := cc.Token(ctx) // a fresh token each time: every one must verify
		if err == nil {
			_, err = v.Verify(ctx, tok.AccessToken)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed.Add(1)
			firstFailure.CompareAndSwap(nil, err.Error())
			return
		}
		verified.Add(1)
		if kid, ok := tokenKID(tok.AccessToken); ok {
			kidsMu.Lock()
			kids[kid]++
			kidsMu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				call()
			}
		}()
	}
	// step moves the clock, reconciles the keys, and lets traffic run on the new state.
	step := func(at time.Duration, until func() bool) {
		t.Helper()
		clockMu.Lock()
		ls.clock.Set(testT0.Add(at))
		ls.reconcileKeys(t)
		clockMu.Unlock()
		g.Eventually(until).WithTimeout(10 * time.Second).Should(BeTrue())
		mark := verified.Load()
		g.Eventually(verified.Load).WithTimeout(10 * time.Second).Should(BeNumerically(">", mark+20))
	}
	oldKID := ls.keySet(t).Find(signingkey.StateActive).KID
	step(0, func() bool { return true })
	step(23*time.Hour, func() bool { return ls.keySet(t).Find(signingkey.StateNext) != nil }) // publish ahead
	nextKID := ls.keySet(t).Find(signingkey.StateNext).KID
	step(24*time.Hour, func() bool { return activeKID(ls) == nextKID }) // activation
	step(26*time.Hour, func() bool { return !jwksHas(t, ls, oldKID) })  // old key removed
	cancel()
	wg.Wait()

	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d verifications failed across the rotation; first: %v", n, n+verified.Load(), firstFailure.Load())
	}
	kidsMu.Lock()
	defer kidsMu.Unlock()
	if kids[oldKID] == 0 || kids[nextKID] == 0 {
		t.Fatalf("traffic did not span the rotation: tokens per kid %v", kids)
	}
	t.Logf("%d tokens fetched and verified across a rotation, none refused (per kid: %v)", verified.Load(), kids)
}

// activeKID is the kid the token server signs with now.
func activeKID(ls *liveServer) string {
	if a := ls.Server.keys.Load().active; a != nil {
		return a.kid
	}
	return ""
}

func jwksHas(t *testing.T, ls *liveServer, kid string) bool {
	return strings.Contains(string(fetchJWKS(t, ls.url)), fmt.Sprintf("%q", kid))
}

// tokenKID reads the kid from a compact JWS header (the signature is verify's business).
func tokenKID(token string) (string, bool) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		KID string `json:"kid"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return "", false
	}
	return h.KID, h.KID != ""
}
