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

// Package baseline is the reference point of the token server's benchmarks: the least a
// client-credentials token endpoint can do. It parses the form, compares one SHA-256 and signs
// one ES256 JWT — nothing else (no index, no limits, no metrics, no logs).
package baseline

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"time"
)

// Handler is the baseline token endpoint for one client.
type Handler struct {
	clientID string
	hash     [sha256.Size]byte
	key      *ecdsa.PrivateKey
	header   string
}

// New returns the baseline handler for one client id and secret, signing with key.
func New(clientID, secret string, key *ecdsa.PrivateKey, kid string) *Handler {
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": kid})
	return &Handler{clientID: clientID, hash: sha256.Sum256([]byte(secret)), key: key, header: base64.RawURLEncoding.EncodeToString(hdr)}
}

// ServeHTTP parses the form, checks the Basic credentials and signs a token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	sum := sha256.Sum256([]byte(secret))
	if !ok || id != h.clientID || subtle.ConstantTimeCompare(sum[:], h.hash[:]) != 1 {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	now := time.Now().Unix()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	// The claims are appended by hand, as a lean server would: no reflection.
	claims := make([]byte, 0, 256)
	claims = append(claims, `{"iss":"http://baseline","sub":"`...)
	claims = append(claims, id...)
	claims = append(claims, `","aud":"bench","client_id":"`...)
	claims = append(claims, id...)
	claims = append(claims, `","scope":"bench:read","iat":`...)
	claims = strconv.AppendInt(claims, now, 10)
	claims = append(claims, `,"nbf":`...)
	claims = strconv.AppendInt(claims, now, 10)
	claims = append(claims, `,"exp":`...)
	claims = strconv.AppendInt(claims, now+900, 10)
	claims = append(claims, `,"jti":"`...)
	claims = base64.RawURLEncoding.AppendEncode(claims, jti[:])
	claims = append(claims, `"}`...)
	input := h.header + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	rr, ss, err := ecdsa.Sign(rand.Reader, h.key, digest[:])
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	sig := make([]byte, 64)
	fill(sig[:32], rr)
	fill(sig[32:], ss)
	token := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"access_token":"` + token + `","token_type":"Bearer","expires_in":` + strconv.Itoa(900) + `}`))
}

func fill(dst []byte, v *big.Int) { v.FillBytes(dst) }
