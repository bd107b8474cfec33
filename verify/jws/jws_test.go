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
	"encoding/base64"
	"testing"
)

func TestSplitCompactCanonical(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	cases := map[string]bool{
		enc([]byte("a")) + "." + enc([]byte("bc")) + "." + enc([]byte("def")): true,
		"QQ.QQ.QQ": true,  // "A" canonical
		"QR.QQ.QQ": false, // same byte, stray bits
		"Q.QQ.QQ":  false, // impossible length
		"QQ.Q=.QQ": false, // padding
		"QQ.Q+.QQ": false, // std alphabet
		"a.b.c.d":  false,
		"a.b":      false,
	}
	for tok, want := range cases {
		_, _, _, err := split(tok)
		if got := err == nil; got != want {
			t.Errorf("split(%q) ok=%v, want %v (%v)", tok, got, want, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{base64.RawURLEncoding.EncodeToString([]byte("a")), true},   // "YQ"
		{base64.RawURLEncoding.EncodeToString([]byte("ab")), true},  // "YWI"
		{base64.RawURLEncoding.EncodeToString([]byte("abc")), true}, // "YWJj"
		{"YR", false},   // stray bits in the last of 2 characters
		{"YWJ", false},  // stray bits in the last of 3 characters
		{"Y", false},    // a length no encoding produces
		{"YQ==", false}, // padding
		{"Y\nQ", false}, // the decoder would skip the newline
		{"YQ+/", false}, // standard, not URL, alphabet
	} {
		if got := canonical(tc.in); got != tc.want {
			t.Errorf("canonical(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
