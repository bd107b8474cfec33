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

// Explain says, for each scope a client requests, why it is or is not granted: the same
// decisions as Client (Holders, BindingOf, Mismatch, expand), spelt out with the policy and
// grant that decided and the change that would grant it. `kubectl m2m explain` and
// `kubectl m2m who-can` print it; the controller never calls it.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// Reason is why a requested scope is or is not granted for one audience, or why a grant's
// clients matcher does not match a client.
type Reason string

// Reasons. Add, never rename: audits and scripts read them from `kubectl m2m explain -o json`.
const (
	// ReasonGranted: a grant of the audience's policy gives the client the scope.
	ReasonGranted Reason = "Granted"
	// ReasonClientDisabled: the policy grants the scope, but spec.disabled is true, so the
	// token server refuses the client.
	ReasonClientDisabled Reason = "ClientDisabled"
	// ReasonAudienceNotRequested: the audience's policy would grant the scope, but the client's
	// spec.audiences leaves the audience out.
	ReasonAudienceNotRequested Reason = "AudienceNotRequested"
	// ReasonNoPolicy: no ScopePolicy claims the audience.
	ReasonNoPolicy Reason = "NoPolicy"
	// ReasonAudienceNotBound: the policies claiming the audience live in a namespace the
	// audience is not bound to (DESIGN "Tenancy"), so none holds it.
	ReasonAudienceNotBound Reason = "AudienceNotBound"
	// ReasonAudienceContested: AudienceBindings bind the audience to several namespaces, so to
	// none.
	ReasonAudienceContested Reason = "AudienceContested"
	// ReasonPolicyDeleting: the only policies claiming the audience are being deleted.
	ReasonPolicyDeleting Reason = "PolicyDeleting"
	// ReasonScopeNotDeclared: the audience's policy (or, for a client that names no audience,
	// every policy) does not declare the scope in spec.scopes.
	ReasonScopeNotDeclared Reason = "ScopeNotDeclared"
	// ReasonNoGrantForScope: the policy declares the scope but no grant names it.
	ReasonNoGrantForScope Reason = "NoGrantForScope"
	// ReasonGrantWithoutNamespace: the grant's matcher draws no namespace boundary, so it
	// matches nothing.
	ReasonGrantWithoutNamespace Reason = "GrantWithoutNamespace"
	// ReasonNamespaceNotListed: the client's namespace is not in the grant's namespaces.
	ReasonNamespaceNotListed Reason = "NamespaceNotListed"
	// ReasonClientNameNotListed: the client's name is not in the grant's names.
	ReasonClientNameNotListed Reason = "ClientNameNotListed"
	// ReasonNamespaceLabelsMismatch: the grant's namespaceSelector does not match the labels of
	// the client's namespace.
	ReasonNamespaceLabelsMismatch Reason = "NamespaceLabelsMismatch"
	// ReasonSelectorMismatch: the grant's selector does not match the client's labels.
	ReasonSelectorMismatch Reason = "SelectorMismatch"
	// ReasonInvalidSelector: a selector of the grant does not parse, so it matches nothing.
	ReasonInvalidSelector Reason = "InvalidSelector"
)

// GrantCheck is one grant of a policy that names the scope (itself or by a wildcard), and
// whether its clients matcher matches the client.
type GrantCheck struct {
	// Index is the grant's position in spec.grants.
	Index int `json:"index"`
	// Reason is ReasonGranted when the matcher matches, else the first matcher that misses.
	Reason Reason `json:"reason"`
}

// Verdict is the decision for one scope and one audience.
type Verdict struct {
	// Audience is empty when no policy anywhere declares the scope.
	Audience string `json:"audience,omitempty"`
	// Policy is the namespace/name of the policy that decided (the holder, or the claimant
	// that cannot hold the audience); empty when there is none.
	Policy string `json:"policy,omitempty"`
	Reason Reason `json:"reason"`
	// Grants are the policy's grants naming the scope, in spec order.
	Grants []GrantCheck `json:"grants,omitempty"`
	// Message says what was decided, in words; Fix the change that grants the scope.
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Matched returns the grants that give the client the scope.
func (v *Verdict) Matched() []int {
	var out []int
	for _, g := range v.Grants {
		if g.Reason == ReasonGranted {
			out = append(out, g.Index)
		}
	}
	return out
}

// ScopeExplanation is every verdict about one requested scope.
type ScopeExplanation struct {
	Scope string `json:"scope"`
	// Granted: some audience's verdict is ReasonGranted, so the token server issues the scope.
	Granted  bool      `json:"granted"`
	Verdicts []Verdict `json:"verdicts"`
}

// Explanation is a client's requested scopes, explained, sorted by scope.
type Explanation struct {
	Scopes []ScopeExplanation `json:"scopes"`
}

// Explain explains the client's resolution against every policy (policies: every ScopePolicy,
// as Holders takes them; b: the AudienceBindings). A scope is granted for an audience exactly
// when Client grants it there and the client is not disabled.
func Explain(c *authv1alpha1.M2MClient, nsLabels labels.Set, policies []authv1alpha1.ScopePolicy, b Bindings) Explanation {
	e := explainer{c: c, nsLabels: nsLabels, b: b, holders: Holders(policies, b), claimants: claimants(policies)}
	e.wanted = audienceFilter(c.Spec.Audiences)
	requested := make([]string, 0, len(c.Spec.Scopes))
	for _, s := range c.Spec.Scopes {
		requested = append(requested, string(s))
	}
	slices.Sort(requested)
	requested = slices.Compact(requested)
	out := Explanation{Scopes: make([]ScopeExplanation, 0, len(requested))}
	for _, s := range requested {
		out.Scopes = append(out.Scopes, e.scope(s))
	}
	return out
}

type explainer struct {
	c         *authv1alpha1.M2MClient
	nsLabels  labels.Set
	b         Bindings
	holders   map[string]*authv1alpha1.ScopePolicy
	claimants map[string][]*authv1alpha1.ScopePolicy
	wanted    map[string]bool
}

// claimants groups the policies by the audience they claim, oldest first.
func claimants(policies []authv1alpha1.ScopePolicy) map[string][]*authv1alpha1.ScopePolicy {
	out := map[string][]*authv1alpha1.ScopePolicy{}
	for i := range policies {
		p := &policies[i]
		out[Audience(p)] = append(out[Audience(p)], p)
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b *authv1alpha1.ScopePolicy) int {
			if Older(a, b) {
				return -1
			}
			return 1
		})
	}
	return out
}

func (e *explainer) scope(s string) ScopeExplanation {
	out := ScopeExplanation{Scope: s}
	for _, aud := range e.audiencesFor(s) {
		v := e.verdict(aud, s)
		if !e.wants(aud) {
			if v.Reason != ReasonGranted && v.Reason != ReasonClientDisabled {
				continue // an audience the client does not ask for and that would not grant it anyway
			}
			v = e.notRequested(v)
		}
		out.Granted = out.Granted || v.Reason == ReasonGranted
		out.Verdicts = append(out.Verdicts, v)
	}
	if len(out.Verdicts) == 0 {
		out.Verdicts = []Verdict{{
			Reason:  ReasonScopeNotDeclared,
			Message: fmt.Sprintf("no ScopePolicy declares scope %s", s),
			Fix:     fmt.Sprintf("check the spelling of %s in spec.scopes, or ask the API's owner to declare it in their ScopePolicy's spec.scopes and grant it", s),
		}}
	}
	return out
}

func (e *explainer) wants(aud string) bool { return e.wanted == nil || e.wanted[aud] }

// audiencesFor lists, sorted, the audiences the client asks for (spec.audiences) and every
// audience whose policies declare the scope or name it in a grant.
func (e *explainer) audiencesFor(s string) []string {
	set := maps.Clone(e.wanted)
	if set == nil {
		set = map[string]bool{}
	}
	for aud, list := range e.claimants {
		for _, p := range list {
			if declares(p, s) || namesInGrant(p, s) {
				set[aud] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func declares(p *authv1alpha1.ScopePolicy, s string) bool {
	return slices.ContainsFunc(p.Spec.Scopes, func(d authv1alpha1.ScopeDefinition) bool { return string(d.Name) == s })
}

// namesInGrant reports whether a grant names the scope literally (an undeclared scope a
// grant names is still worth explaining: the declaration is what is missing).
func namesInGrant(p *authv1alpha1.ScopePolicy, s string) bool {
	for i := range p.Spec.Grants {
		if slices.Contains(p.Spec.Grants[i].Scopes, authv1alpha1.GrantScope(s)) {
			return true
		}
	}
	return false
}

func policyName(p *authv1alpha1.ScopePolicy) string { return p.Namespace + "/" + p.Name }

// verdict decides one scope for one audience, as Client does: the holder's grants, expanded
// over its declared scopes, each matcher checked by Mismatch (Matches is Mismatch == "").
func (e *explainer) verdict(aud, s string) Verdict {
	p := e.holders[aud]
	if p == nil {
		return e.unheld(aud)
	}
	v := Verdict{Audience: aud, Policy: policyName(p)}
	if !declares(p, s) {
		v.Reason = ReasonScopeNotDeclared
		v.Message = fmt.Sprintf("ScopePolicy %s (audience %s) does not declare scope %s", v.Policy, aud, s)
		v.Fix = fmt.Sprintf("ask the owner of ScopePolicy %s to add %s to spec.scopes and grant it, or correct spec.scopes of the client", v.Policy, s)
		return v
	}
	v.Grants = GrantChecks(p, e.c, e.nsLabels, s)
	if len(v.Grants) == 0 {
		v.Reason = ReasonNoGrantForScope
		v.Message = fmt.Sprintf("ScopePolicy %s declares %s but none of its grants names it", v.Policy, s)
		v.Fix = fmt.Sprintf("ask the owner of ScopePolicy %s to add a grant of %s whose clients match namespace %s and this client", v.Policy, s, e.c.Namespace)
		return v
	}
	if m := v.Matched(); len(m) > 0 {
		v.Reason = ReasonGranted
		v.Message = fmt.Sprintf("granted by ScopePolicy %s, %s", v.Policy, grantList(m))
		if e.c.Spec.Disabled {
			v.Reason = ReasonClientDisabled
			v.Message += ", but spec.disabled is true: the token server refuses this client"
			v.Fix = "set spec.disabled to false"
		}
		return v
	}
	first := v.Grants[0]
	v.Reason = first.Reason
	g := &p.Spec.Grants[first.Index]
	v.Message, v.Fix = e.mismatchWords(v.Policy, first.Index, &g.Clients, first.Reason)
	if len(v.Grants) > 1 {
		v.Message += fmt.Sprintf(" (%d grants name %s; none matches)", len(v.Grants), s)
	}
	return v
}

// GrantChecks lists the policy's grants that name scope s (itself, or by a wildcard over the
// declared scopes) with whether each matches the client: the grants Offered unions.
func GrantChecks(p *authv1alpha1.ScopePolicy, c *authv1alpha1.M2MClient, nsLabels labels.Set, s string) []GrantCheck {
	declared := make(map[string]bool, len(p.Spec.Scopes))
	for _, d := range p.Spec.Scopes {
		declared[string(d.Name)] = true
	}
	var out []GrantCheck
	for i := range p.Spec.Grants {
		g := &p.Spec.Grants[i]
		names := map[string]bool{}
		for _, gs := range g.Scopes {
			expand(string(gs), declared, names)
		}
		if !names[s] {
			continue
		}
		r := Mismatch(&g.Clients, c, nsLabels)
		if r == "" {
			r = ReasonGranted
		}
		out = append(out, GrantCheck{Index: i, Reason: r})
	}
	return out
}

// unheld explains an audience no policy holds: none claims it, or its claimants cannot hold it.
func (e *explainer) unheld(aud string) Verdict {
	v := Verdict{Audience: aud}
	var live *authv1alpha1.ScopePolicy
	for _, p := range e.claimants[aud] {
		if p.DeletionTimestamp.IsZero() {
			live = p
			break
		}
	}
	switch {
	case live == nil && len(e.claimants[aud]) > 0:
		v.Reason, v.Policy = ReasonPolicyDeleting, policyName(e.claimants[aud][0])
		v.Message = fmt.Sprintf("the ScopePolicy of audience %s (%s) is being deleted", aud, v.Policy)
		v.Fix = "ask the API's owner to re-create it"
	case live == nil:
		v.Reason = ReasonNoPolicy
		v.Message = fmt.Sprintf("no ScopePolicy has audience %s", aud)
		v.Fix = fmt.Sprintf("check spec.audiences of the client for a typo (%s), or ask the API's owner to create its ScopePolicy", aud)
	case BindingOf(aud, live.Namespace, e.b) == Contested:
		v.Reason, v.Policy = ReasonAudienceContested, policyName(live)
		v.Message = fmt.Sprintf("AudienceBindings bind audience %s to several namespaces, so to none: ScopePolicy %s cannot hold it", aud, v.Policy)
		v.Fix = fmt.Sprintf("a cluster administrator keeps one AudienceBinding for %s (namespace %s)", aud, live.Namespace)
	default:
		v.Reason, v.Policy = ReasonAudienceNotBound, policyName(live)
		v.Message = fmt.Sprintf("ScopePolicy %s claims audience %s, which is not bound to namespace %s, so it holds nothing", v.Policy, aud, live.Namespace)
		v.Fix = fmt.Sprintf("an audience <x>.<namespace> belongs to the namespace named by its last label: the API's owner uses such an audience (e.g. %s.%s), or a cluster administrator creates an AudienceBinding {audience: %s, namespace: %s}", live.Name, live.Namespace, aud, live.Namespace)
	}
	return v
}

// notRequested turns the verdict of an audience the policy would grant into
// ReasonAudienceNotRequested: the client's spec.audiences leaves it out.
func (e *explainer) notRequested(v Verdict) Verdict {
	v.Reason = ReasonAudienceNotRequested
	v.Message = fmt.Sprintf("ScopePolicy %s would grant it for audience %s, which spec.audiences leaves out", v.Policy, v.Audience)
	v.Fix = fmt.Sprintf("add %s to spec.audiences of the client", v.Audience)
	return v
}

// mismatchWords says why grant i's matcher misses the client, and what would make it match.
func (e *explainer) mismatchWords(policy string, i int, m *authv1alpha1.ClientMatcher, r Reason) (msg, fix string) {
	c := e.c
	at := fmt.Sprintf("ScopePolicy %s grants[%d]", policy, i)
	switch r {
	case ReasonGrantWithoutNamespace:
		return at + " names no namespace boundary (namespaces or namespaceSelector), so it matches nothing",
			fmt.Sprintf("ask the owner of %s to add namespaces or a namespaceSelector to grants[%d].clients", policy, i)
	case ReasonNamespaceNotListed:
		return fmt.Sprintf("%s lists namespaces %s, not %s", at, strings.Join(m.Namespaces, ", "), c.Namespace),
			fmt.Sprintf("ask the owner of %s to add %s to grants[%d].clients.namespaces", policy, c.Namespace, i)
	case ReasonClientNameNotListed:
		return fmt.Sprintf("%s lists client names %s, not %s", at, strings.Join(m.Names, ", "), c.Name),
			fmt.Sprintf("ask the owner of %s to add %s to grants[%d].clients.names", policy, c.Name, i)
	case ReasonNamespaceLabelsMismatch:
		return fmt.Sprintf("%s selects namespaces by %s; namespace %s has labels %s", at, selectorString(m.NamespaceSelector), c.Namespace, setString(e.nsLabels)),
			fmt.Sprintf("a cluster administrator labels namespace %s to match, or the owner of %s widens grants[%d].clients.namespaceSelector", c.Namespace, policy, i)
	case ReasonSelectorMismatch:
		return fmt.Sprintf("%s selects clients by %s; client %s/%s has labels %s", at, selectorString(m.Selector), c.Namespace, c.Name, setString(labels.Set(c.Labels))),
			fmt.Sprintf("label the M2MClient to match %s (metadata.labels), or ask the owner of %s to widen grants[%d].clients.selector", selectorString(m.Selector), policy, i)
	case ReasonInvalidSelector:
		return at + " has a selector that does not parse, so it matches nothing",
			fmt.Sprintf("ask the owner of %s to fix the selectors of grants[%d].clients", policy, i)
	}
	return at + ": " + string(r), ""
}

func grantList(idx []int) string {
	parts := make([]string, len(idx))
	for i, n := range idx {
		parts[i] = fmt.Sprintf("grants[%d]", n)
	}
	return strings.Join(parts, ", ")
}

func selectorString(ls *metav1.LabelSelector) string {
	return "{" + metav1.FormatLabelSelector(ls) + "}"
}

func setString(s labels.Set) string {
	if len(s) == 0 {
		return "{} (none)"
	}
	return "{" + s.String() + "}"
}
