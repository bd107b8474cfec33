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

// Package credential defines the formats the controller writes and the token server reads:
// client secrets (generation, checksum, hashing), client ids, and the credential record.
//
// A client secret looks like
//
//	m2ms_<43 base62 characters: 256 random bits><6 base62 characters: checksum>
//
// The checksum is the CRC-32 (IEEE) of everything before it ("m2ms_" and the random part),
// written in base62 and left-padded with '0' to 6 characters. A scanner recognises a leaked
// secret by the regular expression `m2ms_[0-9A-Za-z]{49}` and confirms it with the checksum, with
// no false positives from random strings that merely look alike.
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

const (
	// SecretPrefix starts every client secret.
	SecretPrefix = "m2ms_"
	// ClientIDPrefix starts every client id.
	ClientIDPrefix = "m2mc_"

	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// secretRandomLen base62 characters carry 43·log2(62) ≈ 256.03 bits.
	secretRandomLen = 43
	checksumLen     = 6
	// SecretLen is the length of a client secret.
	SecretLen = len(SecretPrefix) + secretRandomLen + checksumLen
)

// ErrMalformedSecret means a string is not a well-formed client secret (wrong prefix, length,
// alphabet or checksum).
var ErrMalformedSecret = errors.New("malformed client secret")

// NewSecret returns a fresh client secret with 256 bits from crypto/rand.
func NewSecret() (string, error) {
	var b strings.Builder
	b.Grow(SecretLen)
	b.WriteString(SecretPrefix)
	// Rejection sampling keeps every character uniform: bytes ≥ 248 (= 4·62) are discarded.
	buf := make([]byte, 64)
	for n := 0; n < secretRandomLen; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("reading random bytes: %w", err)
		}
		for _, c := range buf {
			if c >= 248 || n == secretRandomLen {
				continue
			}
			b.WriteByte(base62Alphabet[c%62])
			n++
		}
	}
	body := b.String()
	return body + checksum(body), nil
}

// checksum is the base62 CRC-32 of s, left-padded to checksumLen.
func checksum(s string) string {
	v := crc32.ChecksumIEEE([]byte(s))
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62Alphabet[v%62]
		v /= 62
	}
	return string(out[:])
}

// ValidateSecret reports whether s is a well-formed client secret with a correct checksum.
func ValidateSecret(s string) error {
	if len(s) != SecretLen || !strings.HasPrefix(s, SecretPrefix) {
		return ErrMalformedSecret
	}
	for i := len(SecretPrefix); i < len(s); i++ {
		if strings.IndexByte(base62Alphabet, s[i]) < 0 {
			return ErrMalformedSecret
		}
	}
	body := s[:len(s)-checksumLen]
	if subtle.ConstantTimeCompare([]byte(checksum(body)), []byte(s[len(body):])) != 1 {
		return ErrMalformedSecret
	}
	return nil
}

// Hash is the SHA-256 of a secret, as stored in credential records.
type Hash [sha256.Size]byte

// HashSecret returns the SHA-256 of a secret. A fast hash is right here: the secret carries 256
// random bits, so no dictionary attack applies and a slow KDF would only slow the token endpoint.
func HashSecret(secret string) Hash {
	return sha256.Sum256([]byte(secret))
}

// String returns the lowercase hex encoding.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Equal compares two hashes in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// ParseHash decodes a lowercase hex SHA-256.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != hex.EncodedLen(len(h)) {
		return h, fmt.Errorf("hash must be %d hex characters, got %d", hex.EncodedLen(len(h)), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("decoding hash: %w", err)
	}
	return h, nil
}

var clientIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ClientIDFor derives the client id of the M2MClient with the given UID: the id clients created
// before ids were derived from names keep (see ClientIDForName).
func ClientIDFor(uid string) string {
	sum := sha256.Sum256([]byte("auth.m2m.dev/client-id\x00" + uid))
	return ClientIDPrefix + clientIDEncoding.EncodeToString(sum[:15])
}

// ClientIDForName derives the client id of the M2MClient namespace/name. Deriving it from the
// name rather than the UID keeps it across `kubectl replace --force`, a cluster rebuilt from Git
// and a backup restore, so that APIs authorising by client id and PrivateKeyJWT clients
// configured with it keep working. Only the namespace's own team can create that name in that
// namespace, so no team can claim another's id; ids do not collide ("/" never occurs in a name).
func ClientIDForName(namespace, name string) string {
	sum := sha256.Sum256([]byte("auth.m2m.dev/client-id-by-name\x00" + namespace + "/" + name))
	return ClientIDPrefix + clientIDEncoding.EncodeToString(sum[:15])
}
