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

package config_test

import (
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// argoHealth runs config/gitops/argocd-health.lua as Argo CD does: the object as global obj,
// the returned table's status and message.
func argoHealth(t *testing.T, obj map[string]any) (string, string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "gitops", "argocd-health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("running the health script: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health script returned %s, not a table", L.Get(-1).Type())
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

// toLua converts decoded JSON into Lua values, as Argo CD's Lua VM does.
func toLua(L *lua.LState, v any) lua.LValue { //nolint:gocritic // captLocal: gopher-lua names its state L
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// TestHealthChecksAgree: Argo CD's verdict (the shipped Lua) and Flux's (kstatus) on every state
// an M2MClient or ScopePolicy can be in.
func TestHealthChecksAgree(t *testing.T) {
	cond := func(typ, st, reason string) string {
		return "{type: " + typ + ", status: '" + st + "', reason: " + reason + ", message: m, lastTransitionTime: '2026-01-01T00:00:00Z'}"
	}
	tests := []struct {
		name, status string
		argo         string
		kstatus      status.Status
	}{
		// kstatus cannot tell an object the controller has not seen yet from one whose kind has
		// no status: it says Current until the first status is written (milliseconds).
		{"not reconciled yet", "", "Progressing", status.CurrentStatus},
		{"ready", "{observedGeneration: 2, conditions: [" + cond("Ready", "True", "Ready") + "]}", "Healthy", status.CurrentStatus},
		{"disabled, as Git declares", "{observedGeneration: 2, conditions: [" + cond("Ready", "True", "Disabled") + "]}", "Healthy", status.CurrentStatus},
		{"waiting for the CA", "{observedGeneration: 2, conditions: [" + cond("Ready", "False", "WaitingForCA") + ", " + cond("Reconciling", "True", "WaitingForCA") + "]}", "Progressing", status.InProgressStatus},
		{"a Secret name conflict", "{observedGeneration: 2, conditions: [" + cond("Ready", "False", "SecretNameConflict") + ", " + cond("Stalled", "True", "SecretNameConflict") + "]}", "Degraded", status.FailedStatus},
		{"an audience not bound", "{observedGeneration: 2, conditions: [" + cond("Ready", "False", "AudienceNotBound") + ", " + cond("Stalled", "True", "AudienceNotBound") + "]}", "Degraded", status.FailedStatus},
		{"an older generation observed", "{observedGeneration: 1, conditions: [" + cond("Ready", "True", "Ready") + "]}", "Progressing", status.InProgressStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "apiVersion: auth.m2m.dev/v1alpha1\nkind: M2MClient\nmetadata: {name: c, namespace: n, generation: 2}\nspec: {}\n"
			if tt.status != "" {
				doc += "status: " + tt.status + "\n"
			}
			j, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(j); err != nil {
				t.Fatal(err)
			}
			got, msg := argoHealth(t, u.Object)
			if got != tt.argo {
				t.Errorf("Argo CD health %s (%s), want %s", got, msg, tt.argo)
			}
			res, err := status.Compute(u)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.kstatus {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tt.kstatus)
			}
		})
	}
}
