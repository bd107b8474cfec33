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

package resolve

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

func TestExplainReasons(t *testing.T) {
	worker := func(mut ...func(*authv1alpha1.M2MClient)) *authv1alpha1.M2MClient {
		c := &authv1alpha1.M2MClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker", Labels: map[string]string{"app": "worker"}},
			Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:write")},
		}
		for _, m := range mut {
			m(c)
		}
		return c
	}
	nsLabels := labels.Set{"team": "payments"}
	squat := func() authv1alpha1.ScopePolicy {
		p := billingPolicy(grant(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{}}, "invoices:*"))
		p.Namespace, p.Name = "mallory", "billing"
		return p
	}
	deleting := func(p authv1alpha1.ScopePolicy) authv1alpha1.ScopePolicy {
		now := metav1.NewTime(time.Unix(200, 0))
		p.DeletionTimestamp = &now
		return p
	}
	uriPolicy := func() authv1alpha1.ScopePolicy {
		p := billingPolicy(grant(inPayments(), "invoices:write"))
		p.Spec.Audience = "https://billing.example.com"
		return p
	}
	tests := []struct {
		name     string
		client   *authv1alpha1.M2MClient
		policies []authv1alpha1.ScopePolicy
		bindings Bindings
		// reason of the first verdict of the client's only scope, its audience and grants
		reason   Reason
		audience string
		grants   []GrantCheck
		// words the message or fix must hold
		words []string
	}{
		{name: "granted names the policy and grant", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments("admin"), "invoices:write"), grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "payments")}, "invoices:*"))},
			reason:   ReasonGranted, audience: "billing.billing",
			grants: []GrantCheck{{0, ReasonClientNameNotListed}, {1, ReasonGranted}}, words: []string{"billing/billing", "grants[1]"}},
		{name: "undeclared scope in the audience's policy", client: worker(func(c *authv1alpha1.M2MClient) {
			c.Spec.Scopes = scopes("invoices:delete")
			c.Spec.Audiences = []authv1alpha1.Audience{"billing.billing"}
		}), policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:*"))},
			reason: ReasonScopeNotDeclared, audience: "billing.billing", words: []string{"does not declare scope invoices:delete", "spec.scopes"}},
		{name: "undeclared scope named by a grant", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Scopes = scopes("admin:all") }),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "admin:all"))},
			reason:   ReasonScopeNotDeclared, audience: "billing.billing"},
		{name: "scope no policy declares", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Scopes = scopes("nothing:here") }),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:*"))},
			reason:   ReasonScopeNotDeclared, words: []string{"no ScopePolicy declares scope nothing:here"}},
		{name: "declared, granted to nobody", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:read"))},
			reason:   ReasonNoGrantForScope, audience: "billing.billing"},
		{name: "namespace labels don't match", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "billing")}, "invoices:write"))},
			reason:   ReasonNamespaceLabelsMismatch, audience: "billing.billing", grants: []GrantCheck{{0, ReasonNamespaceLabelsMismatch}},
			words: []string{"team=billing", "team=payments", "label"}},
		{name: "client selector doesn't match", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "payments"), Selector: sel("app", "billing-worker")}, "invoices:*"))},
			reason:   ReasonSelectorMismatch, audience: "billing.billing", grants: []GrantCheck{{0, ReasonSelectorMismatch}},
			words: []string{"app=billing-worker", "app=worker"}},
		{name: "namespace not listed", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(authv1alpha1.ClientMatcher{Namespaces: []string{"ops"}}, "invoices:write"))},
			reason:   ReasonNamespaceNotListed, audience: "billing.billing"},
		{name: "invalid selector", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Bogus"}}}}, "invoices:write"))},
			reason:   ReasonInvalidSelector, audience: "billing.billing"},
		{name: "grant without namespace boundary", client: worker(),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(authv1alpha1.ClientMatcher{Names: []string{"worker"}}, "invoices:write"))},
			reason:   ReasonGrantWithoutNamespace, audience: "billing.billing"},
		{name: "audience not bound to the policy's namespace (squatter)", client: worker(),
			policies: []authv1alpha1.ScopePolicy{squat()},
			reason:   ReasonAudienceNotBound, audience: "billing.billing", words: []string{"mallory/billing", "not bound to namespace mallory", "AudienceBinding"}},
		{name: "URI audience without a binding", client: worker(),
			policies: []authv1alpha1.ScopePolicy{uriPolicy()},
			reason:   ReasonAudienceNotBound, audience: "https://billing.example.com"},
		{name: "URI audience bound by an AudienceBinding", client: worker(),
			policies: []authv1alpha1.ScopePolicy{uriPolicy()}, bindings: Bindings{"https://billing.example.com": "billing"},
			reason: ReasonGranted, audience: "https://billing.example.com"},
		{name: "contested binding", client: worker(),
			policies: []authv1alpha1.ScopePolicy{uriPolicy()}, bindings: Bindings{"https://billing.example.com": ""},
			reason: ReasonAudienceContested, audience: "https://billing.example.com"},
		{name: "the squatter does not hide the holder", client: worker(),
			policies: []authv1alpha1.ScopePolicy{squat(), billingPolicy(grant(inPayments(), "invoices:write"))},
			reason:   ReasonGranted, audience: "billing.billing"},
		{name: "audience with no policy", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Audiences = []authv1alpha1.Audience{"billing.bilin"} }),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:read"))},
			reason:   ReasonNoPolicy, audience: "billing.bilin"},
		{name: "policy being deleted", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Audiences = []authv1alpha1.Audience{"billing.billing"} }),
			policies: []authv1alpha1.ScopePolicy{deleting(billingPolicy(grant(inPayments(), "invoices:write")))},
			reason:   ReasonPolicyDeleting, audience: "billing.billing"},
		{name: "audience left out of spec.audiences", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Audiences = []authv1alpha1.Audience{"other.other"} }),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:write"))},
			reason:   ReasonAudienceNotRequested, audience: "billing.billing", words: []string{"add billing.billing to spec.audiences"}},
		{name: "disabled client", client: worker(func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true }),
			policies: []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:write"))},
			reason:   ReasonClientDisabled, audience: "billing.billing", grants: []GrantCheck{{0, ReasonGranted}}, words: []string{"spec.disabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Explain(tt.client, nsLabels, tt.policies, tt.bindings)
			if len(e.Scopes) != 1 {
				t.Fatalf("scopes = %+v, want one", e.Scopes)
			}
			v := e.Scopes[0].Verdicts[0]
			if v.Reason != tt.reason || v.Audience != tt.audience {
				t.Fatalf("verdict = %+v, want reason %s audience %q", v, tt.reason, tt.audience)
			}
			if tt.grants != nil && !reflect.DeepEqual(v.Grants, tt.grants) {
				t.Fatalf("grants = %+v, want %+v", v.Grants, tt.grants)
			}
			if v.Reason != ReasonGranted && v.Fix == "" {
				t.Fatalf("a denial without a fix: %+v", v)
			}
			for _, w := range tt.words {
				if !strings.Contains(v.Message+" "+v.Fix, w) {
					t.Errorf("message %q / fix %q lacks %q", v.Message, v.Fix, w)
				}
			}
			assertAgreesWithClient(t, tt.client, nsLabels, tt.policies, tt.bindings, e)
		})
	}
}

// TestExplainSecondAudience: a verdict per audience, the granted one and the one left out.
func TestExplainSecondAudience(t *testing.T) {
	c := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read"), Audiences: []authv1alpha1.Audience{"billing.billing"}},
	}
	other := billingPolicy(grant(inPayments(), "invoices:read"))
	other.Namespace, other.Spec.Audience = "ledger", "billing.ledger"
	policies := []authv1alpha1.ScopePolicy{billingPolicy(grant(inPayments(), "invoices:read")), other}
	e := Explain(c, nil, policies, nil)
	got := []Reason{}
	for _, v := range e.Scopes[0].Verdicts {
		got = append(got, v.Reason)
	}
	if want := []Reason{ReasonGranted, ReasonAudienceNotRequested}; !reflect.DeepEqual(got, want) {
		t.Fatalf("reasons = %v, want %v (%+v)", got, want, e)
	}
	assertAgreesWithClient(t, c, nil, policies, nil, e)
}

// assertAgreesWithClient checks that Explain grants exactly what Client grants (the controller's
// resolution), per audience, for a client that is not disabled.
func assertAgreesWithClient(t *testing.T, c *authv1alpha1.M2MClient, ns labels.Set, policies []authv1alpha1.ScopePolicy, b Bindings, e Explanation) {
	t.Helper()
	res := Client(c, ns, Holders(policies, b))
	want := map[string][]string{}
	for _, g := range res.Grants {
		want[g.Audience] = g.Scopes
	}
	got := map[string][]string{}
	for _, s := range e.Scopes {
		for _, v := range s.Verdicts {
			if v.Reason == ReasonGranted || v.Reason == ReasonClientDisabled {
				got[v.Audience] = append(got[v.Audience], s.Scope)
			}
		}
	}
	for _, v := range got {
		slices.Sort(v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("explain grants %v, Client grants %v", got, want)
	}
}
