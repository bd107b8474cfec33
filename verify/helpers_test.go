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
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// fakeClock is a manually advanced clock shared by the issuer and the verifier.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newIssuer starts a test issuer on clock.
func newIssuer(t *testing.T, clock *fakeClock, opts ...verifytest.Option) *verifytest.Issuer {
	t.Helper()
	return verifytest.NewIssuer(t, append([]verifytest.Option{verifytest.WithClock(clock.Now)}, opts...)...)
}

// testVerifier builds a discovering Verifier for iss on clock.
func testVerifier(t testing.TB, iss *verifytest.Issuer, clock *fakeClock, opts ...Option) *Verifier {
	t.Helper()
	base := []Option{WithClock(clock.Now), WithHTTPClient(iss.Client())}
	v, err := New(context.Background(), iss.URL, iss.Audience, append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// mustVerify fails the test unless token verifies.
func mustVerify(t *testing.T, v *Verifier, token string) *Claims {
	t.Helper()
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify of a valid token: %v", err)
	}
	return c
}

// wantKind fails the test unless err is an *Error of the given kind.
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *verify.Error", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: want kind %q", err, kind)
	}
}

// waitBackground waits for background key set refreshes started so far.
func waitBackground(v *Verifier) {
	v.remote.background.Wait()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSmallRSA(t *testing.T) *rsa.PublicKey {
	t.Helper()
	// rsa.GenerateKey refuses < 1024 bits; a 1024-bit key is enough to test the floor.
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}
