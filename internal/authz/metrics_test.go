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

package authz_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

func scrape(t *testing.T, d *authz.Decider) string {
	t.Helper()
	w := httptest.NewRecorder()
	d.Metrics().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// Decisions are counted by audience and decision; an audience no policy holds is counted as
// _unknown, never under the caller's value; a removed audience leaves no series; past 1000
// audiences, the rest share _other.
func TestMetricsBoundedByAudience(t *testing.T) {
	d, iss := newDecider(t, policy("billing", time.Now(), "", billingRoutes...))
	tok := []string{"Bearer " + iss.Token(verifytest.Scope("invoices:read"))}
	d.Decide(context.Background(), &authz.Request{Method: "GET", URI: "/invoices", Host: "billing.billing", Authorization: tok})
	d.Decide(context.Background(), &authz.Request{Method: "POST", URI: "/invoices", Host: "billing.billing", Authorization: tok})
	d.Decide(context.Background(), &authz.Request{Method: "GET", URI: "/", Host: "attacker-chosen.example", Authorization: tok})
	m := scrape(t, d)
	for _, want := range []string{
		`m2m_authz_decisions_total{audience="billing.billing",decision="allow"} 1`,
		`m2m_authz_decisions_total{audience="billing.billing",decision="insufficient_scope"} 1`,
		`m2m_authz_decisions_total{audience="_unknown",decision="unknown_audience"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "attacker-chosen") {
		t.Error("a caller-chosen host became a label value")
	}

	var many []authv1alpha1.ScopePolicy
	for i := range 1005 {
		p := policy("billing", time.Now(), "")
		p.Name, p.Spec.Audience = fmt.Sprintf("api%04d", i), authv1alpha1.Audience(fmt.Sprintf("api%04d.billing", i))
		many = append(many, p)
	}
	d.SetTable(authz.Compile(many, nil))
	m = scrape(t, d)
	if strings.Contains(m, `audience="billing.billing"`) {
		t.Error("the series of a removed audience is still exported")
	}
	if got := strings.Count(m, `decision="allow"}`); got != 1000+2 { // 1000 named, _other, _unknown
		t.Errorf("%d allow series, want 1002 (1000 audiences, %s and %s)", got, "_other", "_unknown")
	}
	if !strings.Contains(m, `m2m_authz_decisions_total{audience="_other",decision="allow"} 0`) {
		t.Error("no _other series past 1000 audiences")
	}
}
