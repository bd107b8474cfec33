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

package jws_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/jws"
)

// must returns k, or panics with err: key generation and signing do not fail.
func must[K any](k K, err error) K {
	if err != nil {
		panic(err)
	}
	return k
}

// TestFitsBindsAlgorithmsToKeyTypes: each algorithm verifies with its own key type, curve and
// size only, a declared alg narrows the key to it, and none of "none" and HMAC ever fits.
func TestFitsBindsAlgorithmsToKeyTypes(t *testing.T) {
	p256 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	rsa2048 := must(rsa.GenerateKey(rand.Reader, 2048))
	rsa1024 := must(rsa.GenerateKey(rand.Reader, 1024))
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(k any, alg string) *jose.JSONWebKey { return &jose.JSONWebKey{Key: k, Algorithm: alg} }
	cases := []struct {
		name string
		key  *jose.JSONWebKey
		fits []string
	}{
		{"P-256", jwk(&p256.PublicKey, ""), []string{"ES256"}},
		{"P-256 private", jwk(p256, ""), []string{"ES256"}},
		{"P-384", jwk(&p384.PublicKey, ""), []string{"ES384"}},
		{"RSA 2048", jwk(&rsa2048.PublicKey, ""), []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"RSA 2048 declared PS256", jwk(&rsa2048.PublicKey, "PS256"), []string{"PS256"}},
		{"RSA 1024", jwk(&rsa1024.PublicKey, ""), nil},
		{"Ed25519", jwk(edPub, ""), []string{"EdDSA", "Ed25519"}},
		{"Ed25519 declared EdDSA", jwk(edPub, "EdDSA"), []string{"EdDSA"}},
		{"oct", jwk([]byte("secret"), ""), nil},
		{"nil", nil, nil},
	}
	all := []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"EdDSA", "Ed25519", "HS256", "none", ""}
	for _, c := range cases {
		for _, alg := range all {
			want := false
			for _, f := range c.fits {
				want = want || f == alg
			}
			if got := jws.Fits(alg, c.key); got != want {
				t.Errorf("%s, %q: Fits = %v, want %v", c.name, alg, got, want)
			}
		}
	}
}

// compact builds a JWS compact serialization with a hand-made header and signature.
func compact(header, payload string, sign func(input []byte) []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	return input + "." + enc(sign([]byte(input)))
}

// TestVerifyPSSSaltIsTheHashLength: RFC 7518 §3.5 fixes the PSS salt at the hash's length; a
// signature with any other salt is refused, though it verifies under RSASSA-PSS in general.
func TestVerifyPSSSaltIsTheHashLength(t *testing.T) {
	k := must(rsa.GenerateKey(rand.Reader, 2048))
	key := &jose.JSONWebKey{Key: &k.PublicKey}
	for _, c := range []struct {
		salt int
		ok   bool
	}{{rsa.PSSSaltLengthEqualsHash, true}, {rsa.PSSSaltLengthAuto, false}, {16, false}} {
		tok := compact(`{"alg":"PS256"}`, `{}`, func(in []byte) []byte {
			d := sha256.Sum256(in)
			return must(rsa.SignPSS(rand.Reader, k, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: c.salt}))
		})
		j, err := jws.Parse(tok)
		if err != nil {
			t.Fatal(err)
		}
		err = j.Verify(key)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, jws.ErrSignature)) {
			t.Errorf("salt %d: Verify = %v, want ok=%v", c.salt, err, c.ok)
		}
	}
}

// TestParseKeepsThePartsApart: the decoded parts share one allocation, but appending to one
// never changes another, and the signing input is the token's head as received.
func TestParseKeepsThePartsApart(t *testing.T) {
	tok := compact(`{"alg":"ES256","kid":"k","typ":"JWT"}`, `{"sub":"x"}`, func([]byte) []byte { return []byte("sig") })
	j, err := jws.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if j.Header != (jws.Header{Algorithm: "ES256", KeyID: "k", Type: "JWT"}) || string(j.Payload) != `{"sub":"x"}` || string(j.Signature) != "sig" {
		t.Fatalf("parsed %+v %q %q", j.Header, j.Payload, j.Signature)
	}
	if head := j.SigningInput(); len(head) >= len(tok) || tok[:len(head)+1] != head+"." {
		t.Fatalf("signing input %q is not the head of the token", head)
	}
	grown := append(j.Payload, "XX"...) //nolint:gocritic // appending to the payload is the point: it must not reach the signature
	if string(j.Signature) != "sig" || string(grown[:len(j.Payload)]) != `{"sub":"x"}` {
		t.Fatalf("appending to the payload changed the signature: %q", j.Signature)
	}
}

// TestParseRefusesUntrustedHeaders: each parameter that is never trusted is ErrHeader; a
// header that is not a JSON object, and JWE, are ErrMalformed.
func TestParseRefusesUntrustedHeaders(t *testing.T) {
	none := func([]byte) []byte { return nil }
	for _, p := range []string{"jwk", "jku", "x5u", "x5c", "crit", "b64", "enc", "zip"} {
		if _, err := jws.Parse(compact(`{"alg":"ES256","`+p+`":1}`, `{}`, none)); !errors.Is(err, jws.ErrHeader) {
			t.Errorf("%s: got %v, want ErrHeader", p, err)
		}
	}
	for name, tok := range map[string]string{
		"not an object": compact(`[]`, `{}`, none),
		"duplicate alg": compact(`{"alg":"ES256","alg":"none"}`, `{}`, none),
		"JWE":           "e30.e30.e30.e30.e30",
		"JSON":          `{"payload":"e30"}`,
	} {
		if _, err := jws.Parse(tok); !errors.Is(err, jws.ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// TestKeySetFetchesUnknownKidsOncePerCooldown: concurrent lookups of an unknown kid cost one
// fetch; within the cooldown another unknown kid fetches nothing; after it the new key is
// found, OnRemove hears of the key that left, and a failed fetch keeps the keys held.
func TestKeySetFetchesUnknownKidsOncePerCooldown(t *testing.T) {
	k1 := &jose.JSONWebKey{Key: ed25519.PublicKey(make([]byte, 32)), KeyID: "k1"}
	k2 := &jose.JSONWebKey{Key: ed25519.PublicKey(make([]byte, 32)), KeyID: "k2"}
	var (
		mu      sync.Mutex
		now     = time.Unix(1000, 0)
		serving = map[string]*jose.JSONWebKey{"k1": k1}
		fail    error
		fetches atomic.Int32
		removed []string
		release = make(chan struct{})
		started = make(chan struct{}, 1)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := jws.NewKeySet(func(context.Context) (map[string]*jose.JSONWebKey, error) {
		fetches.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			return nil, fail
		}
		out := map[string]*jose.JSONWebKey{}
		for kid, k := range serving {
			out[kid] = k
		}
		return out, nil
	}, jws.KeySetOptions{Cooldown: time.Minute, Now: clock, OnRemove: func(kids []string) { removed = append(removed, kids...) }})

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if k, err := set.Lookup(context.Background(), "k1"); k != k1 || err != nil {
				t.Errorf("Lookup(k1) = %v, %v", k, err)
			}
		}()
	}
	<-started // a lookup runs the fetch; the others join it or find its key
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for concurrent lookups, want 1", n)
	}

	mu.Lock()
	serving = map[string]*jose.JSONWebKey{"k2": k2}
	mu.Unlock()
	if k, err := set.Lookup(context.Background(), "k2"); k != nil || err != nil || fetches.Load() != 1 {
		t.Fatalf("within the cooldown: %v, %v, %d fetches", k, err, fetches.Load())
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if k, err := set.Lookup(context.Background(), "k2"); k != k2 || err != nil || fetches.Load() != 2 {
		t.Fatalf("after the cooldown: %v, %v, %d fetches", k, err, fetches.Load())
	}
	if len(removed) != 1 || removed[0] != "k1" {
		t.Fatalf("OnRemove heard %v, want [k1]", removed)
	}

	mu.Lock()
	fail, now = errors.New("boom"), now.Add(time.Minute)
	mu.Unlock()
	if k, err := set.Lookup(context.Background(), "k3"); k != nil || err == nil {
		t.Fatalf("a failed fetch: %v, %v", k, err)
	}
	if k, ok := set.Key("k2"); !ok || k != k2 || set.Len() != 1 {
		t.Fatal("a failed fetch dropped the keys held")
	}
}
