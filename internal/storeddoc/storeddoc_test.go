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

package storeddoc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type doc struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
}

func TestDecodeAcceptsThisVersionStrictlyAndTheNextLeniently(t *testing.T) {
	tests := []struct {
		in, err string
		want    string
	}{
		{`{"version":3,"name":"a"}`, "", "a"},
		{`{"version":3,"name":"a","added":1}`, "unknown field", ""},     // our own version: strict
		{`{"version":4,"name":"b","added":{"x":1}}`, "", "b"},           // the next: what we know, the rest ignored
		{`{"version":5,"name":"c"}`, "version 5 is not supported", ""},  // two ahead: refused
		{`{"version":2,"name":"c"}`, "version 2 is not supported", ""},  // older than this reader's writer
		{`{"name":"c"}`, "version 0 is not supported", ""},              // no version
		{`{"version":3,"name":"a"} {"version":3}`, "trailing data", ""}, // one document only
		{``, "empty", ""},
		{`{"version":3,"name":"` + strings.Repeat("x", 100) + `"}`, "more than", ""},
		{`[1]`, "decoding", ""},
	}
	for _, tt := range tests {
		var d doc
		err := Decode("test document", []byte(tt.in), 64, 3, &d)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one containing %q", tt.in, err, tt.err)
		case tt.err == "" && d.Name != tt.want:
			t.Errorf("%s: name %q, want %q", tt.in, d.Name, tt.want)
		}
	}
}

// Validate makes doc a Document: a name is required.
func (d *doc) Validate() error {
	if d.Name == "" {
		return errors.New("test document has no name")
	}
	return nil
}

func TestDecodeValidDecodesThenValidates(t *testing.T) {
	tests := []struct {
		in, err string
	}{
		{`{"version":3,"name":"a"}`, ""},
		{`{"version":4,"name":"a","added":1}`, ""},
		{`{"version":3}`, "has no name"},                 // decoded, then refused by Validate
		{`{"version":3,"added":1}`, "unknown field"},     // Decode's rule comes first
		{`{"version":5,"name":"a"}`, "is not supported"}, // so does the version rule
	}
	for _, tt := range tests {
		d, err := DecodeValid[doc]("test document", []byte(tt.in), 64, 3)
		switch {
		case tt.err == "" && (err != nil || d == nil || d.Name != "a"):
			t.Errorf("%s: %+v, %v; want name a", tt.in, d, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || d != nil):
			t.Errorf("%s: %+v, %v; want no document and an error containing %q", tt.in, d, err, tt.err)
		}
	}
}

func TestCheckVersionAcceptsThisVersionAndTheNext(t *testing.T) {
	for version, ok := range map[int]bool{2: false, 3: true, 4: true, 5: false} {
		err := CheckVersion("test document", version, 3)
		if ok != (err == nil) {
			t.Errorf("version %d: %v, want accepted %v", version, err, ok)
		}
		if err != nil && err.Error() != fmt.Sprintf("test document version %d is not supported (this release reads 3 and 4)", version) {
			t.Errorf("version %d: message %q", version, err)
		}
	}
}
