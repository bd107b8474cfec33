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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScopeDefinition declares one scope an API offers.
type ScopeDefinition struct {
	// Name of the scope, e.g. invoices:read.
	Name ScopeToken `json:"name"`

	// Description for humans.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Description string `json:"description,omitempty"`
}

// GrantScope is a scope declared in the same policy, or a wildcard "prefix:*" that expands to
// every declared scope with that prefix.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[]-~!#-[]+$')",message="must be a declared scope name or a prefix wildcard such as invoices:*"
type GrantScope string

// ClientMatcher selects M2MClients. Every matcher that is set must match. Client names and
// labels are chosen by the client's team, so every matcher draws a namespace boundary first:
// namespaces or namespaceSelector (namespaceSelector: {} means every namespace, explicitly);
// names and selector only narrow within it.
// +kubebuilder:validation:XValidation:rule="(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",message="clients must set namespaces or namespaceSelector: client names and labels are chosen by each namespace's team, so they only narrow a namespace boundary (use namespaceSelector: {} to match every namespace explicitly)"
type ClientMatcher struct {
	// Namespaces the client must live in.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// Names the M2MClient must have, within the namespaces above.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Names []string `json:"names,omitempty"`

	// NamespaceSelector matches the labels of the client's namespace ({} matches every
	// namespace).
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Selector matches the labels of the M2MClient, within the namespaces above.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// Grant gives some of the policy's scopes to the clients it matches.
type Grant struct {
	// Scopes granted: declared scope names, or "prefix:*" wildcards over declared scopes.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Scopes []GrantScope `json:"scopes"`

	// Clients that receive these scopes.
	Clients ClientMatcher `json:"clients"`
}

// HTTPMethod is an HTTP request method a route applies to.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS
type HTTPMethod string

// UnmatchedRoutes says what m2m authz answers for a request that matches none of the policy's
// routes.
// +kubebuilder:validation:Enum=Deny;AllowAuthenticated
type UnmatchedRoutes string

// What a request matching no route gets.
const (
	// UnmatchedRoutesDeny refuses it (403 insufficient_scope): the default, so that a route the
	// API owner forgot is closed, not open.
	UnmatchedRoutesDeny UnmatchedRoutes = "Deny"
	// UnmatchedRoutesAllowAuthenticated lets in any valid token for the audience, whatever its
	// scopes.
	UnmatchedRoutesAllowAuthenticated UnmatchedRoutes = "AllowAuthenticated"
)

// Route says which scopes a request needs, by path prefix and method. It is read by m2m authz,
// the decision service that gateways (nginx, Envoy, Istio, Traefik, Caddy) ask before they let a
// request through to the API.
type Route struct {
	// PathPrefix the request path must start with, e.g. /invoices. It matches whole path
	// segments: /invoices matches /invoices and /invoices/42, not /invoices-archive ("/" matches
	// every path). The query string is not part of the path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="pathPrefix must start with / (e.g. /invoices)"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$') && !self.contains('?') && !self.contains('#')",message="pathPrefix must be a path of printable ASCII without spaces, query (?) or fragment (#)"
	PathPrefix string `json:"pathPrefix"`

	// Methods the route applies to; empty or absent: every method.
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +optional
	Methods []HTTPMethod `json:"methods,omitempty"`

	// Scopes the token must hold, all of them; empty: any valid token for the audience. Each
	// must be declared in the policy's spec.scopes.
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +optional
	Scopes []ScopeToken `json:"scopes,omitempty"`
}

// ScopePolicySpec is what an API team declares about its API.
// +kubebuilder:validation:XValidation:rule="!has(self.grants) || self.grants.all(g, g.scopes.all(s, s.endsWith(':*') || (has(self.scopes) && self.scopes.exists(d, d.name == s))))",message="spec.grants[].scopes may only name scopes declared in spec.scopes, or prefix wildcards such as invoices:*"
// +kubebuilder:validation:XValidation:rule="!has(self.routes) || self.routes.all(r, !has(r.scopes) || r.scopes.all(s, has(self.scopes) && self.scopes.exists(d, d.name == s)))",message="spec.routes[].scopes may only name scopes declared in spec.scopes (add the scope to spec.scopes, or fix its spelling)"
type ScopePolicySpec struct {
	// Audience is the API's identifier, the "aud" of its tokens. Default: <name>.<namespace>.
	// An audience belongs to one namespace: one of the form <x>.<namespace> (a DNS name whose
	// last label is this namespace) belongs to that namespace; any other (e.g. a URI) only
	// through an AudienceBinding, which cluster administrators write. A policy holding an
	// audience not bound to its namespace grants nothing. Within the namespace, the oldest
	// policy claiming an audience holds it.
	// +optional
	Audience Audience `json:"audience,omitempty"`

	// Scopes the API offers.
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=name
	// +optional
	Scopes []ScopeDefinition `json:"scopes,omitempty"`

	// Grants say which clients may hold which scopes. Nothing is granted by default.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Grants []Grant `json:"grants,omitempty"`

	// Routes say which scopes each request to the API needs, for gateways that ask m2m authz
	// (see docs/gateways). The first route whose pathPrefix and methods match the request
	// decides (list specific prefixes before general ones); a request matching none is
	// answered per unmatchedRoutes. Only the policy holding the audience counts: routes of a
	// policy that does not hold its audience are ignored.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// UnmatchedRoutes is the answer for a request that matches no route: Deny (the default)
	// or AllowAuthenticated (any valid token for the audience).
	// +kubebuilder:default=Deny
	// +optional
	UnmatchedRoutes UnmatchedRoutes `json:"unmatchedRoutes,omitempty"`

	// MaxTokenTTL caps the lifetime of tokens for this audience (1m to 24h).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="spec.maxTokenTTL must be between 1m and 24h"
	// +optional
	MaxTokenTTL *metav1.Duration `json:"maxTokenTTL,omitempty"`

	// TokenBinding says whether tokens for this audience must be sender-constrained. Required:
	// the token server issues them only DPoP-bound (RFC 9449: the client proves possession of
	// its key on every request, so a stolen token is worthless without the key), refusing
	// token requests without a DPoP proof; resource servers should then accept only the DPoP
	// scheme. Optional (the default, also when omitted): bearer and bound tokens alike. A
	// client's own spec.tokenBinding can only add to this, never lift it.
	// +optional
	TokenBinding TokenBindingPolicy `json:"tokenBinding,omitempty"`
}

// TokenBindingPolicy is an audience's requirement for bound tokens.
// +kubebuilder:validation:Enum=Required;Optional
type TokenBindingPolicy string

// Token binding policies of an audience.
const (
	// TokenBindingRequired: every token for the audience is DPoP-bound.
	TokenBindingRequired TokenBindingPolicy = "Required"
	// TokenBindingOptional: bearer tokens are issued too (the default).
	TokenBindingOptional TokenBindingPolicy = "Optional"
)

// ScopePolicyStatus is what the controller observed.
type ScopePolicyStatus struct {
	// Audience in effect (the default filled in).
	// +optional
	Audience string `json:"audience,omitempty"`

	// Clients is how many M2MClients hold at least one of this policy's scopes.
	// +optional
	Clients int32 `json:"clients"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, AudienceConflict.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=scp,categories=m2m
// +kubebuilder:printcolumn:name="Audience",type=string,JSONPath=`.status.audience`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clients`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ScopePolicy declares an API (its audience and scopes) and which clients may hold which scopes.
type ScopePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ScopePolicySpec `json:"spec,omitempty"`
	// +optional
	Status ScopePolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ScopePolicyList contains a list of ScopePolicy.
type ScopePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ScopePolicy `json:"items"`
}
