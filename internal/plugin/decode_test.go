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

package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestExpiryWords(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range []struct {
		claims map[string]any
		want   string
	}{
		{map[string]any{"exp": json.Number("1800000900")}, "expires in 15m0s (at 2027-01-15T08:15:00Z)"},
		{map[string]any{"exp": json.Number("1799999820")}, "expired 3m0s ago (at 2027-01-15T07:57:00Z)"},
		{map[string]any{}, "no exp claim"},
		{map[string]any{"exp": "soon"}, "no exp claim"},
	} {
		if got := expiryWords(tt.claims, now); got != tt.want {
			t.Errorf("expiryWords(%v) = %q, want %q", tt.claims, got, tt.want)
		}
	}
}

func TestParseCompactRefuses(t *testing.T) {
	for tok, want := range map[string]string{
		"a.b":            "3",
		"!!.e30.x":       "decoding the header",
		"e30.WzFd.x":     "decoding the claims: not a JSON object",
		"e30.e30.x.y.z":  "5 dot-separated parts",
		"bnVsbA.e30.sig": "decoding the header: not a JSON object",
	} {
		if _, _, err := parseCompact(tok); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseCompact(%q) = %v, want an error with %q", tok, err, want)
		}
	}
	h, c, err := parseCompact("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.x")
	if err != nil || h["alg"] != "ES256" || c["exp"] != json.Number("1") {
		t.Fatalf("parseCompact = %v, %v, %v", h, c, err)
	}
}

func TestReadTokenArg(t *testing.T) {
	if got, _ := readTokenArg(" a.b.c \n", nil); got != "a.b.c" {
		t.Errorf("argument: %q", got)
	}
	if got, _ := readTokenArg("-", strings.NewReader("a.b.c\nrest")); got != "a.b.c" {
		t.Errorf("stdin: %q", got)
	}
	if _, err := readTokenArg("-", strings.NewReader("\n")); err == nil {
		t.Error("empty stdin accepted")
	}
}
