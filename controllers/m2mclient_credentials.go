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
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

const noteRecordUnreadable = "the credential record was unreadable (corrupted or edited by hand): rebuilt from the credential Secret (no rotation); " +
	"until then the token server refused this client"

// secretPlan is the outcome of deciding what the client secret is after this reconcile.
type secretPlan struct {
	secret        string // plaintext, in memory only; empty for secretless methods
	issuedAt      time.Time
	rotateHandled string
	// previous are older hashes still accepted until their NotAfter.
	previous []credential.SecretHash
	// carry, when set, replaces secret and previous: the record keeps exactly the hashes
	// carried (see followRecord).
	carry   bool
	carried []credential.SecretHash
	// eventType, reason, note describe what happened, when something did.
	eventType, reason, note string
}

// credentialState is what exists now: the credential Secret (nil if absent), the record Secret
// (nil if absent) and its document (nil if absent or unreadable).
type credentialState struct {
	cred, recObj *corev1.Secret
	rec          *credential.Record
}

// credentialChange is a decided plan with the objects it needs written.
type credentialChange struct {
	plan                secretPlan
	record, credSecret  *corev1.Secret
	writeRec, writeCred bool
}

// reconcileCredentials decides from the cache and, when a write would change existing secret
// material (a secret rotated, revoked or repaired), decides again from live reads: a decision
// taken on a stale cache could revoke a secret just delivered. Two kinds of change skip the live
// reads: writes that carry the cached secret material over unchanged (grants, scopes, claims,
// CA bundle), each guarded by the cached resourceVersion so that a stale cache fails with a
// conflict instead of overwriting newer secrets; and the first issuance, which only creates.
// A policy edit then costs one write per object, and a new client no extra reads.
// The record is written first and the credential Secret second: whichever write a crash
// interrupts, the next reconcile finds a state from which it can finish without losing an
// accepted secret.
func (r *M2MClientReconciler) reconcileCredentials(ctx context.Context, s *clientScope) error {
	if s.waitingForCA {
		if err := r.followRecord(ctx, s); err != nil {
			return err
		}
		return errWaitingForCA
	}
	ch, st, err := r.decideCredentials(ctx, s, r.Client)
	if err == errConflict {
		return r.followConflict(ctx, s)
	}
	if err != nil {
		return err
	}
	keeps := keepsSecretMaterial(st, ch)
	if (ch.writeRec || ch.writeCred) && !keeps && !createsBoth(st) {
		ch, st, err = r.decideCredentials(ctx, s, r.APIReader)
		if err == errConflict {
			return r.followConflict(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	if keeps && ch.writeRec && ch.writeCred && st.rec.Disabled == s.client.Spec.Disabled {
		// A grants-only change (a policy edit reaches every client it names): the record is
		// what the token server enforces, so every affected record is written in a first pass
		// and the credential Secret's informational keys and the status follow in a second.
		// A revocation then reaches the token server after one write per client, not three.
		ch.writeCred = false
		s.recordOnly = true
	}
	if err := r.writeCredentials(ctx, s, st, ch); err != nil {
		if err == errConflict {
			// A record, if there is one, was written first: it follows the spec and the grants.
			s.requeueAt(s.now.Add(conflictRecheck))
			return nil
		}
		return err
	}
	if s.recordOnly {
		return nil
	}
	r.recordEvents(s.client, st.rec, ch.plan)
	r.setCredentialStatus(s, ch.plan)
	return nil
}

// decideCredentials reads the current state through reader and decides what it should become.
// errConflict means a Secret this client does not own holds the name (already reported in the
// conditions).
func (r *M2MClientReconciler) decideCredentials(ctx context.Context, s *clientScope, reader client.Reader) (*credentialChange, credentialState, error) {
	c := s.client
	var st credentialState
	var err error
	st.cred, err = r.credentialSecret(ctx, reader, c)
	if err == errConflict {
		setNameConflict(s)
		return nil, st, errConflict
	}
	if err != nil {
		return nil, st, err
	}
	if st.recObj, st.rec, err = r.record(ctx, reader, c); err != nil {
		return nil, st, err
	}
	plan, err := r.planSecret(s, st.cred, st.recObj, st.rec)
	if err != nil {
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonSecretGenerationFailed, "could not generate a client secret; retrying")
		return nil, st, err
	}
	ch := &credentialChange{plan: plan}
	if ch.record, err = r.desiredRecordSecret(s, plan); err != nil {
		return nil, st, err
	}
	if ch.credSecret, err = r.desiredCredentialSecret(s, plan); err != nil {
		return nil, st, err
	}
	ch.writeRec = st.recObj == nil || !secretMatches(st.recObj, ch.record)
	ch.writeCred = st.cred == nil || !secretMatches(st.cred, ch.credSecret)
	return ch, st, nil
}

// createsBoth reports whether the cache holds neither Secret, so the change only creates: a
// create cannot overwrite anything (a stale cache, or a foreign Secret holding the name, meets
// AlreadyExists).
func createsBoth(st credentialState) bool {
	return st.cred == nil && st.recObj == nil
}

// keepsSecretMaterial reports whether the change rewrites both objects in place with exactly the
// secret material they already hold: the same accepted hashes (with the same expiries) in the
// record, the same client secret and rotation bookkeeping in the credential Secret, and no
// object created or replaced.
func keepsSecretMaterial(st credentialState, ch *credentialChange) bool {
	if st.cred == nil || st.recObj == nil || st.rec == nil || ch.plan.reason != "" {
		return false
	}
	if st.cred.Type != ch.credSecret.Type || st.recObj.Type != ch.record.Type {
		return false
	}
	desired, err := credential.DecodeRecord(ch.record.Data[credential.RecordKey])
	if err != nil || !sameHashes(desired.Secrets, st.rec.Secrets) {
		return false
	}
	return bytes.Equal(st.cred.Data[authv1alpha1.CredentialKeyClientSecret], ch.credSecret.Data[authv1alpha1.CredentialKeyClientSecret]) &&
		maps.Equal(st.cred.Annotations, ch.credSecret.Annotations)
}

// sameHashes reports whether a and b list the same hashes with the same expiries, in order.
func sameHashes(a, b []credential.SecretHash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].SHA256 != b[i].SHA256 || (a[i].NotAfter == nil) != (b[i].NotAfter == nil) ||
			(a[i].NotAfter != nil && !a[i].NotAfter.Equal(*b[i].NotAfter)) {
			return false
		}
	}
	return true
}

func (r *M2MClientReconciler) writeCredentials(ctx context.Context, s *clientScope, st credentialState, ch *credentialChange) error {
	if createsBoth(st) {
		return r.createCredentials(ctx, s, ch)
	}
	if ch.writeRec {
		if err := r.writeRecord(ctx, s, st.recObj, ch.record); err != nil {
			return err
		}
	}
	if ch.writeCred {
		err := r.apply(ctx, st.cred, ch.credSecret)
		if err == errConflict {
			setNameConflict(s)
			return errConflict
		}
		if err != nil {
			s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonSecretWriteFailed, "could not write the credential Secret; retrying")
			return err
		}
	}
	return nil
}

// createCredentials issues a new client's first secret. The credential Secret is created first:
// its create is the check that no foreign Secret holds the name (nothing is written when one
// does), and a crash before the record is written leaves a state the next reconcile repairs by
// rebuilding the record from the credential Secret, without losing the secret.
func (r *M2MClientReconciler) createCredentials(ctx context.Context, s *clientScope, ch *credentialChange) error {
	err := r.apply(ctx, nil, ch.credSecret)
	if err == errConflict {
		setNameConflict(s)
		return errConflict
	}
	if err != nil {
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonSecretWriteFailed, "could not write the credential Secret; retrying")
		return err
	}
	return r.writeRecord(ctx, s, nil, ch.record)
}

func setNameConflict(s *clientScope) {
	c := s.client
	s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonSecretNameConflict,
		fmt.Sprintf("Secret %s/%s exists and is not owned by this M2MClient (another object's, or its ownerReference was removed), so it is left untouched: delete it (checked again every 10s), or create a new M2MClient with a free spec.secretName. "+
			"Meanwhile the token server follows this client's grants and spec.disabled, and accepts only credentials delivered before; no secret is issued or rotated", c.Namespace, secretNameOf(c)))
}

// conflictRecheck is how often a client whose credential Secret name is held by a Secret it does
// not own looks again: the Secret's removal sends no event the controller sees (its cache holds
// only Secrets the controller wrote, and a Secret without this client's ownerReference maps to
// no client), so the conflict would otherwise last until the M2MClient is touched.
const conflictRecheck = 10 * time.Second

// followConflict is followRecord for a name conflict, checked again after conflictRecheck.
func (r *M2MClientReconciler) followConflict(ctx context.Context, s *clientScope) error {
	s.requeueAt(s.now.Add(conflictRecheck))
	return r.followRecord(ctx, s)
}

// followRecord keeps the record, which is what the token server obeys, in line with the spec and
// the grants while the credential Secret cannot be written (a Secret this client does not own
// holds its name, or the token server's CA is not issued yet): grants, disabled, claims, token
// TTL and keys follow at once, so that no state of the credential Secret can freeze a
// revocation. The secret hashes the record holds are carried over (a grace period still ends on
// time); nothing new is issued, since it could not be delivered. A client that has no record
// gets none: nothing was ever delivered to it; an unreadable record is left to the token
// server, which refuses it.
func (r *M2MClientReconciler) followRecord(ctx context.Context, s *clientScope) error {
	recObj, rec, err := r.record(ctx, r.Client, s.client)
	if err != nil || rec == nil {
		// No record, or an unreadable one, which the token server refuses (fail closed).
		return err
	}
	plan := secretPlan{carry: true, carried: stillAccepted(rec.Secrets, s.now)}
	for _, h := range plan.carried {
		if h.NotAfter != nil {
			s.requeueAt(*h.NotAfter)
		}
	}
	desired, err := r.desiredRecordSecret(s, plan)
	if err != nil {
		return err
	}
	if err := r.apply(ctx, recObj, desired); err != nil {
		return fmt.Errorf("updating the credential record while the credential Secret cannot be written: %w", err)
	}
	return nil
}

// stillAccepted keeps the hashes without an expiry or whose grace period is still running.
func stillAccepted(hashes []credential.SecretHash, now time.Time) []credential.SecretHash {
	out := make([]credential.SecretHash, 0, len(hashes))
	for _, h := range hashes {
		if h.NotAfter == nil || now.Before(*h.NotAfter) {
			out = append(out, h)
		}
	}
	return out
}

// planSecret decides the client secret: keep it, issue the first one, repair after a deletion
// or an edit (revoking the old one at once: it may have leaked), or rotate (keeping the old
// one for the grace period).
func (r *M2MClientReconciler) planSecret(s *clientScope, cred *corev1.Secret, recObj *corev1.Secret, rec *credential.Record) (secretPlan, error) {
	c := s.client
	plan := secretPlan{issuedAt: s.now, rotateHandled: c.Annotations[authv1alpha1.AnnotationRotate]}
	if c.Spec.EffectiveMethod() != authv1alpha1.AuthClientSecret {
		if recObj != nil && rec == nil {
			plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordUnreadable, noteRecordUnreadable
		}
		return plan, nil
	}
	current := ""
	if cred != nil {
		current = string(cred.Data[authv1alpha1.CredentialKeyClientSecret])
	}
	switch {
	case cred == nil && recObj == nil:
		plan.eventType, plan.reason, plan.note = corev1.EventTypeNormal, authv1alpha1.ReasonCredentialsCreated, "issued the first client secret"
		return plan.withNewSecret()
	case cred == nil:
		plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretRecreated,
			"the credential Secret was deleted: a new client secret was issued and the old one revoked at once"
		return plan.withNewSecret()
	case credential.ValidateSecret(current) != nil:
		plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretRepaired,
			"the credential Secret's client_secret was missing or malformed: a new client secret was issued and the old one revoked at once"
		return plan.withNewSecret()
	case rec != nil && !hasHash(rec, credential.HashSecret(current)):
		plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretEdited,
			"the credential Secret's client_secret was edited: a new client secret was issued and every other one revoked"
		return plan.withNewSecret()
	}

	// The current secret stands; carry over its bookkeeping and unexpired previous hashes.
	plan.secret = current
	plan.issuedAt = parseTime(cred.Annotations[authv1alpha1.AnnotationSecretIssuedAt], s.now)
	plan.rotateHandled = cred.Annotations[authv1alpha1.AnnotationRotateHandled]
	switch {
	case rec == nil && recObj != nil:
		plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordUnreadable, noteRecordUnreadable
	case rec == nil:
		plan.eventType, plan.reason, plan.note = corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordRebuilt,
			"the credential record was missing: rebuilt from the credential Secret (no rotation)"
	default:
		plan.previous = unexpiredPrevious(rec, credential.HashSecret(current), s.now)
	}
	return r.maybeRotate(s, plan)
}

// maybeRotate rotates when the rotate annotation changed or the interval has passed.
func (r *M2MClientReconciler) maybeRotate(s *clientScope, plan secretPlan) (secretPlan, error) {
	c := s.client
	requested := c.Annotations[authv1alpha1.AnnotationRotate]
	manual := requested != plan.rotateHandled
	interval, grace := rotationSettings(c)
	due := interval > 0 && !s.now.Before(plan.issuedAt.Add(interval))
	if !manual && !due {
		return plan, nil
	}
	notAfter := metav1.NewTime(s.now.Add(grace)).Rfc3339Copy().Time
	plan.previous = append(plan.previous, credential.SecretHash{SHA256: credential.HashSecret(plan.secret).String(), NotAfter: &notAfter})
	plan.issuedAt = s.now
	plan.rotateHandled = requested
	plan.eventType, plan.reason = corev1.EventTypeNormal, authv1alpha1.ReasonSecretRotated
	plan.note = fmt.Sprintf("rotated the client secret (%s); the previous one is accepted until %s", map[bool]string{true: "requested by annotation", false: "interval elapsed"}[manual], notAfter.Format(time.RFC3339))
	if err := plan.newSecret(); err != nil {
		return plan, err
	}
	return plan, nil
}

func (p secretPlan) withNewSecret() (secretPlan, error) {
	p.previous = nil
	err := p.newSecret()
	return p, err
}

func (p *secretPlan) newSecret() error {
	sec, err := credential.NewSecret()
	if err != nil {
		return fmt.Errorf("generating client secret: %w", err)
	}
	p.secret = sec
	return nil
}

func rotationSettings(c *authv1alpha1.M2MClient) (interval, grace time.Duration) {
	grace = time.Hour
	if r := c.Spec.SecretRotation; r != nil {
		if r.Interval != nil {
			interval = r.Interval.Duration
		}
		if r.GracePeriod != nil {
			grace = r.GracePeriod.Duration
		}
	}
	return interval, grace
}

func hasHash(rec *credential.Record, h credential.Hash) bool {
	for _, sh := range rec.Secrets {
		if other, err := credential.ParseHash(sh.SHA256); err == nil && other.Equal(h) {
			return true
		}
	}
	return false
}

// unexpiredPrevious keeps the record's previous hashes whose grace period is still running.
func unexpiredPrevious(rec *credential.Record, current credential.Hash, now time.Time) []credential.SecretHash {
	var out []credential.SecretHash
	for _, sh := range rec.Secrets {
		if sh.NotAfter == nil || !now.Before(*sh.NotAfter) || sh.SHA256 == current.String() {
			continue
		}
		out = append(out, sh)
	}
	return out
}

func parseTime(s string, fallback time.Time) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fallback
	}
	return t
}

func (r *M2MClientReconciler) recordEvents(c *authv1alpha1.M2MClient, prev *credential.Record, plan secretPlan) {
	if plan.reason != "" {
		r.Recorder.Eventf(c, nil, plan.eventType, plan.reason, "Reconcile", "%s", plan.note)
	}
	wasDisabled := prev != nil && prev.Disabled
	switch {
	case c.Spec.Disabled && !wasDisabled && prev != nil:
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, authv1alpha1.ReasonDisabled, "Reconcile", "token issuance stopped: spec.disabled is true")
	case !c.Spec.Disabled && wasDisabled:
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, authv1alpha1.ReasonEnabled, "Reconcile", "token issuance resumed")
	}
}

func (r *M2MClientReconciler) setCredentialStatus(s *clientScope, plan secretPlan) {
	c := s.client
	c.Status.SecretRotatedAt, c.Status.NextRotationAt = nil, nil
	if plan.secret != "" {
		issued := metav1.NewTime(plan.issuedAt).Rfc3339Copy()
		c.Status.SecretRotatedAt = &issued
		if interval, _ := rotationSettings(c); interval > 0 {
			next := metav1.NewTime(plan.issuedAt.Add(interval)).Rfc3339Copy()
			c.Status.NextRotationAt = &next
			s.requeueAt(next.Time)
		}
	}
	for _, p := range plan.previous {
		if p.NotAfter != nil {
			s.requeueAt(*p.NotAfter)
		}
	}
	var notFound *jwksNotFoundError
	switch {
	case s.serviceAccountMissing:
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonServiceAccountNotFound,
			fmt.Sprintf("ServiceAccount %s/%s does not exist, so no pod can present its token: create it, or fix spec.authentication.serviceAccountName", c.Namespace, c.Spec.Authentication.ServiceAccountName))
		return
	case errors.As(s.jwksErr, &notFound):
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonJWKSNotFound,
			fmt.Sprintf("%v; every assertion is refused until it is there", s.jwksErr))
		return
	case s.jwksErr != nil:
		s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionFalse, authv1alpha1.ReasonInvalidJWKS,
			fmt.Sprintf("the JWKS of %s cannot be used: %v; every assertion is refused until it is fixed", s.jwksSource, s.jwksErr))
		return
	}
	msg := fmt.Sprintf("credential Secret %s holds client_id and client_secret", secretNameOf(c))
	switch c.Spec.EffectiveMethod() {
	case authv1alpha1.AuthServiceAccount:
		msg = fmt.Sprintf("credential Secret %s holds client_id (no secret: the client presents a token of ServiceAccount %s with audience %s)", secretNameOf(c), c.Spec.Authentication.ServiceAccountName, r.Issuer)
	case authv1alpha1.AuthPrivateKeyJWT:
		msg = fmt.Sprintf("credential Secret %s holds client_id (no secret: the client signs assertions with a private key of the JWKS in %s)", secretNameOf(c), s.jwksSource)
	}
	reason := authv1alpha1.ReasonCredentialsIssued
	switch prev := reportedRepair(c); {
	case plan.eventType == corev1.EventTypeWarning:
		reason, msg = plan.reason, fmt.Sprintf("%s; at %s %s", msg, s.now.UTC().Format(time.RFC3339), plan.note)
	case plan.reason == "" && prev != nil:
		reason, msg = prev.Reason, prev.Message
	}
	s.setCondition(authv1alpha1.ConditionCredentialsReady, metav1.ConditionTrue, reason, msg)
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
