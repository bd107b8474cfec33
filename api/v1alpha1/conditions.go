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

// Condition types.
const (
	// ConditionReady is True when the object is reconciled to what its spec declares: for an
	// M2MClient, tokens can be issued, or spec.disabled is true and they are refused as declared.
	ConditionReady = "Ready"
	// ConditionCredentialsReady is True when the credential Secret and record are in place.
	ConditionCredentialsReady = "CredentialsReady"
	// ConditionScopesGranted is True when every requested scope is granted by some policy.
	ConditionScopesGranted = "ScopesGranted"
	// ConditionAudienceConflict is True on a ScopePolicy whose audience another policy holds.
	ConditionAudienceConflict = "AudienceConflict"
	// ConditionReconciling is True while work is pending (kstatus InProgress): Ready is False
	// for a reason that time or a retry cures.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when Ready is False for a reason waiting will not cure (kstatus
	// Failed): someone must change the spec, a policy, a Secret or a ServiceAccount.
	ConditionStalled = "Stalled"
)

// Well-known labels, annotations and Secret types.
const (
	// AnnotationRotate requests a secret rotation whenever its value changes.
	AnnotationRotate = "auth.m2m.dev/rotate"
	// LabelClientID labels credential records (and credential Secrets) with the client id.
	LabelClientID = "auth.m2m.dev/client-id"
	// LabelClientNamespace labels credential records with the client's namespace.
	LabelClientNamespace = "auth.m2m.dev/client-namespace"
	// LabelClientName labels credential records and credential Secrets with the client's name.
	LabelClientName = "auth.m2m.dev/client-name"
	// LabelJWKS must be set to "true" on a Secret or ConfigMap that spec.authentication.jwksFrom
	// references: the controller watches only objects so labelled.
	LabelJWKS = "auth.m2m.dev/jwks"
	// LabelManagedBy marks every Secret the controller writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "m2m-operator"
	// SecretTypeClientCredentials is the type of the credential Secret pods mount.
	SecretTypeClientCredentials = "auth.m2m.dev/client-credentials"
	// SecretTypeCredentialRecord is the type of the record the token server reads.
	SecretTypeCredentialRecord = "auth.m2m.dev/credential-record"
	// Finalizer lets the controller remove the Secrets it wrote before the client goes away.
	Finalizer = "auth.m2m.dev/cleanup"
)
