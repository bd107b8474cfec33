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
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

// credentialObservation is what the credentials phase observed, and where from: an object
// read from the API server (because the cache did not show it) needs no confirmation.
type credentialObservation struct {
	credentialplan.Observed
	credLive, recordLive bool
}

// reconcileCredentials decides the client secret once per pass, from what exists
// (observeCredentials), and writes what it decided: the record first and the credential Secret
// second, so that whichever write a crash interrupts, the next reconcile finds a state from
// which it can finish without losing an accepted secret.
//
// A stale cache never revokes a delivered secret, because every write is guarded:
//   - a change of secret material (a secret issued, rotated, revoked; a record rebuilt) is
//     written only when live reads show that the objects it was decided from are still exactly
//     those observed (confirmObserved); otherwise nothing is written and the pass runs again
//     once the cache has caught up;
//   - a rewrite that carries the observed secret material over unchanged (grants, scopes,
//     claims, CA bundle) is an update guarded by the observed resourceVersion, so a stale
//     observation fails with a conflict instead of overwriting newer secrets;
//   - the first issuance only creates, and a create meets AlreadyExists.
//
// A policy edit then costs one write per object, and a new client no extra reads.
func (r *M2MClientReconciler) reconcileCredentials(ctx context.Context, s *clientScope) error {
	obs, err := r.observeCredentials(ctx, s)
	if err != nil {
		return err
	}
	in := credentialplan.Input{Observed: obs.Observed, Client: s.client, Now: s.now}
	d, err := credentialplan.Decide(in, credential.NewSecret)
	if err != nil {
		return s.credentials.failed(authv1alpha1.ReasonSecretGenerationFailed, err)
	}
	r.decideRevocation(s, obs.Record)
	record, err := r.desiredRecordSecret(s, d)
	if err != nil {
		return err
	}
	cred, err := r.desiredCredentialSecret(s, d)
	if err != nil {
		return err
	}
	w := credentialplan.PlanWrites(in, d, record, cred)
	if d.Action == credentialplan.FollowRecord {
		return r.followRecord(ctx, s, obs, d, w, record)
	}
	if w.Mode == credentialplan.Change {
		confirmed, err := r.confirmObserved(ctx, s.client, obs)
		if err != nil {
			return err
		}
		if !confirmed {
			logf.FromContext(ctx).V(1).Info("the cache is behind the API server: deciding again once it has caught up")
			s.credentials.state = credentialsDeferred
			return nil
		}
	}
	if err := r.writeCredentials(ctx, s, obs, w, record, cred); err != nil {
		if errors.Is(err, errConflict) && w.Record {
			s.revocationWritten = true // the record goes first; the credential Secret conflicted
		}
		if errors.Is(err, errConflict) {
			// A record, if there is one, was written first: it follows the spec and the grants.
			s.requeueAt(s.now.Add(conflictRecheck))
			return nil
		}
		return err
	}
	s.revocationWritten = true
	if w.Mode == credentialplan.RecordFirst {
		s.credentials.state = credentialsDeferred
		return nil
	}
	r.recordEvents(s.client, obs.Record, d)
	s.credentials = credentialsOutcome{state: credentialsWritten, decision: d}
	if !d.NextRotation.IsZero() {
		s.requeueAt(metav1.NewTime(d.NextRotation).Rfc3339Copy().Time)
	}
	for _, p := range d.Previous {
		if p.NotAfter != nil {
			s.requeueAt(*p.NotAfter)
		}
	}
	return nil
}

func (r *M2MClientReconciler) writeCredentials(ctx context.Context, s *clientScope, obs credentialObservation, w credentialplan.Writes, record, cred *corev1.Secret) error {
	if w.Mode == credentialplan.CreateBoth {
		return r.createCredentials(ctx, s, record, cred)
	}
	if w.Record {
		if err := r.writeRecord(ctx, s, obs.RecordSecret, record); err != nil {
			return err
		}
	}
	if w.Credential {
		return r.writeCredentialSecret(ctx, s, obs.Credential, cred)
	}
	return nil
}

// createCredentials issues a new client's first secret. The credential Secret is created first:
// its create is the check that no foreign Secret holds the name (nothing is written when one
// does), and a crash before the record is written leaves a state the next reconcile repairs by
// rebuilding the record from the credential Secret, without losing the secret.
func (r *M2MClientReconciler) createCredentials(ctx context.Context, s *clientScope, record, cred *corev1.Secret) error {
	if err := r.writeCredentialSecret(ctx, s, nil, cred); err != nil {
		return err
	}
	return r.writeRecord(ctx, s, nil, record)
}

// conflictRecheck is how often a client whose credential Secret name is held by a Secret it does
// not own looks again: the Secret's removal sends no event the controller sees (its cache holds
// only Secrets the controller wrote, and a Secret without this client's ownerReference maps to
// no client), so the conflict would otherwise last until the M2MClient is touched.
const conflictRecheck = 10 * time.Second

// followRecord writes a FollowRecord decision: the record, which is what the token server
// obeys, keeps following the spec and the grants while the credential Secret cannot be written
// (a Secret this client does not own holds its name, or the token server's CA is not issued
// yet), so that no state of the credential Secret can freeze a revocation. A name conflict is
// checked again after conflictRecheck.
func (r *M2MClientReconciler) followRecord(ctx context.Context, s *clientScope, obs credentialObservation, d credentialplan.Decision, w credentialplan.Writes, record *corev1.Secret) error {
	if obs.NameConflict {
		s.credentials.state = credentialsConflict
		s.requeueAt(s.now.Add(conflictRecheck))
	}
	for _, h := range d.Carried {
		if h.NotAfter != nil {
			s.requeueAt(*h.NotAfter)
		}
	}
	if w.Record {
		if err := r.apply(ctx, obs.RecordSecret, record); err != nil {
			return fmt.Errorf("updating the credential record while the credential Secret cannot be written: %w", err)
		}
	}
	s.revocationWritten = true
	if obs.WaitingForCA {
		return errWaitingForCA
	}
	return nil
}

// decideRevocation decides the record's not-before times from the observed record (nil when
// there is none) and the client's annotation, status and grants, and schedules the reconcile
// that drops the earliest once it no longer matters.
func (r *M2MClientReconciler) decideRevocation(s *clientScope, prev *credential.Record) {
	c := s.client
	in := credentialplan.RevocationInput{
		Now:       s.now,
		Retention: r.RevocationRetention,
		Requested: c.Annotations[authv1alpha1.AnnotationRevokeTokens],
		Handled:   c.Status.RevokeTokensHandled,
		Disabled:  c.Spec.Disabled,
		Previous:  prev,
	}
	if c.Status.TokensRevokedAt != nil {
		in.RevokedAt = c.Status.TokensRevokedAt.Time
	}
	for _, g := range s.resolution.Grants {
		in.Grants = append(in.Grants, credential.AudienceGrant{Audience: g.Audience, Scopes: g.Scopes})
	}
	s.revocation = credentialplan.DecideRevocation(in)
	s.requeueAt(s.revocation.Expires)
}

// recordEvents emits the Events of a written decision: repairs, rotations, disabling and
// enabling; not a first issuance (see credentialplan.Decision).
func (r *M2MClientReconciler) recordEvents(c *authv1alpha1.M2MClient, prev *credential.Record, d credentialplan.Decision) {
	if d.EventType != "" {
		r.Recorder.Eventf(c, nil, d.EventType, d.Reason, "Reconcile", "%s", d.Note)
	}
	wasDisabled := prev != nil && prev.Disabled
	switch {
	case c.Spec.Disabled && !wasDisabled && prev != nil:
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, authv1alpha1.ReasonDisabled, "Reconcile", "token issuance stopped: spec.disabled is true")
	case !c.Spec.Disabled && wasDisabled:
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, authv1alpha1.ReasonEnabled, "Reconcile", "token issuance resumed")
	}
}
