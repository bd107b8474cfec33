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

package tokenserver

// The token server reads Secrets in the credentials namespace only, which holds exactly its
// credential records, the signing-key Secret and the TLS Secret (the CA key stays in the system
// namespace, out of its reach). It writes nothing. For the ServiceAccount method it
// creates TokenReviews (cluster-scoped: this is the only ClusterRole rule it has). It also reads
// the service-account issuer discovery documents (/.well-known/openid-configuration and
// /openid/v1/jwks), which every ServiceAccount may read through the default
// system:service-account-issuer-discovery ClusterRoleBinding, so no rule is added for them.

// +kubebuilder:rbac:groups="",namespace=m2m-credentials,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
