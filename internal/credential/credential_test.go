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

package credential

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

var scannerPattern = regexp.MustCompile(`^m2ms_[0-9A-Za-z]{49}$`)

func TestNewSecretFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !scannerPattern.MatchString(s) {
			t.Fatalf("secret %q does not match the documented scanner pattern", s)
		}
		if err := ValidateSecret(s); err != nil {
			t.Fatalf("fresh secret fails validation: %v", err)
		}
		if seen[s] {
			t.Fatal("duplicate secret")
		}
		seen[s] = true
	}
}

func TestValidateSecretRefusesTampering(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for name, bad := range map[string]string{
		"empty":            "",
		"wrong prefix":     "m2mx_" + s[5:],
		"random part edit": flip(10),
		"checksum edit":    flip(len(s) - 1),
		"too short":        s[:len(s)-1],
		"too long":         s + "0",
		"non-alphanumeric": s[:20] + "-" + s[21:],
	} {
		if ValidateSecret(bad) == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

func TestHashRoundTripAndCompare(t *testing.T) {
	h := HashSecret("m2ms_x")
	p, err := ParseHash(h.String())
	if err != nil || !p.Equal(h) {
		t.Fatalf("round trip: %v %v", p, err)
	}
	if HashSecret("m2ms_y").Equal(h) {
		t.Fatal("different secrets compare equal")
	}
	for _, bad := range []string{"", "zz", strings.Repeat("g", 64), strings.Repeat("a", 63)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestClientIDStableAndDistinct(t *testing.T) {
	a, b := ClientIDFor("uid-1"), ClientIDFor("uid-2")
	if a != ClientIDFor("uid-1") {
		t.Fatal("client id is not stable")
	}
	if a == b || !strings.HasPrefix(a, ClientIDPrefix) || len(a) != len(ClientIDPrefix)+24 {
		t.Fatalf("bad ids %q %q", a, b)
	}
}

func validRecord() *Record {
	na := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Record{
		ClientID: "m2mc_abc", Namespace: "ns", Name: "n", UID: "u", Method: "ClientSecret",
		Secrets: []SecretHash{{SHA256: HashSecret("a").String()}, {SHA256: HashSecret("b").String(), NotAfter: &na}},
		Grants:  []AudienceGrant{{Audience: "api", Scopes: []string{"x:read"}, MaxTokenTTLSeconds: 60}},
		Claims:  map[string]string{"team": "t"},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	data, err := validRecord().Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := validRecord().Encode()
	if string(data) != string(again) {
		t.Fatal("encoding is not deterministic")
	}
	rec, err := DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ClientID != "m2mc_abc" || len(rec.Secrets) != 2 || rec.Grants[0].Audience != "api" {
		t.Fatalf("decoded %+v", rec)
	}
}

func TestDecodeRecordRefusesBadDocuments(t *testing.T) {
	enc := func(mut func(*Record)) string {
		r := validRecord()
		mut(r)
		b, _ := r.Encode()
		return string(b)
	}
	for name, doc := range map[string]string{
		"empty":              "",
		"not json":           "{",
		"trailing data":      enc(func(*Record) {}) + "{}",
		"unknown field":      `{"version":1,"clientID":"m2mc_a","namespace":"n","name":"n","extra":1}`,
		"two versions ahead": `{"version":4,"clientID":"m2mc_a","namespace":"n","name":"n"}`,
		"v2 field in v1":     `{"version":1,"clientID":"m2mc_a","namespace":"n","name":"n","tokensNotBefore":5}`,
		"binding in v1":      `{"version":1,"clientID":"m2mc_a","namespace":"n","name":"n","tokenBinding":"DPoP"}`,
		"negative notBefore": enc(func(r *Record) { r.TokensNotBefore = -1 }),
		"audience twice": enc(func(r *Record) {
			r.AudienceNotBefore = []AudienceNotBefore{{Audience: "a", NotBefore: 1}, {Audience: "a", NotBefore: 2}}
		}),
		"audience without time": enc(func(r *Record) { r.AudienceNotBefore = []AudienceNotBefore{{Audience: "a"}} }),
		"too many audiences": enc(func(r *Record) {
			for i := range MaxRevokedAudiences + 1 {
				r.AudienceNotBefore = append(r.AudienceNotBefore, AudienceNotBefore{Audience: fmt.Sprint(i), NotBefore: 1})
			}
		}),
		"older version":     `{"version":0,"clientID":"m2mc_a","namespace":"n","name":"n"}`,
		"bad client id":     enc(func(r *Record) { r.ClientID = "nope" }),
		"no namespace":      enc(func(r *Record) { r.Namespace = "" }),
		"bad hash":          enc(func(r *Record) { r.Secrets[0].SHA256 = "xyz" }),
		"negative ttl":      enc(func(r *Record) { r.TokenTTLSeconds = -1 }),
		"empty audience":    enc(func(r *Record) { r.Grants[0].Audience = "" }),
		"repeated audience": enc(func(r *Record) { r.Grants = append(r.Grants, r.Grants[0]) }),
		"huge":              `{"version":1,"name":"` + strings.Repeat("a", maxRecordSize) + `"}`,
	} {
		if _, err := DecodeRecord([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDecodeRecordReadsTheNextVersion: a record of the next version (written by a newer
// controller during an upgrade, or left behind by a rollback) is used, its new fields ignored;
// one of this version with an unknown field is refused.
func TestDecodeRecordReadsTheNextVersion(t *testing.T) {
	next := `{"version":3,"clientID":"m2mc_a","namespace":"n","name":"w","grants":[{"audience":"a.n","scopes":["x:read"],"addedLater":true}],"addedLater":{"k":"v"}}`
	r, err := DecodeRecord([]byte(next))
	if err != nil {
		t.Fatalf("a version-3 record was refused: %v", err)
	}
	if r.ClientID != "m2mc_a" || len(r.Grants) != 1 || r.Grants[0].Scopes[0] != "x:read" {
		t.Fatalf("decoded %+v", r)
	}
	for _, v := range []string{"2", "1"} {
		if _, err := DecodeRecord([]byte(strings.Replace(next, `"version":3`, `"version":`+v, 1))); err == nil {
			t.Fatalf("a version-%s record with unknown fields was accepted", v)
		}
	}
}

// TestDecodeRecordReadsVersion1: a record of the previous version (written by the controller
// before it is upgraded; token servers are upgraded first) is read as one without binding
// requirements, and unknown token-binding values fail closed.
func TestDecodeRecordReadsVersion1(t *testing.T) {
	old := `{"version":1,"clientID":"m2mc_a","namespace":"n","name":"w","grants":[{"audience":"a.n","scopes":["x:read"]}]}`
	r, err := DecodeRecord([]byte(old))
	if err != nil || r.TokenBinding != "" || r.Grants[0].TokenBinding != "" {
		t.Fatalf("version 1: %+v, %v", r, err)
	}
	for _, bad := range []string{
		`{"version":2,"clientID":"m2mc_a","namespace":"n","name":"w","tokenBinding":"mTLS"}`,
		`{"version":2,"clientID":"m2mc_a","namespace":"n","name":"w","grants":[{"audience":"a.n","scopes":["x:read"],"tokenBinding":"Sometimes"}]}`,
	} {
		if _, err := DecodeRecord([]byte(bad)); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
	good := `{"version":2,"clientID":"m2mc_a","namespace":"n","name":"w","tokenBinding":"DPoP","grants":[{"audience":"a.n","scopes":["x:read"],"tokenBinding":"Required"}]}`
	if r, err := DecodeRecord([]byte(good)); err != nil || r.TokenBinding != TokenBindingDPoP || r.Grants[0].TokenBinding != TokenBindingRequired {
		t.Fatalf("version 2: %+v, %v", r, err)

	}
}

// TestDecodeRecordReadsThePreviousVersion: the previous release's controller writes version 1
// while the token servers are upgraded first; it is a version-2 record without revocation times.
func TestDecodeRecordReadsThePreviousVersion(t *testing.T) {
	r, err := DecodeRecord([]byte(`{"version":1,"clientID":"m2mc_a","namespace":"n","name":"w","disabled":true}`))
	if err != nil || !r.Disabled || r.TokensNotBefore != 0 {
		t.Fatalf("a version-1 record: %+v, %v", r, err)
	}
	r, err = DecodeRecord([]byte(`{"version":2,"clientID":"m2mc_a","namespace":"n","name":"w","tokensNotBefore":7,"audienceNotBefore":[{"audience":"a.n","notBefore":9}]}`))
	if err != nil || r.TokensNotBefore != 7 || len(r.AudienceNotBefore) != 1 || r.AudienceNotBefore[0].NotBefore != 9 {
		t.Fatalf("a version-2 record: %+v, %v", r, err)
	}
}

// FuzzDecodeRecord: decoding never panics, and whatever it accepts re-encodes to a document
// that decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	good, _ := validRecord().Encode()
	f.Add(good)
	f.Add([]byte(`{"version":1,"clientID":"m2mc_a","namespace":"n","name":"n"}`))
	f.Add([]byte(`{"version":1,"clientID":"m2mc_a","namespace":"n","name":"n","secrets":[{"sha256":"00"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := DecodeRecord(data)
		if err != nil {
			return
		}
		again, err := rec.Encode()
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		if _, err := DecodeRecord(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

// TestEncodeWritesTheLowestVersionThatHoldsTheRecord: without revocation times a record is the
// previous release's version 1 (which it reads strictly); with them, version 2.
func TestEncodeWritesTheLowestVersionThatHoldsTheRecord(t *testing.T) {
	for _, tt := range []struct {
		mut  func(*Record)
		want int
	}{
		{func(*Record) {}, 1},
		{func(r *Record) { r.AudienceNotBefore = []AudienceNotBefore{} }, 1},
		{func(r *Record) { r.TokensNotBefore = 5 }, 2},
		{func(r *Record) { r.AudienceNotBefore = []AudienceNotBefore{{Audience: "a.n", NotBefore: 5}} }, 2},
	} {
		r := validRecord()
		tt.mut(r)
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil || got.Version != tt.want {
			t.Errorf("%s: version %v, %v; want %d", b, got, err, tt.want)
		}
	}
}
