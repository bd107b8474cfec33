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

// ScopePolicySpec is what an API team declares about its API.
// +kubebuilder:validation:XValidation:rule="!has(self.grants) || self.grants.all(g, g.scopes.all(s, s.endsWith(':*') || (has(self.scopes) && self.scopes.exists(d, d.name == s))))",message="spec.grants[].scopes may only name scopes declared in spec.scopes, or prefix wildcards such as invoices:*"
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
