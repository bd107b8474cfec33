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

// Package credentialplan decides what an M2MClient's client secret and its two Secrets (the
// credential Secret pods mount, the record the token server reads) become, from what exists
// now. It is the pure part of the M2MClient reconciler's credentials phase, as
// internal/signingkey's Advance is for signing keys (and cert-manager's renewal policies for
// certificates): a function of the observed objects, the client, the clock and an injected
// secret generator, with no API calls, so that every decision is table-tested without a
// cluster. controllers/m2mclient_credentials.go reads the objects and writes what it decides.
package credentialplan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// Generator returns a new client secret (credential.NewSecret in production).
type Generator func() (string, error)

// Observed is what exists now.
type Observed struct {
	// Credential is the credential Secret when this client owns it; nil when there is none.
	Credential *corev1.Secret
	// RecordSecret is the credential record Secret, nil when there is none; Record is its
	// document, nil when there is none or it is unreadable.
	RecordSecret *corev1.Secret
	Record       *credential.Record
	// NameConflict is set when a Secret this client does not own holds the credential Secret's
	// name (Credential is then nil).
	NameConflict bool
	// WaitingForCA is set while the token server's CA, which the credential Secret carries, is
	// not issued (Credential is then not read).
	WaitingForCA bool
}

// Input is everything a decision depends on.
type Input struct {
	Observed
	Client *authv1alpha1.M2MClient
	Now    time.Time
}

// Action names what a decision does to the client secret.
type Action string

const (
	// Create issues the first secret: neither Secret exists (no secret for a secretless method).
	Create Action = "Create"
	// Keep keeps the current secret (and, for a secretless method, still issues none).
	Keep Action = "Keep"
	// Rotate issues a new secret and keeps the current one accepted for the grace period: the
	// rotate annotation changed or the rotation interval has passed.
	Rotate Action = "Rotate"
	// Reissue repairs drift of the credential Secret (deleted, its secret malformed or edited):
	// a new secret, and every other one revoked at once, since it may have leaked.
	Reissue Action = "Reissue"
	// RebuildRecord rebuilds a missing or unreadable record from the credential Secret, without
	// rotating: the delivered secret stays valid.
	RebuildRecord Action = "RebuildRecord"
	// FollowRecord leaves the credential Secret alone (another object holds its name, or the CA
	// it carries is not issued yet) and keeps the record following the spec and the grants,
	// carrying over the hashes it still accepts: nothing is issued, since it could not be
	// delivered.
	FollowRecord Action = "FollowRecord"
)

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Reason and Note tell what happened when it is more than keeping the secret (Reason is
	// empty otherwise); EventType is the type of the Event that reports it, empty when it
	// deserves none. A Warning is a repair, also reported in CredentialsReady. A rotation is a
	// Normal Event. A first issuance (Create) has no Event: CredentialsReady and
	// status.secretRotatedAt report it, and an Event per new client was one API write in five
	// for every client created (see docs/performance.md). For FollowRecord, Reason is the
	// CredentialsReady reason and EventType is empty.
	EventType, Reason, Note string
	// Secret is the client secret after this pass (plaintext, in memory only); empty for
	// secretless methods and for FollowRecord.
	Secret string
	// IssuedAt is when Secret was issued; RotateHandled the rotate annotation it answers.
	IssuedAt      time.Time
	RotateHandled string
	// Previous are older hashes still accepted until their NotAfter.
	Previous []credential.SecretHash
	// Carried are the hashes a FollowRecord decision keeps in the record, exactly.
	Carried []credential.SecretHash
	// NextRotation is when the interval rotates Secret; zero when no interval is set.
	NextRotation time.Time
}

// Repair reports whether the decision repaired drift (a Warning Event).
func (d Decision) Repair() bool { return d.EventType == corev1.EventTypeWarning }

// Hashes are the secret hashes the record accepts after this pass: the current secret's (no
// NotAfter), then the previous ones in a stable order; for FollowRecord, those carried.
func (d Decision) Hashes() []credential.SecretHash {
	if d.Action == FollowRecord {
		return d.Carried
	}
	var out []credential.SecretHash
	if d.Secret != "" {
		out = append(out, credential.SecretHash{SHA256: credential.HashSecret(d.Secret).String()})
	}
	prev := slices.Clone(d.Previous)
	slices.SortFunc(prev, func(a, b credential.SecretHash) int { return strings.Compare(a.SHA256, b.SHA256) })
	return append(out, prev...)
}

const noteRecordUnreadable = "the credential record was unreadable (corrupted or edited by hand): rebuilt from the credential Secret (no rotation); " +
	"until then the token server refused this client"

// Decide decides the client secret: follow the record while the credential Secret cannot be
// written, issue the first one, repair after a deletion or an edit (revoking the old one at
// once: it may have leaked), rebuild a lost record, rotate (keeping the old one for the grace
// period), or keep it. gen is called only when a new secret is issued.
func Decide(in Input, gen Generator) (Decision, error) {
	switch {
	case in.WaitingForCA:
		return follow(in, authv1alpha1.ReasonWaitingForCA), nil
	case in.NameConflict:
		return follow(in, authv1alpha1.ReasonSecretNameConflict), nil
	}
	c := in.Client
	d := Decision{IssuedAt: in.Now, RotateHandled: c.Annotations[authv1alpha1.AnnotationRotate]}
	if c.Spec.EffectiveMethod() != authv1alpha1.AuthClientSecret {
		return decideSecretless(in, d), nil
	}
	cred, rec := in.Credential, in.Record
	current := ""
	if cred != nil {
		current = string(cred.Data[authv1alpha1.CredentialKeyClientSecret])
	}
	switch {
	case cred == nil && in.RecordSecret == nil:
		d.set(Create, "", authv1alpha1.ReasonCredentialsCreated, "issued the first client secret")
		return d.issue(in, gen)
	case cred == nil:
		d.set(Reissue, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretRecreated,
			"the credential Secret was deleted: a new client secret was issued and the old one revoked at once")
		return d.issue(in, gen)
	case credential.ValidateSecret(current) != nil:
		d.set(Reissue, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretRepaired,
			"the credential Secret's client_secret was missing or malformed: a new client secret was issued and the old one revoked at once")
		return d.issue(in, gen)
	case rec != nil && !hasHash(rec, credential.HashSecret(current)):
		d.set(Reissue, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialSecretEdited,
			"the credential Secret's client_secret was edited: a new client secret was issued and every other one revoked")
		return d.issue(in, gen)
	}

	// The current secret stands; carry over its bookkeeping and unexpired previous hashes.
	d.Action = Keep
	d.Secret = current
	d.IssuedAt = parseTime(cred.Annotations[authv1alpha1.AnnotationSecretIssuedAt], in.Now)
	d.RotateHandled = cred.Annotations[authv1alpha1.AnnotationRotateHandled]
	switch {
	case rec == nil && in.RecordSecret != nil:
		d.set(RebuildRecord, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordUnreadable, noteRecordUnreadable)
	case rec == nil:
		d.set(RebuildRecord, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordRebuilt,
			"the credential record was missing: rebuilt from the credential Secret (no rotation)")
	default:
		d.Previous = unexpiredPrevious(rec, credential.HashSecret(current), in.Now)
	}
	return d.maybeRotate(in, gen)
}

// decideSecretless decides for a method without a client secret: there is nothing to issue,
// and a lost record is rebuilt (reported when it was unreadable, since the token server refused
// the client meanwhile).
func decideSecretless(in Input, d Decision) Decision {
	switch {
	case in.Credential == nil && in.RecordSecret == nil:
		d.Action = Create
	case in.RecordSecret != nil && in.Record == nil:
		d.set(RebuildRecord, corev1.EventTypeWarning, authv1alpha1.ReasonCredentialRecordUnreadable, noteRecordUnreadable)
	case in.RecordSecret == nil:
		d.Action = RebuildRecord
	default:
		d.Action = Keep
	}
	return d
}

// follow is a FollowRecord decision: the record keeps the hashes without an expiry or whose
// grace period is still running. A client without a readable record gets none: nothing was
// ever delivered to it, or the token server refuses the unreadable one (fail closed).
func follow(in Input, reason string) Decision {
	d := Decision{Action: FollowRecord, Reason: reason}
	if in.Record == nil {
		return d
	}
	d.Carried = make([]credential.SecretHash, 0, len(in.Record.Secrets))
	for _, h := range in.Record.Secrets {
		if h.NotAfter == nil || in.Now.Before(*h.NotAfter) {
			d.Carried = append(d.Carried, h)
		}
	}
	return d
}

func (d *Decision) set(a Action, eventType, reason, note string) {
	d.Action, d.EventType, d.Reason, d.Note = a, eventType, reason, note
}

// issue gives the decision a new secret that replaces every other one.
func (d Decision) issue(in Input, gen Generator) (Decision, error) {
	d.Previous = nil
	if err := d.generate(gen); err != nil {
		return d, err
	}
	d.NextRotation = nextRotation(in.Client, d.IssuedAt)
	return d, nil
}

// maybeRotate rotates when the rotate annotation changed or the interval has passed.
func (d Decision) maybeRotate(in Input, gen Generator) (Decision, error) {
	c := in.Client
	requested := c.Annotations[authv1alpha1.AnnotationRotate]
	manual := requested != d.RotateHandled
	interval, grace := rotationSettings(c)
	due := interval > 0 && !in.Now.Before(d.IssuedAt.Add(interval))
	if !manual && !due {
		d.NextRotation = nextRotation(c, d.IssuedAt)
		return d, nil
	}
	notAfter := metav1.NewTime(in.Now.Add(grace)).Rfc3339Copy().Time
	d.Previous = append(d.Previous, credential.SecretHash{SHA256: credential.HashSecret(d.Secret).String(), NotAfter: &notAfter})
	d.IssuedAt = in.Now
	d.RotateHandled = requested
	cause := "interval elapsed"
	if manual {
		cause = "requested by annotation"
	}
	d.set(Rotate, corev1.EventTypeNormal, authv1alpha1.ReasonSecretRotated,
		fmt.Sprintf("rotated the client secret (%s); the previous one is accepted until %s", cause, notAfter.Format(time.RFC3339)))
	if err := d.generate(gen); err != nil {
		return d, err
	}
	d.NextRotation = nextRotation(c, d.IssuedAt)
	return d, nil
}

func (d *Decision) generate(gen Generator) error {
	sec, err := gen()
	if err != nil {
		return fmt.Errorf("generating client secret: %w", err)
	}
	d.Secret = sec
	return nil
}

func nextRotation(c *authv1alpha1.M2MClient, issuedAt time.Time) time.Time {
	if interval, _ := rotationSettings(c); interval > 0 {
		return issuedAt.Add(interval)
	}
	return time.Time{}
}

// rotationSettings are spec.secretRotation's interval (0: none) and grace period (default 1h).
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
	return slices.ContainsFunc(rec.Secrets, func(sh credential.SecretHash) bool {
		other, err := credential.ParseHash(sh.SHA256)
		return err == nil && other.Equal(h)
	})
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
