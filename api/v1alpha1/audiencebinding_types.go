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

// AudienceBindingSpec binds one audience to one namespace.
type AudienceBindingSpec struct {
	// Audience is the audience bound, exactly as ScopePolicies name it in spec.audience (e.g.
	// https://billing.example.com).
	Audience Audience `json:"audience"`

	// Namespace is the only namespace whose ScopePolicies may hold the audience.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.namespace must be a namespace name (a DNS-1123 label: lowercase letters, digits and '-')"
	Namespace string `json:"namespace"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=audb,categories=m2m
// +kubebuilder:printcolumn:name="Audience",type=string,JSONPath=`.spec.audience`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// AudienceBinding lets the ScopePolicies of one namespace hold an audience that does not have the
// form <x>.<namespace>, such as a URI. It is cluster-scoped, so only those who may write
// cluster-scoped objects (cluster administrators) can bind an audience: no team can claim
// another's API. An AudienceBinding also decides for an audience of the form <x>.<namespace>:
// the binding's namespace then holds it instead. Two bindings of one audience to different
// namespaces bind it to none (fail closed) until one is removed.
type AudienceBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AudienceBindingSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// AudienceBindingList contains a list of AudienceBinding.
type AudienceBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AudienceBinding `json:"items"`
}
