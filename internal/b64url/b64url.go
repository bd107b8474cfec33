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

// Package b64url checks the one canonical spelling of unpadded base64url (RFC 7515 §2), shared
// by every JWS parser in the module (verify, and the token server's client assertions).
package b64url

// Canonical reports whether b uses only the unpadded base64url alphabet and has no stray bits
// in its last character. Go's decoder would otherwise skip newlines and ignore trailing bits,
// letting one token be spelled many ways (which defeats caches and replay checks keyed by the
// token's bytes).
func Canonical[T ~string | ~[]byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if value[b[i]] < 0 {
			return false
		}
	}
	if len(b) == 0 {
		return true
	}
	last := value[b[len(b)-1]]
	switch len(b) % 4 {
	case 1:
		return false
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

// value maps a byte to its base64url value, or -1.
var value = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()
