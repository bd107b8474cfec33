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

package tokenserver

import (
	"fmt"
	"strings"
	"testing"
)

// TestGrantParamsAreKeptForGrants: a parameter no endpoint maps is kept for a grant that
// reads it (its first value; a repeated one is invalid_request when read, ignored otherwise),
// the mapped ones never land there, and past maxExtraParams names the rest are ignored.
func TestGrantParamsAreKeptForGrants(t *testing.T) {
	var extra []string
	for i := range maxExtraParams + 2 {
		extra = append(extra, fmt.Sprintf("x%d=%d", i, i))
	}
	body := "grant_type=urn%3Aexample&subject_token=a%2Bb&scope=s&dup=1&dup=2&" + strings.Join(extra, "&")
	var req tokenRequest
	if err := parseForm([]byte(body), &req); err != nil {
		t.Fatalf("parseForm: %v", err)
	}
	if v, err := req.param("subject_token"); err != nil || string(v) != "a+b" {
		t.Errorf("subject_token = %q, %v", v, err)
	}
	if _, err := req.param("dup"); err != errDuplicateParam {
		t.Errorf("a repeated grant parameter: %v, want errDuplicateParam", err)
	}
	if v, err := req.param("scope"); v != nil || err != nil || string(req.scope) != "s" {
		t.Errorf("scope kept as a grant parameter: %q, %v (scope %q)", v, err, req.scope)
	}
	if v, err := req.param("absent"); v != nil || err != nil {
		t.Errorf("absent = %q, %v", v, err)
	}
	kept := maxExtraParams - 2 // subject_token and dup come first
	if v, _ := req.param(fmt.Sprintf("x%d", kept-1)); string(v) != fmt.Sprint(kept-1) {
		t.Errorf("the last parameter within the bound was not kept: %q", v)
	}
	if v, _ := req.param(fmt.Sprintf("x%d", kept)); v != nil {
		t.Errorf("a parameter past the bound was kept: %q", v)
	}
}
