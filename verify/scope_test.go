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

package verify

import "testing"

func TestScopeMatches(t *testing.T) {
	cases := []struct {
		held, required string
		want           bool
	}{
		{"invoices:read", "invoices:read", true},
		{"invoices:read", "invoices:write", false},
		{"invoices:*", "invoices:read", true},
		{"invoices:*", "invoices:write", true},
		{"invoices:*", "invoices:*", true},
		{"invoices:*", "invoices:read:own", true},
		{"invoices:*", "invoices", false},
		{"invoices:*", "invoicesx:read", false},
		{"invoices:*", "payments:read", false},
		{"invoices:read", "invoices:*", false},
		{"*", "*", true},
		{"*", "invoices:read", false},
		{"invoices*", "invoices:read", false},
		{"invoices*", "invoicesread", false},
		{"billing:invoices:*", "billing:invoices:read", true},
		{"billing:invoices:*", "billing:payments:read", false},
		{"", "", true},
		{"", "invoices:read", false},
	}
	for _, c := range cases {
		if got := ScopeMatches(c.held, c.required); got != c.want {
			t.Errorf("ScopeMatches(%q, %q) = %v, want %v", c.held, c.required, got, c.want)
		}
	}
}

func TestHasScopes(t *testing.T) {
	c := &Claims{Scopes: []string{"invoices:*", "payments:read"}}
	if !c.HasScope("invoices:write") || !c.HasScope("payments:read") || c.HasScope("payments:write") {
		t.Fatal("HasScope")
	}
	if !c.HasAllScopes() || !c.HasAllScopes("invoices:read", "payments:read") || c.HasAllScopes("invoices:read", "payments:write") {
		t.Fatal("HasAllScopes")
	}
	var none *Claims
	if none.HasScope("x") || none.HasAllScopes("x") || !none.HasAllScopes() {
		t.Fatal("nil Claims")
	}
}
