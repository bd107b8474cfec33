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
