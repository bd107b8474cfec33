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

package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

// credentialsState is how far the credentials phase got in a pass.
type credentialsState int

const (
	// credentialsUnknown: the phase was not reached, or stopped on an error that says nothing
	// about the credentials (a read failed): CredentialsReady keeps what it said.
	credentialsUnknown credentialsState = iota //nolint:unused // the zero value, named so the states read as a list
	// credentialsWritten: both objects hold the decision.
	credentialsWritten
	// credentialsConflict: a Secret this client does not own holds the credential Secret's name.
	credentialsConflict
	// credentialsFailed: a step failed; failure is its CredentialsReady reason.
	credentialsFailed
	// credentialsDeferred: the pass wrote the record alone (a grants-only change) or nothing
	// (the cache is behind); the credential Secret and the status follow in the next pass.
	credentialsDeferred
)

// credentialsOutcome is what the credentials phase records for updateStatus.
type credentialsOutcome struct {
	state    credentialsState
	failure  string
	decision credentialplan.Decision
}

// failureMessages are the CredentialsReady messages of the steps that can fail.
var failureMessages = map[string]string{
	authv1alpha1.ReasonSecretGenerationFailed: "could not generate a client secret; retrying",
	authv1alpha1.ReasonSecretWriteFailed:      "could not write the credential Secret; retrying",
	authv1alpha1.ReasonRecordWriteFailed:      "could not write the credential record; retrying",
}

// failed records that the step reported by reason failed, and returns err.
func (o *credentialsOutcome) failed(reason string, err error) error {
	o.state, o.failure = credentialsFailed, reason
	return err
}

// updateStatus derives the whole status from what the phases recorded in s (cluster-api's
// updateStatus): the client id, the grants, the rotation times and every condition, Ready and
// the kstatus pair (Reconciling, Stalled) included. Called once per pass, from the deferred
// patch, after whatever phase ended the pass. A deferred pass leaves the status as it is.
func (r *M2MClientReconciler) updateStatus(s *clientScope) {
	c := s.client
	// Even in a deferred pass: the record holding the revocation is written, and the next pass
	// must not revoke again at a later time.
	if s.revocationWritten {
		setRevocationStatus(c, s.revocation)
	}
	if s.credentials.state == credentialsDeferred {
		return
	}
	c.Status.ObservedGeneration = c.Generation
	if s.clientID != "" {
		c.Status.ClientID = s.clientID
	}
	c.Status.SecretName = secretNameOf(c)
	if s.resolved {
		c.Status.GrantedScopes = s.resolution.Granted
		c.Status.DeniedScopes = s.resolution.Denied
		c.Status.Audiences = s.resolution.Audiences
		setScopesCondition(s)
	}
	if s.credentials.state == credentialsWritten {
		setRotationStatus(c, s.credentials.decision)
	}
	r.setCredentialsReady(s)
	setReady(s)
	setHealth(&c.Status.Conditions, c.Generation)
}

func (s *clientScope) setCondition(typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.client.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.client.Generation,
	})
}

// setScopesCondition reports what the client's own requests and the policies granting it say,
// never whether other teams have policies (that is not this client's business).
func setScopesCondition(s *clientScope) {
	res := s.resolution
	switch {
	case len(s.client.Spec.Scopes) == 0:
		s.setCondition(authv1alpha1.ConditionScopesGranted, metav1.ConditionFalse, authv1alpha1.ReasonNoScopesRequested,
			"spec.scopes is empty: request the scopes this client needs")
	case len(res.Denied) == 0:
		s.setCondition(authv1alpha1.ConditionScopesGranted, metav1.ConditionTrue, authv1alpha1.ReasonAllGranted,
			fmt.Sprintf("every requested scope is granted (audiences: %s)", joinOrNone(res.Audiences)))
	case len(res.Granted) == 0:
		s.setCondition(authv1alpha1.ConditionScopesGranted, metav1.ConditionFalse, authv1alpha1.ReasonNotGranted,
			fmt.Sprintf("no ScopePolicy grants this client the requested scopes; denied: %s (ask the API's owner to add a grant)", joinOrNone(res.Denied)))
	default:
		s.setCondition(authv1alpha1.ConditionScopesGranted, metav1.ConditionFalse, authv1alpha1.ReasonPartiallyGranted,
			fmt.Sprintf("some requested scopes are not granted by any ScopePolicy; denied: %s", joinOrNone(res.Denied)))
	}
}

// setRevocationStatus records the revoke-tokens value applied and when.
func setRevocationStatus(c *authv1alpha1.M2MClient, d credentialplan.Revocation) {
	c.Status.RevokeTokensHandled = d.Handled
	c.Status.TokensRevokedAt = nil
	if !d.RevokedAt.IsZero() {
		t := metav1.NewTime(d.RevokedAt)
		c.Status.TokensRevokedAt = &t
	}
}

// setRotationStatus reports when the written secret was issued, the rotate value it answers,
// and when the interval rotates it.
func setRotationStatus(c *authv1alpha1.M2MClient, d credentialplan.Decision) {
	c.Status.SecretRotatedAt, c.Status.NextRotationAt, c.Status.RotateHandled = nil, nil, ""
	if d.Secret == "" {
		return
	}
	c.Status.RotateHandled = credentialplan.HandledValue(d.RotateHandled)
	issued := metav1.NewTime(d.IssuedAt).Rfc3339Copy()
	c.Status.SecretRotatedAt = &issued
	if !d.NextRotation.IsZero() {
		next := metav1.NewTime(d.NextRotation).Rfc3339Copy()
		c.Status.NextRotationAt = &next
	}
}

// setCredentialsReady reports the credentials: a missing CA, a name conflict or a failed step
// first, then, once the Secrets are written, what keeps the client from authenticating (its
// ServiceAccount or JWKS) or that they are in place. When the pass learnt nothing about them,
// the condition keeps what it said.
func (r *M2MClientReconciler) setCredentialsReady(s *clientScope) {
	c := s.client
	notReady := func(reason, msg string) {
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, reason, msg)
	}
	var notFound *jwksNotFoundError
	switch out := s.credentials; {
	case s.waitingForCA:
		notReady(authv1alpha1.ReasonWaitingForCA,
			"the token server's CA has not been issued yet; the credential Secret is written once it has (the token server meanwhile follows this client's grants and spec.disabled)")
	case out.state == credentialsConflict:
		notReady(authv1alpha1.ReasonSecretNameConflict,
			fmt.Sprintf("Secret %s/%s exists and is not owned by this M2MClient (another object's, or its ownerReference was removed), so it is left untouched: delete it (checked again every 10s), or create a new M2MClient with a free spec.secretName. "+
				"Meanwhile the token server follows this client's grants and spec.disabled, and accepts only credentials delivered before; no secret is issued or rotated", c.Namespace, secretNameOf(c)))
	case out.state == credentialsFailed:
		notReady(out.failure, failureMessages[out.failure])
	case out.state != credentialsWritten:
	case s.serviceAccountMissing:
		notReady(authv1alpha1.ReasonServiceAccountNotFound,
			fmt.Sprintf("ServiceAccount %s/%s does not exist, so no pod can present its token: create it, or fix spec.authentication.serviceAccountName", c.Namespace, c.Spec.Authentication.ServiceAccountName))
	case errors.As(s.jwksErr, &notFound):
		notReady(authv1alpha1.ReasonJWKSNotFound, fmt.Sprintf("%v; every assertion is refused until it is there", s.jwksErr))
	case s.jwksErr != nil:
		notReady(authv1alpha1.ReasonInvalidJWKS,
			fmt.Sprintf("the JWKS of %s cannot be used: %v; every assertion is refused until it is fixed", s.jwksSource, s.jwksErr))
	default:
		reason, msg := r.credentialsIssued(s, out.decision)
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionTrue, reason, msg)
	}
}

// credentialsIssued is the reason and message of CredentialsReady=True: what the credential
// Secret holds, and a repair this pass or an earlier one of this generation made.
func (r *M2MClientReconciler) credentialsIssued(s *clientScope, d credentialplan.Decision) (reason, msg string) {
	c := s.client
	msg = fmt.Sprintf("credential Secret %s holds client_id and client_secret", secretNameOf(c))
	switch c.Spec.EffectiveMethod() {
	case authv1alpha1.AuthServiceAccount:
		msg = fmt.Sprintf("credential Secret %s holds client_id (no secret: the client presents a token of ServiceAccount %s with audience %s)", secretNameOf(c), c.Spec.Authentication.ServiceAccountName, r.Issuer)
	case authv1alpha1.AuthPrivateKeyJWT:
		msg = fmt.Sprintf("credential Secret %s holds client_id (no secret: the client signs assertions with a private key of the JWKS in %s)", secretNameOf(c), s.jwksSource)
	}
	switch prev := reportedRepair(c); {
	case d.Repair():
		return d.Reason, fmt.Sprintf("%s; at %s %s", msg, s.now.UTC().Format(time.RFC3339), d.Note)
	case d.Reason == "" && prev != nil:
		return prev.Reason, prev.Message
	}
	return authv1alpha1.ReasonCredentialsIssued, msg
}

// reportedRepair returns the CredentialsReady condition when it reports a repair (a record
// rebuilt, a Secret recreated) of this generation: the reason stays until the spec changes or
// the secret is issued again, so that a repair the controller finished in milliseconds is
// still visible on the object, not only in an Event.
func reportedRepair(c *authv1alpha1.M2MClient) *metav1.Condition {
	cond := meta.FindStatusCondition(c.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason == authv1alpha1.ReasonCredentialsIssued || cond.ObservedGeneration != c.Generation {
		return nil
	}
	return cond
}

// setReady summarises: Ready means the client is as its spec declares: it can get a token now,
// or it is disabled (a settled state Git chose, so healthy). A credentials problem is Ready's
// reason too. The grants are read from the status, which updateStatus set from this pass's
// resolution, or which still holds the last one when the policies could not be listed: a
// failed list says nothing about the grants, so it must not report NoScopesGranted (Stalled).
func setReady(s *clientScope) {
	creds := meta.FindStatusCondition(s.client.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
	switch {
	case creds == nil || creds.Status != metav1.ConditionTrue:
		reason, msg := authv1alpha1.ReasonCredentialsNotReady, "credentials are not ready yet"
		if creds != nil {
			reason, msg = creds.Reason, creds.Message
		}
		s.setCondition(authv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	case s.client.Spec.Disabled:
		s.setCondition(authv1alpha1.ConditionReady, metav1.ConditionTrue, authv1alpha1.ReasonDisabled,
			"spec.disabled is true, as declared: the token server refuses this client; set it to false to resume")
	case len(s.client.Status.GrantedScopes) == 0:
		s.setCondition(authv1alpha1.ConditionReady, metav1.ConditionFalse, authv1alpha1.ReasonNoScopesGranted,
			"no scope is granted, so no token can be issued; see the ScopesGranted condition")
	default:
		s.setCondition(authv1alpha1.ConditionReady, metav1.ConditionTrue, authv1alpha1.ReasonReady,
			fmt.Sprintf("tokens can be issued for %s", joinOrNone(s.client.Status.Audiences)))
	}
}

// joinOrNone lists items for a message, "none" when there are none.
func joinOrNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
