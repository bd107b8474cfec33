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

// ClientMatcher selects M2MClients. Every matcher that is set must match; at least one must be set.
// +kubebuilder:validation:XValidation:rule="has(self.namespaces) || has(self.names) || has(self.namespaceSelector) || has(self.selector)",message="clients must set at least one of namespaces, names, namespaceSelector or selector (use selector: {} to match every client)"
type ClientMatcher struct {
	// Namespaces the client must live in.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// Names the M2MClient must have.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Names []string `json:"names,omitempty"`

	// NamespaceSelector matches the labels of the client's namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Selector matches the labels of the M2MClient.
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
	// Unique in the cluster: the oldest policy claiming it holds it.
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
}

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

func init() {
	SchemeBuilder.Register(&ScopePolicy{}, &ScopePolicyList{})
}
