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

// Package v1alpha1 contains the auth.m2m.dev/v1alpha1 API: M2MClient (a machine identity),
// ScopePolicy (what an API offers, and to whom) and AudienceBinding (which namespace may hold an
// audience that does not name its namespace).
// +kubebuilder:object:generate=true
// +groupName=auth.m2m.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "auth.m2m.dev", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group-version to a scheme. It is apimachinery's
	// builder, not controller-runtime's, so that importing the API pulls in no controller code.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers every kind of this group-version, and the meta types (ListOptions…)
// that clients send with them.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&M2MClient{}, &M2MClientList{},
		&ScopePolicy{}, &ScopePolicyList{},
		&AudienceBinding{}, &AudienceBindingList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
