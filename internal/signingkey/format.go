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

// Package signingkey defines the signing-key Secret that the controller manages and the token
// server reads, and the pure state machine that rotates its keys.
//
// The Secret (type auth.m2m.dev/signing-keys, one per installation, in the credentials namespace)
// holds one JSON document under the data key "keys.json":
//
//	{"version":1,"keys":[{"kid":"…","alg":"ES256","state":"active","createdAt":"…",
//	  "activateAt":"…","privateKey":"-----BEGIN PRIVATE KEY-----…"}, …]}
//
// Each key moves next → active → retired → gone. A next key is published in the JWKS for the
// publish-ahead period before it signs; the previous active key is then retired and stays
// published until every token it signed has expired (the maximum token TTL plus a leeway).
package signingkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/storeddoc"
)

const (
	// FormatVersion is the version of the document this package writes and reads.
	FormatVersion = 1
	// DataKey is the data key of the document in the Secret.
	DataKey = "keys.json"
	// SecretType is the type of the signing-key Secret.
	SecretType = "auth.m2m.dev/signing-keys"
	// DefaultSecretName is the default name of the signing-key Secret.
	DefaultSecretName = "m2m-signing-keys"
	// maxDocumentSize bounds what a reader will decode.
	maxDocumentSize = 512 << 10
	// documentKind names the document in messages.
	documentKind = "signing-key document"
	// maxKeys bounds the number of keys in one document.
	maxKeys = 64
)

// State is where a key is in its life.
type State string

const (
	// StateNext is a published key that does not sign yet.
	StateNext State = "next"
	// StateActive is the one key that signs.
	StateActive State = "active"
	// StateRetired is a published key that no longer signs.
	StateRetired State = "retired"
)

// Set is the signing-key document.
type Set struct {
	Version int   `json:"version"`
	Keys    []Key `json:"keys"`
}

// Key is one signing key with its schedule.
type Key struct {
	// KID is the key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
	KID string `json:"kid"`
	// Algorithm is the JWS algorithm: ES256, RS256 or EdDSA.
	Algorithm string `json:"alg"`
	// State is next, active or retired.
	State State `json:"state"`
	// CreatedAt is when the key was generated (and first published).
	CreatedAt time.Time `json:"createdAt"`
	// ActivateAt is when the key starts (or started) signing.
	ActivateAt time.Time `json:"activateAt"`
	// RetireAt is when the key stopped signing (set when it is retired).
	RetireAt *time.Time `json:"retireAt,omitempty"`
	// RemoveAt is when the retired key leaves the JWKS and the Secret.
	RemoveAt *time.Time `json:"removeAt,omitempty"`
	// PrivateKeyPEM is the private key, PKCS#8 in a PEM "PRIVATE KEY" block.
	PrivateKeyPEM string `json:"privateKey"`
}

// Encode serialises the set deterministically.
func (s *Set) Encode() ([]byte, error) {
	s.Version = FormatVersion
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding signing keys: %w", err)
	}
	return b, nil
}

// Decode parses and validates a signing-key document of this release's version or the next
// (storeddoc: version skew during an upgrade or a rollback).
func Decode(data []byte) (*Set, error) {
	return storeddoc.DecodeValid[Set](documentKind, data, maxDocumentSize, FormatVersion)
}

// Validate checks the invariants: a known version, at most one active and one next key, unique
// key ids, known algorithms and states, and times that fit the state.
func (s *Set) Validate() error {
	if err := storeddoc.CheckVersion(documentKind, s.Version, FormatVersion); err != nil {
		return err
	}
	if len(s.Keys) > maxKeys {
		return fmt.Errorf("signing-key document has %d keys, more than %d", len(s.Keys), maxKeys)
	}
	seen := make(map[string]bool, len(s.Keys))
	count := map[State]int{}
	for i := range s.Keys {
		k := &s.Keys[i]
		if err := k.validate(); err != nil {
			return fmt.Errorf("signing key %d: %w", i, err)
		}
		if seen[k.KID] {
			return fmt.Errorf("signing key %d repeats kid %q", i, k.KID)
		}
		seen[k.KID] = true
		count[k.State]++
	}
	if count[StateActive] > 1 || count[StateNext] > 1 {
		return fmt.Errorf("signing-key document has %d active and %d next keys (at most one each)", count[StateActive], count[StateNext])
	}
	return nil
}

func (k *Key) validate() error {
	if k.KID == "" || len(k.KID) > 128 {
		return errors.New("kid is empty or too long")
	}
	if !SupportedAlgorithm(k.Algorithm) {
		return fmt.Errorf("algorithm %q is not supported", k.Algorithm)
	}
	switch k.State {
	case StateNext, StateActive:
	case StateRetired:
		if k.RetireAt == nil || k.RemoveAt == nil {
			return errors.New("retired key lacks retireAt or removeAt")
		}
	default:
		return fmt.Errorf("state %q is not next, active or retired", k.State)
	}
	if k.CreatedAt.IsZero() || k.ActivateAt.IsZero() {
		return errors.New("createdAt or activateAt is missing")
	}
	if k.PrivateKeyPEM == "" {
		return errors.New("private key is missing")
	}
	return nil
}

// Find returns the key in the given state (the first one), or nil.
func (s *Set) Find(state State) *Key {
	for i := range s.Keys {
		if s.Keys[i].State == state {
			return &s.Keys[i]
		}
	}
	return nil
}

// Clone returns a deep copy.
func (s *Set) Clone() *Set {
	if s == nil {
		return nil
	}
	out := &Set{Version: s.Version, Keys: make([]Key, len(s.Keys))}
	for i, k := range s.Keys {
		out.Keys[i] = k
		out.Keys[i].RetireAt = cloneTime(k.RetireAt)
		out.Keys[i].RemoveAt = cloneTime(k.RemoveAt)
	}
	return out
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
