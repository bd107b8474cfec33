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

package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// Fits reports whether alg may verify with key (RFC 8725 §3.1): only its declared "alg" when
// the key has one, and only an algorithm of its type: ES256, ES384 and ES512 an ECDSA key on
// P-256, P-384 and P-521; RS256, RS384, RS512, PS256, PS384 and PS512 an RSA key of at least
// 2048 bits; EdDSA, or its fully-specified name Ed25519 (RFC 9864), an Ed25519 key. No other
// algorithm fits any key: "none" and the HMAC family are not implemented at all, so a public
// key can never act as an HMAC secret. A private key is judged by its public half.
func Fits(alg string, key *jose.JSONWebKey) bool {
	if key == nil || (key.Algorithm != "" && key.Algorithm != alg) {
		return false
	}
	switch pub := publicKey(key.Key).(type) {
	case *ecdsa.PublicKey:
		return ecCurve(alg) == pub.Curve
	case *rsa.PublicKey:
		return rsaHash(alg) != 0 && pub.N.BitLen() >= minRSABits
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA) || alg == "Ed25519"
	}
	return false
}

// Verify checks the signature with key under the header's algorithm, which must fit the key
// (Fits). The error matches ErrAlgorithm or ErrSignature.
func (j *JWS) Verify(key *jose.JSONWebKey) error {
	alg := j.Header.Algorithm
	if !Fits(alg, key) {
		return fail(ErrAlgorithm, "the algorithm does not fit the key")
	}
	if len(j.Signature) == 0 {
		return fail(ErrSignature, "missing signature")
	}
	if !verifySignature(alg, publicKey(key.Key), j.input, j.Signature) {
		return fail(ErrSignature, "the signature does not verify")
	}
	return nil
}

// verifySignature checks sig over input with a key that Fits alg.
func verifySignature(alg string, key crypto.PublicKey, input, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return verifyECDSA(alg, k, input, sig)
	case ed25519.PublicKey:
		return len(k) == ed25519.PublicKeySize && ed25519.Verify(k, input, sig)
	case *rsa.PublicKey:
		return verifyRSA(alg, k, input, sig)
	}
	return false
}

// ecCurve is the curve of an ECDSA algorithm, nil for any other algorithm.
func ecCurve(alg string) elliptic.Curve {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		return elliptic.P256()
	case jose.ES384:
		return elliptic.P384()
	case jose.ES512:
		return elliptic.P521()
	}
	return nil
}

// ecHash is the hash of an ECDSA algorithm, 0 for any other algorithm.
func ecHash(alg string) crypto.Hash {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		return crypto.SHA256
	case jose.ES384:
		return crypto.SHA384
	case jose.ES512:
		return crypto.SHA512
	}
	return 0
}

// rsaHash is the hash of an RSA algorithm, 0 for any other algorithm.
func rsaHash(alg string) crypto.Hash {
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.PS256:
		return crypto.SHA256
	case jose.RS384, jose.PS384:
		return crypto.SHA384
	case jose.RS512, jose.PS512:
		return crypto.SHA512
	}
	return 0
}

// digest hashes input with h, one of SHA-256, SHA-384 and SHA-512, into buf.
func digest(h crypto.Hash, input []byte, buf *[sha512.Size]byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		return buf[:copy(buf[:], d[:])]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		return buf[:copy(buf[:], d[:])]
	case crypto.SHA512:
		*buf = sha512.Sum512(input)
		return buf[:]
	}
	return nil
}

// verifyECDSA checks a JWS ECDSA signature: R || S, each the curve's size (RFC 7518 §3.4).
func verifyECDSA(alg string, k *ecdsa.PublicKey, input, sig []byte) bool {
	h := ecHash(alg)
	size := (k.Curve.Params().BitSize + 7) / 8
	if h == 0 || len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	var buf [sha512.Size]byte
	return ecdsa.Verify(k, digest(h, input, &buf), r, s)
}

// verifyRSA checks an RSASSA-PKCS1-v1_5 (RS*) or RSASSA-PSS (PS*) signature; PSS with a salt
// as long as the hash, as RFC 7518 §3.5 requires.
func verifyRSA(alg string, k *rsa.PublicKey, input, sig []byte) bool {
	h := rsaHash(alg)
	if h == 0 {
		return false
	}
	var buf [sha512.Size]byte
	d := digest(h, input, &buf)
	if alg[0] == 'P' {
		return rsa.VerifyPSS(k, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return rsa.VerifyPKCS1v15(k, h, d, sig) == nil
}

// publicKey returns the public half of k when a key source hands out private keys.
func publicKey(k any) crypto.PublicKey {
	if priv, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return priv.Public()
	}
	return k
}

// SameKey reports whether two JWKs hold the same public key and algorithm. Pointer equality is
// the fast path: a KeySet keeps a key's pointer across fetches while it is unchanged.
func SameKey(a, b *jose.JSONWebKey) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Algorithm != b.Algorithm {
		return false
	}
	pa, ok := publicKey(a.Key).(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(publicKey(b.Key))
}
