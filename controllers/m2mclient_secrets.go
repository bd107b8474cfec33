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
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

// This file holds everything that reads or writes an M2MClient's two Secrets: the credential
// Secret in the client's namespace (what pods mount) and the credential record in the
// credentials namespace (what the token server reads). What they hold is built here
// (desiredCredentialSecret, desiredRecordSecret); how it is decided is
// internal/credentialplan; when it is written is m2mclient_credentials.go.

// secretNameOf is the credential Secret's name: spec.secretName, default <name>-m2m.
func secretNameOf(c *authv1alpha1.M2MClient) string {
	if c.Spec.SecretName != "" {
		return c.Spec.SecretName
	}
	return c.Name + "-m2m"
}

// recordName is the record's name: the client's UID, so that an object of the same name
// created again never takes over an earlier object's record.
func recordName(c *authv1alpha1.M2MClient) string { return string(c.UID) }

// writeRecord creates or updates the record. Before creating one it deletes the records of
// earlier objects of the same namespace and name, which hold the same client id (ids derive
// from the name): they are left only when such an object went without its finalizer running,
// and two records claiming one id would make the token server refuse the client.
func (r *M2MClientReconciler) writeRecord(ctx context.Context, s *clientScope, existing, desired *corev1.Secret) error {
	write := func() error {
		if existing == nil {
			if err := r.removeStaleRecords(ctx, s.client, s.clientID); err != nil {
				return err
			}
		}
		return r.apply(ctx, existing, desired)
	}
	if err := write(); err != nil {
		return s.credentials.failed(authv1alpha1.ReasonRecordWriteFailed, err)
	}
	return nil
}

// removeStaleRecords deletes the records labelled with this client's id that belong to another
// object (another UID) of the same namespace and name: an object of that name no longer exists,
// since this one does.
func (r *M2MClientReconciler) removeStaleRecords(ctx context.Context, c *authv1alpha1.M2MClient, clientID string) error {
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(r.CredentialsNamespace), client.MatchingFields{indexSecretClientID: clientID}); err != nil {
		return fmt.Errorf("listing credential records of client id %s: %w", clientID, err)
	}
	for i := range list.Items {
		old := &list.Items[i]
		if old.Name == recordName(c) || old.Labels[authv1alpha1.LabelClientNamespace] != c.Namespace || old.Labels[authv1alpha1.LabelClientName] != labelSafe(c.Name) {
			continue
		}
		if err := r.Delete(ctx, old, client.Preconditions{UID: &old.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the stale credential record %s: %w", old.Name, err)
		}
		logf.FromContext(ctx).Info("deleted the credential record of an earlier object of this name", "record", old.Name)
	}
	return nil
}

// credentialSecret returns the credential Secret if this client owns it, nil if it does not
// exist, and errConflict if a Secret the controller does not own holds the name.
func (r *M2MClientReconciler) credentialSecret(ctx context.Context, reader client.Reader, c *authv1alpha1.M2MClient) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: c.Namespace, Name: secretNameOf(c)}
	var sec corev1.Secret
	err := reader.Get(ctx, key, &sec)
	if apierrors.IsNotFound(err) {
		// The cache holds only Secrets this controller labelled, so a foreign Secret holding
		// the name is invisible here: the live decision sees it, and a create meets it as
		// AlreadyExists (resolveAlreadyExists).
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credential Secret: %w", err)
	}
	if !metav1.IsControlledBy(&sec, c) {
		return nil, errConflict
	}
	return &sec, nil
}

// record returns the record Secret and its decoded document. An undecodable record is returned
// with a nil document: it will be rebuilt.
func (r *M2MClientReconciler) record(ctx context.Context, reader client.Reader, c *authv1alpha1.M2MClient) (*corev1.Secret, *credential.Record, error) {
	var sec corev1.Secret
	err := reader.Get(ctx, client.ObjectKey{Namespace: r.CredentialsNamespace, Name: recordName(c)}, &sec)
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading credential record: %w", err)
	}
	rec, err := credential.DecodeRecord(sec.Data[credential.RecordKey])
	if err != nil {
		logf.FromContext(ctx).Info("credential record is unreadable; rebuilding it", "record", sec.Name, "reason", err.Error())
		return &sec, nil, nil
	}
	return &sec, rec, nil
}

// observeCredentials reads the credential Secret and the record. The cache holds only the
// Secrets this controller labelled, so an object it does not show may still exist (its labels
// removed, or a foreign Secret on the credential Secret's name): when the cache shows one of the
// two objects and not the other, the missing one is looked up on the API server. When it shows
// neither, the pass only creates, and a create meets whatever exists. While the CA is missing
// the credential Secret is not read; on a name conflict the record is followed as cached.
func (r *M2MClientReconciler) observeCredentials(ctx context.Context, s *clientScope) (credentialObservation, error) {
	c := s.client
	var o credentialObservation
	o.WaitingForCA = s.waitingForCA
	if !o.WaitingForCA {
		cred, err := r.credentialSecret(ctx, r.Client, c)
		if err != nil && !errors.Is(err, errConflict) {
			return o, err
		}
		o.Credential, o.NameConflict = cred, errors.Is(err, errConflict)
	}
	var err error
	if o.RecordSecret, o.Record, err = r.record(ctx, r.Client, c); err != nil {
		return o, err
	}
	switch {
	case o.WaitingForCA || o.NameConflict:
	case o.Credential == nil && o.RecordSecret != nil:
		cred, err := r.credentialSecret(ctx, r.APIReader, c)
		if err != nil && !errors.Is(err, errConflict) {
			return o, err
		}
		o.Credential, o.NameConflict, o.credLive = cred, errors.Is(err, errConflict), true
	case o.RecordSecret == nil && o.Credential != nil:
		if o.RecordSecret, o.Record, err = r.record(ctx, r.APIReader, c); err != nil {
			return o, err
		}
		o.recordLive = true
	}
	return o, nil
}

// confirmObserved reads from the API server the objects the observation took from the cache,
// and reports whether they are still exactly those observed (same UID and resourceVersion):
// the check before a change of secret material is written (see reconcileCredentials).
func (r *M2MClientReconciler) confirmObserved(ctx context.Context, c *authv1alpha1.M2MClient, o credentialObservation) (bool, error) {
	if !o.credLive {
		same, err := r.unchanged(ctx, client.ObjectKey{Namespace: c.Namespace, Name: secretNameOf(c)}, o.Credential)
		if err != nil || !same {
			return false, err
		}
	}
	if !o.recordLive {
		return r.unchanged(ctx, client.ObjectKey{Namespace: r.CredentialsNamespace, Name: recordName(c)}, o.RecordSecret)
	}
	return true, nil
}

// unchanged reports whether the live Secret at key is observed (nil: there is none).
func (r *M2MClientReconciler) unchanged(ctx context.Context, key client.ObjectKey, observed *corev1.Secret) (bool, error) {
	var live corev1.Secret
	err := r.APIReader.Get(ctx, key, &live)
	if apierrors.IsNotFound(err) {
		return observed == nil, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Secret %s/%s: %w", key.Namespace, key.Name, err)
	}
	return observed != nil && observed.UID == live.UID && observed.ResourceVersion == live.ResourceVersion, nil
}

// writeCredentialSecret creates or updates the credential Secret; errConflict when a Secret
// this client does not own holds the name.
func (r *M2MClientReconciler) writeCredentialSecret(ctx context.Context, s *clientScope, existing, desired *corev1.Secret) error {
	err := r.apply(ctx, existing, desired)
	if errors.Is(err, errConflict) {
		s.credentials.state = credentialsConflict
		return errConflict
	}
	if err != nil {
		return s.credentials.failed(authv1alpha1.ReasonSecretWriteFailed, err)
	}
	return nil
}

// desiredRecord is the record document for the plan and the resolved grants.
func (r *M2MClientReconciler) desiredRecord(s *clientScope, d credentialplan.Decision) credential.Record {
	c := s.client
	rec := credential.Record{
		Version:   credential.RecordVersion,
		ClientID:  s.clientID,
		Namespace: c.Namespace,
		Name:      c.Name,
		UID:       string(c.UID),
		Method:    string(c.Spec.EffectiveMethod()),
		Disabled:  c.Spec.Disabled,
		Claims:    c.Spec.Claims,
	}
	if c.Spec.TokenBinding == authv1alpha1.TokenBindingDPoP {
		rec.TokenBinding = credential.TokenBindingDPoP
	}
	if c.Spec.Authentication != nil {
		rec.ServiceAccountName = c.Spec.Authentication.ServiceAccountName
	}
	rec.JWKS = s.jwks
	if c.Spec.TokenTTL != nil {
		rec.TokenTTLSeconds = int64(c.Spec.TokenTTL.Seconds())
	}
	rec.Secrets = d.Hashes()
	rec.TokensNotBefore = s.revocation.TokensNotBefore
	rec.AudienceNotBefore = s.revocation.AudienceNotBefore
	for _, g := range s.resolution.Grants {
		ag := credential.AudienceGrant{
			Audience:           g.Audience,
			Scopes:             g.Scopes,
			MaxTokenTTLSeconds: int64(g.MaxTokenTTL.Seconds()),
			PolicyNamespace:    g.PolicyNamespace,
		}
		if g.BindingRequired {
			ag.TokenBinding = credential.TokenBindingRequired
		}
		rec.Grants = append(rec.Grants, ag)
	}
	return rec
}

func (r *M2MClientReconciler) desiredRecordSecret(s *clientScope, d credentialplan.Decision) (*corev1.Secret, error) {
	c := s.client
	doc := r.desiredRecord(s, d)
	data, err := doc.Encode()
	if err != nil {
		return nil, err
	}
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.CredentialsNamespace,
			Name:      recordName(c),
			Labels: map[string]string{
				authv1alpha1.LabelManagedBy:       authv1alpha1.ManagedByValue,
				authv1alpha1.LabelClientID:        s.clientID,
				authv1alpha1.LabelClientNamespace: c.Namespace,
				authv1alpha1.LabelClientName:      labelSafe(c.Name),
			},
		},
		Type: authv1alpha1.SecretTypeCredentialRecord,
		Data: map[string][]byte{credential.RecordKey: data},
	}
	return desired, nil
}

func (r *M2MClientReconciler) desiredCredentialSecret(s *clientScope, d credentialplan.Decision) (*corev1.Secret, error) {
	c := s.client
	data := map[string][]byte{
		authv1alpha1.CredentialKeyClientID: []byte(s.clientID),
		authv1alpha1.CredentialKeyTokenURL: []byte(r.TokenURL),
		authv1alpha1.CredentialKeyIssuer:   []byte(r.Issuer),
		authv1alpha1.CredentialKeyScope:    []byte(strings.Join(s.resolution.Granted, " ")),
		authv1alpha1.CredentialKeyAudience: []byte(defaultAudience(c, s.resolution.Audiences)),
	}
	if len(s.caBundle) > 0 {
		data[authv1alpha1.CredentialKeyCACert] = s.caBundle
	}
	annotations := map[string]string{}
	if d.Secret != "" {
		data[authv1alpha1.CredentialKeyClientSecret] = []byte(d.Secret)
		annotations[authv1alpha1.AnnotationSecretIssuedAt] = d.IssuedAt.UTC().Format(time.RFC3339)
		annotations[authv1alpha1.AnnotationRotateHandled] = d.RotateHandled
	}
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: c.Namespace,
			Name:      secretNameOf(c),
			Labels: map[string]string{
				authv1alpha1.LabelManagedBy:  authv1alpha1.ManagedByValue,
				authv1alpha1.LabelClientID:   s.clientID,
				authv1alpha1.LabelClientName: labelSafe(c.Name),
			},
			Annotations: annotations,
		},
		Type: authv1alpha1.SecretTypeClientCredentials,
		Data: data,
	}
	if err := controllerutil.SetControllerReference(c, desired, r.Scheme()); err != nil {
		return nil, fmt.Errorf("setting owner of credential Secret: %w", err)
	}
	return desired, nil
}

// apply creates desired, or updates existing to match it when (and only when) they differ.
func (r *M2MClientReconciler) apply(ctx context.Context, existing, desired *corev1.Secret) error {
	if existing == nil {
		err := r.Create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			return r.resolveAlreadyExists(ctx, desired)
		}
		if err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", desired.Namespace, desired.Name, err)
		}
		return nil
	}
	if existing.Type != desired.Type {
		// The type is immutable: replace the object.
		if err := r.Delete(ctx, existing); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replacing Secret %s/%s: %w", existing.Namespace, existing.Name, err)
		}
		return r.apply(ctx, nil, desired)
	}
	if credentialplan.Matches(existing, desired) {
		return nil
	}
	updated := existing.DeepCopy()
	updated.Labels, updated.Annotations = desired.Labels, desired.Annotations
	updated.OwnerReferences = desired.OwnerReferences
	updated.Data, updated.StringData = desired.Data, nil
	if err := r.Update(ctx, updated); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", existing.Namespace, existing.Name, err)
	}
	return nil
}

// resolveAlreadyExists looks past the label-filtered cache: a Secret we own that the cache has
// not seen yet is retried; anything else is a name conflict.
func (r *M2MClientReconciler) resolveAlreadyExists(ctx context.Context, desired *corev1.Secret) error {
	var live corev1.Secret
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), &live); err != nil {
		return fmt.Errorf("reading Secret %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	if metav1.GetControllerOf(desired) != nil && !sameController(&live, desired) {
		return errConflict
	}
	return fmt.Errorf("secret %s/%s is not in the cache yet; retrying", desired.Namespace, desired.Name)
}

func sameController(a, b *corev1.Secret) bool {
	ra, rb := metav1.GetControllerOf(a), metav1.GetControllerOf(b)
	return ra != nil && rb != nil && ra.UID == rb.UID
}

// defaultAudience is the audience a pod should ask for when it has no preference: the first of
// spec.audiences that is granted, else the first granted audience.
func defaultAudience(c *authv1alpha1.M2MClient, granted []string) string {
	for _, a := range c.Spec.Audiences {
		for _, g := range granted {
			if string(a) == g {
				return g
			}
		}
	}
	if len(granted) > 0 {
		return granted[0]
	}
	return ""
}

// labelSafe trims a name to a valid label value (object names may be 253 characters).
func labelSafe(s string) string {
	if len(s) <= 63 {
		return s
	}
	return strings.TrimRight(s[:63], "-.")
}
