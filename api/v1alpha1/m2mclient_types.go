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

// ScopeToken is one OAuth 2.0 scope (RFC 6749 §3.3 scope-token): printable ASCII without space,
// double quote or backslash.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[]-~!#-[]+$')",message="must be an RFC 6749 scope-token: printable ASCII without spaces, double quotes or backslashes (e.g. invoices:read)"
type ScopeToken string

// Audience names one API (the JWT "aud" claim): printable ASCII without spaces.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="must be a non-empty token of printable ASCII without spaces (e.g. billing.billing)"
type Audience string

// AuthenticationMethod is how a client proves its identity to the token server.
// +kubebuilder:validation:Enum=ClientSecret;PrivateKeyJWT;ServiceAccount
type AuthenticationMethod string

const (
	// AuthClientSecret authenticates with a generated client secret (client_secret_basic/post).
	AuthClientSecret AuthenticationMethod = "ClientSecret"
	// AuthPrivateKeyJWT authenticates with an RFC 7523 assertion signed by the client's own key.
	AuthPrivateKeyJWT AuthenticationMethod = "PrivateKeyJWT"
	// AuthServiceAccount authenticates with a projected Kubernetes ServiceAccount token.
	AuthServiceAccount AuthenticationMethod = "ServiceAccount"
)

// EffectiveMethod is spec.authentication.method, or ClientSecret (the default) when it is unset.
func (s *M2MClientSpec) EffectiveMethod() AuthenticationMethod {
	if s.Authentication == nil || s.Authentication.Method == "" {
		return AuthClientSecret
	}
	return s.Authentication.Method
}

// Authentication selects how the client authenticates to the token server.
// +kubebuilder:validation:XValidation:rule="(has(self.method) && self.method == 'ServiceAccount') == (has(self.serviceAccountName) && size(self.serviceAccountName) > 0)",message="spec.authentication.serviceAccountName is required when method is ServiceAccount, and must be omitted for any other method"
// +kubebuilder:validation:XValidation:rule="!(has(self.method) && self.method == 'PrivateKeyJWT') || ((has(self.jwks) && size(self.jwks) > 0) != has(self.jwksFrom))",message="method PrivateKeyJWT needs the client's public keys in exactly one of spec.authentication.jwks (an inline JWKS document) or spec.authentication.jwksFrom (a Secret or ConfigMap key holding it)"
// +kubebuilder:validation:XValidation:rule="(has(self.method) && self.method == 'PrivateKeyJWT') || (!(has(self.jwks) && size(self.jwks) > 0) && !has(self.jwksFrom))",message="spec.authentication.jwks and spec.authentication.jwksFrom are only for method PrivateKeyJWT: remove them, or set method: PrivateKeyJWT"
type Authentication struct {
	// Method is ClientSecret (default), PrivateKeyJWT or ServiceAccount.
	// +kubebuilder:default=ClientSecret
	// +optional
	Method AuthenticationMethod `json:"method,omitempty"`

	// ServiceAccountName is the ServiceAccount (in the client's namespace) whose projected token
	// authenticates the client. Required exactly when method is ServiceAccount.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// JWKS holds the client's public keys, as a JSON Web Key Set document (RFC 7517), for the
	// PrivateKeyJWT method: the client signs its RFC 7523 assertions with the matching private
	// key, which never leaves it. Keys must be public EC P-256 (ES256), Ed25519 (EdDSA, also
	// named Ed25519) or RSA of at least 2048 bits (RS256, PS256). For method PrivateKeyJWT, set exactly one of jwks and
	// jwksFrom.
	// +kubebuilder:validation:MaxLength=32768
	// +kubebuilder:validation:XValidation:rule="self.trim().startsWith('{') && self.trim().endsWith('}')",message="spec.authentication.jwks must be a JWKS document: a JSON object with a keys array of public JWKs"
	// +optional
	JWKS string `json:"jwks,omitempty"`

	// JWKSFrom reads the client's public keys (the same JWKS document as jwks) from a key of a
	// Secret or ConfigMap in the client's namespace, so that the keys can be managed apart from
	// the M2MClient. The referenced object must carry the label auth.m2m.dev/jwks=true: the
	// controller watches only objects so labelled, and picks up a change at once. For method
	// PrivateKeyJWT, set exactly one of jwks and jwksFrom.
	// +optional
	JWKSFrom *JWKSSource `json:"jwksFrom,omitempty"`
}

// JWKSSource names the Secret or ConfigMap key (in the client's namespace) that holds the
// client's JWKS document. Exactly one of secretKeyRef and configMapKeyRef is set.
// +kubebuilder:validation:XValidation:rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",message="spec.authentication.jwksFrom must set exactly one of secretKeyRef or configMapKeyRef"
type JWKSSource struct {
	// SecretKeyRef selects a key of a Secret in the client's namespace.
	// +optional
	SecretKeyRef *KeyReference `json:"secretKeyRef,omitempty"`

	// ConfigMapKeyRef selects a key of a ConfigMap in the client's namespace.
	// +optional
	ConfigMapKeyRef *KeyReference `json:"configMapKeyRef,omitempty"`
}

// KeyReference selects one key of a Secret or ConfigMap in the client's namespace. (Not
// corev1.SecretKeySelector: its name may be empty and its optional flag makes no sense for
// the keys that authenticate a client.)
type KeyReference struct {
	// Name of the Secret or ConfigMap, in the client's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="jwksFrom name must be a DNS-1123 subdomain (the name of a Secret or ConfigMap): lowercase letters, digits, '-' and '.'"
	Name string `json:"name"`

	// Key within the object's data that holds the JWKS document, e.g. jwks.json.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="jwksFrom key must be a valid Secret or ConfigMap key: letters, digits, '-', '_' and '.' (e.g. jwks.json)"
	Key string `json:"key"`
}

// SecretRotation schedules automatic client-secret rotation.
type SecretRotation struct {
	// Interval between automatic rotations; 0 turns automatic rotation off.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || duration(self) >= duration('1h')",message="spec.secretRotation.interval must be 0 (off) or at least 1h"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// GracePeriod during which the previous secret is still accepted after a rotation.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('168h')",message="spec.secretRotation.gracePeriod must be between 10s and 168h (7 days)"
	// +optional
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`
}

// M2MClientSpec is what a client team declares for one machine identity.
type M2MClientSpec struct {
	// DisplayName is a human-readable name.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// Scopes the client requests. A scope is granted only if a ScopePolicy also grants it.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Scopes []ScopeToken `json:"scopes,omitempty"`

	// Audiences restricts which APIs the client wants tokens for. Empty means every audience
	// whose policy grants it at least one scope.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	Audiences []Audience `json:"audiences,omitempty"`

	// SecretName is the credential Secret written in this namespace. Default: <name>-m2m.
	// Immutable, also from unset to set: the Secret a client's credentials go to is decided once.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.secretName must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// Authentication selects how the client authenticates. Default: ClientSecret.
	// +optional
	Authentication *Authentication `json:"authentication,omitempty"`

	// TokenTTL is the lifetime of issued access tokens (1m to 24h), capped by the audience's
	// maxTokenTTL and the server maximum. Default: the server's default.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="spec.tokenTTL must be between 1m and 24h"
	// +optional
	TokenTTL *metav1.Duration `json:"tokenTTL,omitempty"`

	// SecretRotation schedules automatic rotation of the client secret.
	// +optional
	SecretRotation *SecretRotation `json:"secretRotation,omitempty"`

	// Disabled stops token issuance at once while keeping the object and its credentials.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// Claims are extra string claims copied into every access token. Names are printable ASCII
	// without spaces, quotes or backslashes; reserved names (every claim the server emits, the
	// registered JWT and RFC 9068 claims: see ReservedClaims) are refused in any letter case, and
	// no two names may differ only in letter case.
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() >= 1 && k.size() <= 64 && size(self[k]) <= 256)",message="spec.claims keys must be 1-64 characters and values at most 256 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[]-~!#-[]+$'))",message="spec.claims names must be printable ASCII without spaces, double quotes or backslashes (e.g. team)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['iss','sub','aud','exp','nbf','iat','jti','scope','client_id','namespace','cnf','auth_time','acr','amr','roles','groups','entitlements','act','may_act','azp']))",message="spec.claims must not set a reserved claim name, in any letter case: iss, sub, aud, exp, nbf, iat, jti, scope, client_id, namespace, cnf, auth_time, acr, amr, roles, groups, entitlements, act, may_act, azp"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self.all(j, j == k || j.lowerAscii() != k.lowerAscii()))",message="spec.claims must not hold two names that differ only in letter case (e.g. team and Team)"
	// +optional
	Claims map[string]string `json:"claims,omitempty"`

	// TokenBinding, when DPoP, makes the client get only DPoP-bound tokens (RFC 9449): the
	// token server refuses its token requests without a DPoP proof, so a leaked credential
	// cannot mint bearer tokens either. Omitted: the client chooses per request, unless an
	// audience's ScopePolicy requires binding (spec.tokenBinding: Required), which this field
	// cannot lift.
	// +optional
	TokenBinding TokenBinding `json:"tokenBinding,omitempty"`
}

// TokenBinding is the proof of possession a client's tokens are bound to.
// +kubebuilder:validation:Enum=DPoP
type TokenBinding string

// TokenBindingDPoP binds tokens to the client's DPoP key (RFC 9449).
const TokenBindingDPoP TokenBinding = "DPoP"

// M2MClientStatus is what the controller observed and decided.
type M2MClientStatus struct {
	// ClientID is derived from the namespace and name, so it stays the same when the object is
	// deleted and created again (kubectl replace --force, a cluster rebuilt from Git, a restore);
	// it never changes for an object's life.
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// SecretName is the credential Secret the controller writes.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// GrantedScopes are the requested scopes that some audience's policy grants.
	// +optional
	GrantedScopes []string `json:"grantedScopes,omitempty"`

	// DeniedScopes are the requested scopes that no policy grants.
	// +optional
	DeniedScopes []string `json:"deniedScopes,omitempty"`

	// Audiences the client can get tokens for.
	// +optional
	Audiences []string `json:"audiences,omitempty"`

	// SecretRotatedAt is when the current client secret was issued.
	// +optional
	SecretRotatedAt *metav1.Time `json:"secretRotatedAt,omitempty"`

	// NextRotationAt is when the next automatic rotation is due, if automatic rotation is on.
	// +optional
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty"`

	// RotateHandled is the auth.m2m.dev/rotate value the current secret answers (its SHA-256
	// when longer than 128 characters): a requested rotation is done once it equals the
	// annotation, which one who may not read the credential Secret can see here.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RotateHandled string `json:"rotateHandled,omitempty"`

	// TokensRevokedAt is when the auth.m2m.dev/revoke-tokens annotation last revoked the
	// client's tokens: every token issued before it is refused.
	// +optional
	TokensRevokedAt *metav1.Time `json:"tokensRevokedAt,omitempty"`

	// RevokeTokensHandled is the auth.m2m.dev/revoke-tokens value last applied (its SHA-256
	// when longer than 128 characters), so that each new value revokes once.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	RevokeTokensHandled string `json:"revokeTokensHandled,omitempty"`

	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, CredentialsReady, ScopesGranted.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=m2mc;m2mclient,categories=m2m
// +kubebuilder:printcolumn:name="ClientID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Scopes",type=string,JSONPath=`.status.grantedScopes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="(has(self.spec) && has(self.spec.secretName) ? self.spec.secretName : self.metadata.name + '-m2m') == (has(oldSelf.spec) && has(oldSelf.spec.secretName) ? oldSelf.spec.secretName : oldSelf.metadata.name + '-m2m')",message="spec.secretName is immutable (also from unset, which means <name>-m2m); create a new M2MClient to use another Secret",fieldPath=".spec.secretName",reason=FieldValueForbidden

// M2MClient is one machine identity: the controller gives it a client id and credentials, and the
// token server issues it access tokens for the scopes that both it and an API's policy agree on.
type M2MClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec M2MClientSpec `json:"spec,omitempty"`
	// +optional
	Status M2MClientStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// M2MClientList contains a list of M2MClient.
type M2MClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []M2MClient `json:"items"`
}
