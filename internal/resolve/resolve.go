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

// Package resolve decides which scopes a client holds for which audience: the single
// implementation of "requested ∩ granted by that audience's policy".
package resolve

import (
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// Audience returns the policy's effective audience: spec.audience, or <name>.<namespace>.
func Audience(p *authv1alpha1.ScopePolicy) string {
	if p.Spec.Audience != "" {
		return string(p.Spec.Audience)
	}
	return p.Name + "." + p.Namespace
}

// Older reports whether a holds an audience before b: the older creationTimestamp wins. The
// timestamps have one-second resolution, so within the same second the policy whose status says
// it holds the audience keeps it (a policy created right after the holder must not take its
// audience, as a name order alone would let it); then namespace/name, so that every replica and
// every run decides the same way.
func Older(a, b *authv1alpha1.ScopePolicy) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if ha, hb := holdsPerStatus(a), holdsPerStatus(b); ha != hb {
		return ha
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// Bindings maps each audience named by an AudienceBinding to the namespace it is bound to; an
// audience that bindings bind to different namespaces maps to "" (bound to none).
type Bindings map[string]string

// NewBindings indexes AudienceBindings.
func NewBindings(list []authv1alpha1.AudienceBinding) Bindings {
	out := make(Bindings, len(list))
	for i := range list {
		b := &list[i]
		if !b.DeletionTimestamp.IsZero() {
			continue
		}
		aud := string(b.Spec.Audience)
		if cur, ok := out[aud]; ok && cur != b.Spec.Namespace {
			out[aud] = ""
			continue
		}
		out[aud] = b.Spec.Namespace
	}
	return out
}

// Binding says how an audience is bound.
type Binding int

// How an audience is bound to a namespace.
const (
	// NotBound: the audience is not of the form <x>.<namespace> for this namespace and no
	// AudienceBinding binds it here.
	NotBound Binding = iota
	// BoundByName: the audience's last DNS label is the namespace.
	BoundByName
	// BoundByBinding: an AudienceBinding binds the audience to the namespace.
	BoundByBinding
	// Contested: AudienceBindings bind the audience to several namespaces, so to none.
	Contested
)

// BindingOf says whether aud is bound to namespace. An AudienceBinding decides when one names
// the audience; otherwise an audience that is a DNS name of two labels or more belongs to the
// namespace named by its last label. Anything else (a URI, a single label) belongs to no
// namespace until an administrator binds it.
func BindingOf(aud, namespace string, b Bindings) Binding {
	if ns, ok := b[aud]; ok {
		switch ns {
		case "":
			return Contested
		case namespace:
			return BoundByBinding
		}
		return NotBound
	}
	if i := strings.LastIndexByte(aud, '.'); i > 0 && aud[i+1:] == namespace && isDNSName(aud) {
		return BoundByName
	}
	return NotBound
}

// Bound reports whether the policy may hold its audience: the audience is bound to the policy's
// namespace.
func Bound(p *authv1alpha1.ScopePolicy, b Bindings) bool {
	switch BindingOf(Audience(p), p.Namespace, b) {
	case BoundByName, BoundByBinding:
		return true
	}
	return false
}

// isDNSName reports whether s is a DNS-1123 subdomain: lowercase labels of letters, digits and
// '-', separated by dots.
func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// holdsPerStatus reports whether the policy's status says it holds its current audience.
func holdsPerStatus(p *authv1alpha1.ScopePolicy) bool {
	return p.Status.Audience == Audience(p) &&
		meta.IsStatusConditionFalse(p.Status.Conditions, authv1alpha1.ConditionAudienceConflict)
}

// SameForClients reports whether every client resolves the same against a policy's old and
// new versions: the same spec (generation), the same deletion, and the same claim to its
// audience per status (Older's tie-breaker). A status patch that only recounts status.clients
// or rewords a message changes nothing for clients, and need not re-resolve every client of
// the audience.
func SameForClients(old, cur *authv1alpha1.ScopePolicy) bool {
	return old.Generation == cur.Generation &&
		old.DeletionTimestamp.Equal(cur.DeletionTimestamp) &&
		holdsPerStatus(old) == holdsPerStatus(cur)
}

// Holders maps each audience to the policy holding it: the oldest of the policies that claim it
// from the namespace it is bound to. A policy whose audience is not bound to its namespace holds
// nothing, whatever the order in which policies are created, deleted and re-created. Policies
// being deleted hold nothing.
func Holders(policies []authv1alpha1.ScopePolicy, b Bindings) map[string]*authv1alpha1.ScopePolicy {
	out := make(map[string]*authv1alpha1.ScopePolicy, len(policies))
	for i := range policies {
		p := &policies[i]
		if !p.DeletionTimestamp.IsZero() || !Bound(p, b) {
			continue
		}
		aud := Audience(p)
		if cur, ok := out[aud]; !ok || Older(p, cur) {
			out[aud] = p
		}
	}
	return out
}

// Grant is what one audience grants a client.
type Grant struct {
	Audience        string
	Scopes          []string
	MaxTokenTTL     time.Duration
	PolicyNamespace string
	// BindingRequired: the policy requires DPoP-bound tokens for the audience.
	BindingRequired bool
}

// Result is a client's resolution against every policy.
type Result struct {
	// Grants per audience, sorted by audience.
	Grants []Grant
	// Granted are the requested scopes granted by at least one audience, sorted.
	Granted []string
	// Denied are the requested scopes no audience grants, sorted.
	Denied []string
	// Audiences that grant at least one scope, sorted.
	Audiences []string
}

// Client resolves what the client holds. nsLabels are the labels of the client's namespace;
// holders come from Holders.
func Client(c *authv1alpha1.M2MClient, nsLabels labels.Set, holders map[string]*authv1alpha1.ScopePolicy) Result {
	requested := make([]string, 0, len(c.Spec.Scopes))
	for _, s := range c.Spec.Scopes {
		requested = append(requested, string(s))
	}
	wanted := audienceFilter(c.Spec.Audiences)
	granted := map[string]bool{}
	var res Result
	for _, aud := range slices.Sorted(maps.Keys(holders)) {
		if wanted != nil && !wanted[aud] {
			continue
		}
		p := holders[aud]
		offered := Offered(p, c, nsLabels)
		var scopes []string
		for _, s := range requested {
			if offered[s] {
				scopes = append(scopes, s)
				granted[s] = true
			}
		}
		if len(scopes) == 0 {
			continue
		}
		slices.Sort(scopes)
		g := Grant{Audience: aud, Scopes: scopes, PolicyNamespace: p.Namespace,
			BindingRequired: p.Spec.TokenBinding == authv1alpha1.TokenBindingRequired}
		if p.Spec.MaxTokenTTL != nil {
			g.MaxTokenTTL = p.Spec.MaxTokenTTL.Duration
		}
		res.Grants = append(res.Grants, g)
		res.Audiences = append(res.Audiences, aud)
	}
	for _, s := range requested {
		if granted[s] {
			res.Granted = append(res.Granted, s)
		} else {
			res.Denied = append(res.Denied, s)
		}
	}
	slices.Sort(res.Granted)
	slices.Sort(res.Denied)
	return res
}

// Offered returns the declared scopes that the policy's grants give this client, wildcards
// expanded over the policy's declared scopes.
func Offered(p *authv1alpha1.ScopePolicy, c *authv1alpha1.M2MClient, nsLabels labels.Set) map[string]bool {
	declared := make(map[string]bool, len(p.Spec.Scopes))
	for _, d := range p.Spec.Scopes {
		declared[string(d.Name)] = true
	}
	out := map[string]bool{}
	for i := range p.Spec.Grants {
		g := &p.Spec.Grants[i]
		if !Matches(&g.Clients, c, nsLabels) {
			continue
		}
		for _, s := range g.Scopes {
			expand(string(s), declared, out)
		}
	}
	return out
}

// expand adds to out the declared scopes that a grant entry names: itself, or for "prefix:*"
// every declared scope starting with "prefix:".
func expand(s string, declared, out map[string]bool) {
	if prefix, ok := strings.CutSuffix(s, "*"); ok && strings.HasSuffix(prefix, ":") {
		for d := range declared {
			if strings.HasPrefix(d, prefix) {
				out[d] = true
			}
		}
		return
	}
	if declared[s] {
		out[s] = true
	}
}

// Matches reports whether every matcher that is set matches the client. A matcher without a
// namespace boundary (namespaces or namespaceSelector) matches nothing: client names and labels
// are chosen by each namespace's team, so on their own they would let any namespace in (the
// schema refuses such a matcher; this is defence in depth).
func Matches(m *authv1alpha1.ClientMatcher, c *authv1alpha1.M2MClient, nsLabels labels.Set) bool {
	return Mismatch(m, c, nsLabels) == ""
}

// Mismatch returns why the matcher does not match the client (the first matcher, in the order
// namespaces, names, namespaceSelector, selector, that misses), or "" when it matches. Matches
// is defined by it, so what `kubectl m2m explain` says is what the controller decided.
func Mismatch(m *authv1alpha1.ClientMatcher, c *authv1alpha1.M2MClient, nsLabels labels.Set) Reason {
	if !Bounded(m) {
		return ReasonGrantWithoutNamespace
	}
	if len(m.Namespaces) > 0 && !slices.Contains(m.Namespaces, c.Namespace) {
		return ReasonNamespaceNotListed
	}
	if len(m.Names) > 0 && !slices.Contains(m.Names, c.Name) {
		return ReasonClientNameNotListed
	}
	if m.NamespaceSelector != nil {
		if r := selectorMismatch(m.NamespaceSelector, nsLabels, ReasonNamespaceLabelsMismatch); r != "" {
			return r
		}
	}
	if m.Selector != nil {
		if r := selectorMismatch(m.Selector, labels.Set(c.Labels), ReasonSelectorMismatch); r != "" {
			return r
		}
	}
	return ""
}

// Bounded reports whether the matcher draws a namespace boundary (namespaces or
// namespaceSelector); one without matches nothing.
func Bounded(m *authv1alpha1.ClientMatcher) bool {
	return len(m.Namespaces) > 0 || m.NamespaceSelector != nil
}

// selectorMismatch returns miss when the selector does not match set, and
// ReasonInvalidSelector for a selector that does not parse: a typo must never grant.
func selectorMismatch(ls *metav1.LabelSelector, set labels.Set, miss Reason) Reason {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return ReasonInvalidSelector
	}
	if !sel.Matches(set) {
		return miss
	}
	return ""
}

func audienceFilter(auds []authv1alpha1.Audience) map[string]bool {
	if len(auds) == 0 {
		return nil
	}
	out := make(map[string]bool, len(auds))
	for _, a := range auds {
		out[string(a)] = true
	}
	return out
}
