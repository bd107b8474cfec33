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

package v1alpha1_test

import (
	"strings"
	"testing"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

func TestIsReservedClaimFoldsCase(t *testing.T) {
	for _, name := range []string{
		"sub", "Sub", "SUB", "\u017fub", // ſ (long s) folds to s
		"client_id", "Client_Id", "CLIENT_ID",
		"namespace", "Namespace", "NAMESPACE",
		"scope", "\u017fcope",
		"act", "may_act", "acr", "amr", "auth_time", "roles", "Groups", "entitlements", "azp", "cnf",
	} {
		if !authv1alpha1.IsReservedClaim(name) {
			t.Errorf("IsReservedClaim(%q) = false, want true", name)
		}
	}
	for _, name := range []string{"team", "subject", "sub ", "client", "namespaces", "tier", ""} {
		if authv1alpha1.IsReservedClaim(name) {
			t.Errorf("IsReservedClaim(%q) = true, want false", name)
		}
	}
}

func TestFoldClaimNameMatchesEqualFold(t *testing.T) {
	names := []string{"team", "Team", "TEAM", "k", "K", "\u212a", "s", "S", "\u017f", "ß", "ẞ", "Σ", "σ", "ς", "é", "É"}
	for _, a := range names {
		for _, b := range names {
			if got, want := authv1alpha1.FoldClaimName(a) == authv1alpha1.FoldClaimName(b), strings.EqualFold(a, b); got != want {
				t.Errorf("FoldClaimName(%q) == FoldClaimName(%q) is %v; strings.EqualFold says %v", a, b, got, want)
			}
		}
	}
}
