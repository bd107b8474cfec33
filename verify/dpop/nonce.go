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

package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// nonceLen is the encoded length of a nonce: base64url of an 8-byte time step and a 16-byte MAC.
const nonceLen = 32

// Nonces issues and checks server nonces (RFC 9449 §8) without state: a nonce is the current
// time step and a MAC of it, so every replica holding the same keys accepts every other's
// nonces, and a nonce is accepted during its own step and the next one (one to two steps of
// life). Several keys let the key change without refusing the nonces already handed out: the
// first key issues, every key is accepted.
type Nonces struct {
	step time.Duration
	keys [][]byte
}

// NewNonces returns Nonces of the given step (at least one second) over keys (at least one,
// each at least 16 bytes of secret shared by the replicas).
func NewNonces(step time.Duration, keys ...[]byte) *Nonces {
	return &Nonces{step: max(step, time.Second), keys: keys}
}

// Issue returns the nonce of now's time step.
func (n *Nonces) Issue(now time.Time) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()/int64(n.step)))
	m := mac(n.keys[0], b[:8])
	copy(b[8:], m[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Valid reports whether nonce was issued, under any of the keys, in now's time step or the
// one before.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	var b [24]byte
	if len(nonce) != nonceLen {
		return false
	}
	if _, err := base64.RawURLEncoding.Decode(b[:], []byte(nonce)); err != nil {
		return false
	}
	step := int64(binary.BigEndian.Uint64(b[:8]))
	cur := now.UnixNano() / int64(n.step)
	if step != cur && step != cur-1 {
		return false
	}
	for _, k := range n.keys {
		if m := mac(k, b[:8]); hmac.Equal(m[:], b[8:]) {
			return true
		}
	}
	return false
}

// mac is the first 16 bytes of HMAC-SHA256(key, "dpop-nonce" || step).
func mac(key, step []byte) (m [16]byte) {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("dpop-nonce"))
	h.Write(step)
	copy(m[:], h.Sum(nil))
	return m
}
