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

// This file is the contract pods, users and tools see besides the spec: the condition types and
// reasons in status, the Event reasons, the keys of the credential Secret pods mount, and the
// labels, annotations and Secret types on the objects the controller writes. Renaming any of
// them breaks someone's alert, health check or mounted file: add, never rename.

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

// Reasons of an M2MClient's CredentialsReady condition. Ready=False repeats the reason of
// CredentialsReady=False.
const (
	// ReasonCredentialsIssued (True): the credential Secret and the record are in place.
	ReasonCredentialsIssued = "CredentialsIssued"
	// ReasonWaitingForCA (False): the token server's CA is not issued yet; the credential Secret
	// waits for it, the record meanwhile follows the grants and spec.disabled.
	ReasonWaitingForCA = "WaitingForCA"
	// ReasonSecretNameConflict (False): a Secret this client does not own holds the credential
	// Secret's name; it is left untouched and nothing is issued or rotated.
	ReasonSecretNameConflict = "SecretNameConflict"
	// ReasonSecretGenerationFailed (False): no client secret could be generated; retried.
	ReasonSecretGenerationFailed = "SecretGenerationFailed"
	// ReasonSecretWriteFailed (False): the credential Secret could not be written; retried.
	ReasonSecretWriteFailed = "SecretWriteFailed"
	// ReasonRecordWriteFailed (False): the credential record could not be written; retried.
	ReasonRecordWriteFailed = "RecordWriteFailed"
	// ReasonServiceAccountNotFound (False): the ServiceAccount of a ServiceAccount-method client
	// does not exist.
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
	// ReasonJWKSNotFound (False): the object or key spec.authentication.jwksFrom names is missing.
	ReasonJWKSNotFound = "JWKSNotFound"
	// ReasonInvalidJWKS (False): the client's JWKS cannot be used (not public keys, unsupported).
	ReasonInvalidJWKS = "InvalidJWKS"
)

// Reasons of a repair the controller made: each is the reason of a Warning Event and, until
// the spec changes or the secret is issued again, of CredentialsReady=True.
const (
	// ReasonCredentialSecretRecreated: the credential Secret was deleted; a new client secret
	// was issued and the old one revoked at once.
	ReasonCredentialSecretRecreated = "CredentialSecretRecreated"
	// ReasonCredentialSecretRepaired: the credential Secret's client_secret was missing or
	// malformed; a new client secret was issued and the old one revoked at once.
	ReasonCredentialSecretRepaired = "CredentialSecretRepaired"
	// ReasonCredentialSecretEdited: the credential Secret's client_secret was edited; a new
	// client secret was issued and every other one revoked.
	ReasonCredentialSecretEdited = "CredentialSecretEdited"
	// ReasonCredentialRecordRebuilt: the credential record was missing; it was rebuilt from the
	// credential Secret (no rotation).
	ReasonCredentialRecordRebuilt = "CredentialRecordRebuilt"
	// ReasonCredentialRecordUnreadable: the credential record could not be decoded (corrupted
	// or edited by hand); it was rebuilt from the credential Secret (no rotation).
	ReasonCredentialRecordUnreadable = "CredentialRecordUnreadable"
)

// Reasons of Normal Events about an M2MClient.
const (
	// ReasonCredentialsCreated: the first client secret was issued. No Event carries it any
	// more (one API write per new client): CredentialsReady=True and status.secretRotatedAt
	// report a first issuance.
	ReasonCredentialsCreated = "CredentialsCreated"
	// ReasonSecretRotated: the client secret was rotated (annotation or interval); the previous
	// one is accepted for the grace period.
	ReasonSecretRotated = "SecretRotated"
	// ReasonEnabled: spec.disabled went back to false; token issuance resumed.
	ReasonEnabled = "Enabled"
)

// Reasons of an M2MClient's ScopesGranted condition.
const (
	// ReasonNoScopesRequested (False): spec.scopes is empty.
	ReasonNoScopesRequested = "NoScopesRequested"
	// ReasonAllGranted (True): every requested scope is granted.
	ReasonAllGranted = "AllGranted"
	// ReasonNotGranted (False): no requested scope is granted.
	ReasonNotGranted = "NotGranted"
	// ReasonPartiallyGranted (False): some requested scopes are not granted.
	ReasonPartiallyGranted = "PartiallyGranted"
)

// Reasons of the Ready condition (of an M2MClient, and of a ScopePolicy for ReasonReady,
// ReasonAudienceConflict, ReasonAudienceNotBound and ReasonGrantWithoutNamespace).
const (
	// ReasonReady (True): tokens can be issued (M2MClient); the policy holds its audience and
	// every grant applies (ScopePolicy).
	ReasonReady = "Ready"
	// ReasonDisabled (True): spec.disabled is true, as declared; also the reason of the Normal
	// Event when issuance stops.
	ReasonDisabled = "Disabled"
	// ReasonCredentialsNotReady (False): CredentialsReady has not been reported yet.
	ReasonCredentialsNotReady = "CredentialsNotReady"
	// ReasonNoScopesGranted (False): no scope is granted, so no token can be issued.
	ReasonNoScopesGranted = "NoScopesGranted"
	// ReasonAudienceConflict (False, ScopePolicy): an older policy of the namespace holds the
	// audience; also the reason of the Warning Event.
	ReasonAudienceConflict = "AudienceConflict"
	// ReasonAudienceNotBound (False, ScopePolicy): the audience is not bound to the policy's
	// namespace; also the reason of the Warning Event.
	ReasonAudienceNotBound = "AudienceNotBound"
	// ReasonGrantWithoutNamespace (False, ScopePolicy): a grant stored before every grant had to
	// name a namespace boundary; it matches nothing.
	ReasonGrantWithoutNamespace = "GrantWithoutNamespace"
)

// Reasons of a ScopePolicy's AudienceConflict condition.
const (
	// ReasonAudienceHeld (False): this policy holds its audience.
	ReasonAudienceHeld = "AudienceHeld"
	// ReasonAudienceHeldByOtherPolicy (True): an older policy of the namespace holds it.
	ReasonAudienceHeldByOtherPolicy = "AudienceHeldByOtherPolicy"
)

// ReasonReconciling is the reason of Reconciling=True before Ready has been reported; after
// that, Reconciling and Stalled repeat Ready's reason.
const ReasonReconciling = "Reconciling"

// Keys of the credential Secret (type SecretTypeClientCredentials), which pods mount.
const (
	// CredentialKeyClientID holds the client id.
	CredentialKeyClientID = "client_id"
	// CredentialKeyClientSecret holds the client secret (ClientSecret method only).
	CredentialKeyClientSecret = "client_secret"
	// CredentialKeyTokenURL holds the token endpoint's URL.
	CredentialKeyTokenURL = "token_url"
	// CredentialKeyIssuer holds the token issuer (the "iss" claim; the ServiceAccount token
	// audience of a ServiceAccount-method client).
	CredentialKeyIssuer = "issuer"
	// CredentialKeyScope holds the granted scopes, space-separated.
	CredentialKeyScope = "scope"
	// CredentialKeyAudience holds the audience to ask for when a pod has no preference.
	CredentialKeyAudience = "audience"
	// CredentialKeyCACert holds the token server's CA bundle (PEM), when the controller copies it.
	CredentialKeyCACert = "ca.crt"
)

// Well-known labels, annotations and Secret types.
const (
	// AnnotationRotate requests a secret rotation whenever its value changes (set by users, on
	// the M2MClient).
	AnnotationRotate = "auth.m2m.dev/rotate"
	// AnnotationRevokeTokens revokes every token issued to the client so far whenever its value
	// changes (set by users, on the M2MClient): local verifiers that use the revocation list
	// refuse them within seconds, introspection at once. The value applied is kept in
	// status.revokeTokensHandled and the time in status.tokensRevokedAt.
	AnnotationRevokeTokens = "auth.m2m.dev/revoke-tokens"
	// AnnotationSecretIssuedAt, on the credential Secret, is when its client secret was issued
	// (RFC 3339); the rotation interval counts from it. Written by the controller in the same
	// update as the secret it describes.
	AnnotationSecretIssuedAt = "auth.m2m.dev/secret-issued-at"
	// AnnotationRotateHandled, on the credential Secret, is the AnnotationRotate value the
	// current secret answered. Written by the controller in the same update as the secret.
	AnnotationRotateHandled = "auth.m2m.dev/rotate-handled"
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
