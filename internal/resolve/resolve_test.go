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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

func scopes(s ...string) []authv1alpha1.ScopeToken {
	out := make([]authv1alpha1.ScopeToken, len(s))
	for i, v := range s {
		out[i] = authv1alpha1.ScopeToken(v)
	}
	return out
}

func grantScopes(s ...string) []authv1alpha1.GrantScope {
	out := make([]authv1alpha1.GrantScope, len(s))
	for i, v := range s {
		out[i] = authv1alpha1.GrantScope(v)
	}
	return out
}

func declared(s ...string) []authv1alpha1.ScopeDefinition {
	out := make([]authv1alpha1.ScopeDefinition, len(s))
	for i, v := range s {
		out[i] = authv1alpha1.ScopeDefinition{Name: authv1alpha1.ScopeToken(v)}
	}
	return out
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// billingPolicy declares invoices:read, invoices:write and refunds:issue for audience
// "billing.billing".
func billingPolicy(grants ...authv1alpha1.Grant) authv1alpha1.ScopePolicy {
	return authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "billing", CreationTimestamp: metav1.NewTime(time.Unix(100, 0))},
		Spec: authv1alpha1.ScopePolicySpec{
			Audience: "billing.billing",
			Scopes:   declared("invoices:read", "invoices:write", "refunds:issue"),
			Grants:   grants,
		},
	}
}

func grant(m authv1alpha1.ClientMatcher, s ...string) authv1alpha1.Grant {
	return authv1alpha1.Grant{Scopes: grantScopes(s...), Clients: m}
}

func TestClientMatchersAndWildcards(t *testing.T) {
	worker := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker", Labels: map[string]string{"app": "worker"}},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read", "invoices:write", "refunds:issue")},
	}
	nsLabels := labels.Set{"team": "payments"}
	tests := []struct {
		name    string
		grant   authv1alpha1.Grant
		granted []string
	}{
		{"namespaces match", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}}, "invoices:read"), []string{"invoices:read"}},
		{"namespaces miss", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"other"}}, "invoices:read"), nil},
		{"names match within a namespace", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Names: []string{"worker"}}, "invoices:read"), []string{"invoices:read"}},
		{"names miss", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Names: []string{"admin"}}, "invoices:read"), nil},
		{"names without a namespace boundary match nothing", grant(authv1alpha1.ClientMatcher{Names: []string{"worker"}}, "invoices:read"), nil},
		{"namespaceSelector match", grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "payments")}, "invoices:read"), []string{"invoices:read"}},
		{"namespaceSelector miss", grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "billing")}, "invoices:read"), nil},
		{"empty namespaceSelector matches every namespace", grant(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{}}, "invoices:read"), []string{"invoices:read"}},
		{"selector match within a namespace", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Selector: sel("app", "worker")}, "invoices:read"), []string{"invoices:read"}},
		{"selector miss", grant(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{}, Selector: sel("app", "admin")}, "invoices:read"), nil},
		{"selector without a namespace boundary matches nothing", grant(authv1alpha1.ClientMatcher{Selector: sel("app", "worker")}, "invoices:read"), nil},
		{"empty selector without a namespace boundary matches nothing", grant(authv1alpha1.ClientMatcher{Selector: &metav1.LabelSelector{}}, "invoices:read"), nil},
		{"empty namespaces list is no boundary", grant(authv1alpha1.ClientMatcher{Namespaces: []string{}, Names: []string{"worker"}}, "invoices:read"), nil},
		{"all matchers match", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Names: []string{"worker"}, NamespaceSelector: sel("team", "payments"), Selector: sel("app", "worker")}, "invoices:read"), []string{"invoices:read"}},
		{"one of several matchers misses", grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Names: []string{"admin"}}, "invoices:read"), nil},
		{"namespace matches, selector misses", grant(authv1alpha1.ClientMatcher{NamespaceSelector: sel("team", "payments"), Selector: sel("app", "other")}, "invoices:read"), nil},
		{"no matcher matches nothing", grant(authv1alpha1.ClientMatcher{}, "invoices:read"), nil},
		{"invalid selector matches nothing", grant(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{}, Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}}, "invoices:read"), nil},
		{"wildcard expands within its prefix", grant(inPayments("worker"), "invoices:*"), []string{"invoices:read", "invoices:write"}},
		{"wildcard of another prefix", grant(inPayments("worker"), "refunds:*"), []string{"refunds:issue"}},
		{"wildcard prefix must end at a colon", grant(inPayments("worker"), "invoices*"), nil},
		{"undeclared scope is never granted", grant(inPayments("worker"), "admin:all"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holders := Holders([]authv1alpha1.ScopePolicy{billingPolicy(tt.grant)}, nil)
			res := Client(worker, nsLabels, holders)
			if !reflect.DeepEqual(res.Granted, tt.granted) {
				t.Fatalf("granted = %v, want %v", res.Granted, tt.granted)
			}
			if len(res.Granted)+len(res.Denied) != 3 {
				t.Fatalf("granted %v + denied %v do not partition the request", res.Granted, res.Denied)
			}
		})
	}
}

func TestRequestedIntersectGranted(t *testing.T) {
	c := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read", "reports:read")},
	}
	p := billingPolicy(grant(authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}}, "invoices:*", "refunds:issue"))
	res := Client(c, nil, Holders([]authv1alpha1.ScopePolicy{p}, nil))
	if want := []string{"invoices:read"}; !reflect.DeepEqual(res.Granted, want) {
		t.Fatalf("granted %v, want %v (a grant never adds unrequested scopes)", res.Granted, want)
	}
	if want := []string{"reports:read"}; !reflect.DeepEqual(res.Denied, want) {
		t.Fatalf("denied %v, want %v", res.Denied, want)
	}
}

func TestAudiencesRestrictAndMaxTTL(t *testing.T) {
	all := authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}}
	billing := billingPolicy(grant(all, "invoices:read"))
	billing.Spec.MaxTokenTTL = &metav1.Duration{Duration: time.Hour}
	reports := authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "reports", Name: "reports", CreationTimestamp: metav1.NewTime(time.Unix(100, 0))},
		Spec: authv1alpha1.ScopePolicySpec{
			Scopes: declared("invoices:read", "reports:read"),
			Grants: []authv1alpha1.Grant{grant(all, "invoices:read", "reports:read")},
		},
	}
	holders := Holders([]authv1alpha1.ScopePolicy{billing, reports}, nil)
	c := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read", "reports:read")},
	}

	res := Client(c, nil, holders)
	if want := []string{"billing.billing", "reports.reports"}; !reflect.DeepEqual(res.Audiences, want) {
		t.Fatalf("audiences %v, want %v (default audience is <name>.<namespace>)", res.Audiences, want)
	}
	if res.Grants[0].MaxTokenTTL != time.Hour || res.Grants[0].PolicyNamespace != "billing" {
		t.Fatalf("billing grant = %+v, want max TTL 1h from namespace billing", res.Grants[0])
	}

	c.Spec.Audiences = []authv1alpha1.Audience{"billing.billing"}
	res = Client(c, nil, holders)
	if want := []string{"billing.billing"}; !reflect.DeepEqual(res.Audiences, want) {
		t.Fatalf("with spec.audiences: audiences %v, want %v", res.Audiences, want)
	}
	if want := []string{"reports:read"}; !reflect.DeepEqual(res.Denied, want) {
		t.Fatalf("with spec.audiences: denied %v, want %v", res.Denied, want)
	}
}

func inPayments(names ...string) authv1alpha1.ClientMatcher {
	return authv1alpha1.ClientMatcher{Namespaces: []string{"payments"}, Names: names}
}

// holding sets the status a policy holding its audience has.
func holding(p authv1alpha1.ScopePolicy) authv1alpha1.ScopePolicy {
	p.Status.Audience = Audience(&p)
	p.Status.Conditions = []metav1.Condition{{Type: authv1alpha1.ConditionAudienceConflict, Status: metav1.ConditionFalse, Reason: "AudienceHeld"}}
	return p
}

// holdingOther is a policy whose status says it held the audience it named before an edit.
func holdingOther(p authv1alpha1.ScopePolicy) authv1alpha1.ScopePolicy {
	p = holding(p)
	p.Status.Audience = "https://before.example.com"
	return p
}

func TestHoldersOldestThenName(t *testing.T) {
	mk := func(ns, name string, created int64) authv1alpha1.ScopePolicy {
		return authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Unix(created, 0))},
			Spec:       authv1alpha1.ScopePolicySpec{Audience: "https://shared.example.com"},
		}
	}
	bound := Bindings{"https://shared.example.com": "a"}
	tests := []struct {
		name     string
		policies []authv1alpha1.ScopePolicy
		want     string
	}{
		{"oldest of the bound namespace wins", []authv1alpha1.ScopePolicy{mk("a", "x", 200), mk("a", "y", 100)}, "a/y"},
		{"an older policy elsewhere holds nothing", []authv1alpha1.ScopePolicy{mk("a", "x", 200), mk("z", "y", 100)}, "a/x"},
		{"same age and namespace: name order", []authv1alpha1.ScopePolicy{mk("a", "y", 100), mk("a", "x", 100)}, "a/x"},
		{"same second: the holder per status keeps it", []authv1alpha1.ScopePolicy{holding(mk("a", "y", 100)), mk("a", "x", 100)}, "a/y"},
		{"status of another audience does not count", []authv1alpha1.ScopePolicy{holdingOther(mk("a", "y", 100)), mk("a", "x", 100)}, "a/x"},
		{"an older policy wins over a holder per status", []authv1alpha1.ScopePolicy{holding(mk("a", "y", 100)), mk("a", "x", 99)}, "a/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Holders(tt.policies, bound)["https://shared.example.com"]
			if got := h.Namespace + "/" + h.Name; got != tt.want {
				t.Fatalf("holder %s, want %s", got, tt.want)
			}
		})
	}
	deleting := mk("a", "old", 1)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	if h := Holders([]authv1alpha1.ScopePolicy{deleting, mk("a", "new", 2)}, bound)["https://shared.example.com"]; h.Name != "new" {
		t.Fatalf("a policy being deleted must not hold its audience, got %s", h.Name)
	}
}

func TestBindingOf(t *testing.T) {
	b := NewBindings([]authv1alpha1.AudienceBinding{
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "https://billing.example.com", Namespace: "billing"}},
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "moved.billing", Namespace: "ledger"}},
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "https://twice.example.com", Namespace: "a"}},
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "https://twice.example.com", Namespace: "b"}},
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "https://same.example.com", Namespace: "a"}},
		{Spec: authv1alpha1.AudienceBindingSpec{Audience: "https://same.example.com", Namespace: "a"}},
	})
	tests := []struct {
		aud, ns string
		want    Binding
	}{
		{"billing.billing", "billing", BoundByName},
		{"api.v2.billing", "billing", BoundByName},
		{"billing.billing", "payments", NotBound},
		{"billing", "billing", NotBound},             // one label names no namespace
		{".billing", "billing", NotBound},            // empty first label
		{"Billing.billing", "billing", NotBound},     // not a DNS name
		{"https://api.billing", "billing", NotBound}, // a URI is never bound by its name
		{"billing.billing/", "billing", NotBound},    // nor anything that is not a DNS name
		{"x_y.billing", "billing", NotBound},         // underscore
		{"https://billing.example.com", "billing", BoundByBinding},
		{"https://billing.example.com", "payments", NotBound},
		{"moved.billing", "ledger", BoundByBinding}, // a binding decides over the name
		{"moved.billing", "billing", NotBound},
		{"https://twice.example.com", "a", Contested}, // two namespaces: bound to none
		{"https://twice.example.com", "b", Contested},
		{"https://same.example.com", "a", BoundByBinding}, // two bindings that agree
	}
	for _, tt := range tests {
		if got := BindingOf(tt.aud, tt.ns, b); got != tt.want {
			t.Errorf("BindingOf(%q, %q) = %v, want %v", tt.aud, tt.ns, got, tt.want)
		}
	}
}

// TestAudienceSquatting is the squat of the tenancy review: a tenant's policy names another
// team's audience and grants itself everything. In no order of creation, deletion and
// re-creation of the owner's policy does it hold the audience.
func TestAudienceSquatting(t *testing.T) {
	owner := func(created int64) authv1alpha1.ScopePolicy {
		p := billingPolicy(grant(inPayments("worker"), "invoices:read"))
		p.CreationTimestamp = metav1.NewTime(time.Unix(created, 0))
		return p
	}
	squat := authv1alpha1.ScopePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mallory", Name: "billing", CreationTimestamp: metav1.NewTime(time.Unix(1, 0))},
		Spec: authv1alpha1.ScopePolicySpec{
			Audience: "billing.billing",
			Scopes:   declared("invoices:read", "refunds:issue"),
			Grants:   []authv1alpha1.Grant{grant(authv1alpha1.ClientMatcher{Namespaces: []string{"mallory"}}, "invoices:read", "refunds:issue")},
		},
	}
	attacker := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mallory", Name: "thief"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read", "refunds:issue")},
	}
	victim := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "worker"},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: scopes("invoices:read")},
	}
	for _, tt := range []struct {
		name     string
		policies []authv1alpha1.ScopePolicy
		holder   string
	}{
		{"before the owner's policy exists", []authv1alpha1.ScopePolicy{squat}, ""},
		{"beside an older owner's policy", []authv1alpha1.ScopePolicy{squat, owner(0)}, "billing/billing"},
		{"after the owner's policy is re-created", []authv1alpha1.ScopePolicy{squat, owner(1000)}, "billing/billing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			holders := Holders(tt.policies, nil)
			got := ""
			if h := holders["billing.billing"]; h != nil {
				got = h.Namespace + "/" + h.Name
			}
			if got != tt.holder {
				t.Fatalf("holder of billing.billing = %q, want %q", got, tt.holder)
			}
			if res := Client(attacker, nil, holders); len(res.Granted) != 0 {
				t.Fatalf("the squatter's client was granted %v", res.Granted)
			}
			res := Client(victim, nil, holders)
			if want := tt.holder != ""; (len(res.Granted) == 1) != want {
				t.Fatalf("owner's client granted %v; want invoices:read: %v", res.Granted, want)
			}
		})
	}
}

func TestSameForClients(t *testing.T) {
	base := func() *authv1alpha1.ScopePolicy {
		p := holding(authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p", Generation: 1, CreationTimestamp: metav1.NewTime(time.Unix(100, 0))},
			Spec:       authv1alpha1.ScopePolicySpec{Audience: "https://shared.example.com"},
		})
		p.Status.Clients = 3
		return &p
	}
	now := metav1.Now()
	tests := []struct {
		name   string
		mutate func(*authv1alpha1.ScopePolicy)
		same   bool
	}{
		{"a recount of status.clients", func(p *authv1alpha1.ScopePolicy) { p.Status.Clients = 4 }, true},
		{"a reworded Ready message", func(p *authv1alpha1.ScopePolicy) {
			p.Status.Conditions = append(p.Status.Conditions, metav1.Condition{Type: authv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "4 clients"})
		}, true},
		{"a spec change", func(p *authv1alpha1.ScopePolicy) { p.Generation = 2 }, false},
		{"deletion", func(p *authv1alpha1.ScopePolicy) { p.DeletionTimestamp = &now }, false},
		{"the audience lost per status (the same-second tie-breaker)", func(p *authv1alpha1.ScopePolicy) {
			p.Status.Conditions[0].Status = metav1.ConditionTrue
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := base()
			tt.mutate(cur)
			if got := SameForClients(base(), cur); got != tt.same {
				t.Fatalf("SameForClients = %v, want %v", got, tt.same)
			}
		})
	}
}
