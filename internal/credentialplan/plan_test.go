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

package credentialplan_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	plan "github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

var (
	now    = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	issued = now.Add(-48 * time.Hour)
)

// secrets are fixed, valid client secrets: current is the delivered one, fresh the one the
// generator hands out.
var current, older, fresh = mustSecret(), mustSecret(), mustSecret()

func mustSecret() string {
	s, err := credential.NewSecret()
	if err != nil {
		panic(err)
	}
	return s
}

func gen() (string, error) { return fresh, nil }

func hash(s string) string { return credential.HashSecret(s).String() }

type clientOpt func(*authv1alpha1.M2MClient)

func newClient(opts ...clientOpt) *authv1alpha1.M2MClient {
	c := &authv1alpha1.M2MClient{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "worker", UID: "uid-1"}}
	for _, o := range opts {
		o(c)
	}
	return c
}

func rotateAnnotation(v string) clientOpt {
	return func(c *authv1alpha1.M2MClient) { c.Annotations = map[string]string{authv1alpha1.AnnotationRotate: v} }
}

func interval(d time.Duration) clientOpt {
	return func(c *authv1alpha1.M2MClient) {
		c.Spec.SecretRotation = &authv1alpha1.SecretRotation{Interval: &metav1.Duration{Duration: d}, GracePeriod: &metav1.Duration{Duration: 30 * time.Minute}}
	}
}

func method(m authv1alpha1.AuthenticationMethod) clientOpt {
	return func(c *authv1alpha1.M2MClient) {
		c.Spec.Authentication = &authv1alpha1.Authentication{Method: m, ServiceAccountName: "robot"}
	}
}

// credSecret is a credential Secret holding secret, issued at issued, having answered the rotate
// annotation handled.
func credSecret(secret, handled string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "worker-m2m", Annotations: map[string]string{
			authv1alpha1.AnnotationSecretIssuedAt: issued.Format(time.RFC3339),
			authv1alpha1.AnnotationRotateHandled:  handled,
		}},
		Type: authv1alpha1.SecretTypeClientCredentials,
		Data: map[string][]byte{authv1alpha1.CredentialKeyClientID: []byte("m2mc_x"), authv1alpha1.CredentialKeyClientSecret: []byte(secret)},
	}
}

func recordOf(hashes ...credential.SecretHash) *credential.Record {
	return &credential.Record{Version: credential.RecordVersion, ClientID: "m2mc_x", Secrets: hashes}
}

func recordSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "m2m-system", Name: "uid-1"}, Type: authv1alpha1.SecretTypeCredentialRecord}
}

// observed builds the observed state: cred may be nil; rec nil with recObj true is an
// unreadable record.
func observed(cred *corev1.Secret, recObj bool, rec *credential.Record) plan.Observed {
	o := plan.Observed{Credential: cred, Record: rec}
	if recObj || rec != nil {
		o.RecordSecret = recordSecret()
	}
	return o
}

func h(secret string, notAfter *time.Time) credential.SecretHash {
	return credential.SecretHash{SHA256: hash(secret), NotAfter: notAfter}
}

// TestDecide: each row is an observed state and the decision it must lead to, with its reason,
// the secret the credential Secret then holds and the hashes the record then accepts.
func TestDecide(t *testing.T) {
	graceEnd := now.Add(30 * time.Minute)
	hourEnd := now.Add(time.Hour)
	stillRunning, expired := now.Add(10*time.Minute), now.Add(-time.Second)
	steady := func() plan.Observed { return observed(credSecret(current, ""), true, recordOf(h(current, nil))) }
	waiting := steady()
	waiting.WaitingForCA, waiting.Credential = true, nil
	waitingGrace := observed(nil, true, recordOf(h(current, nil), h(older, &stillRunning), h(mustSecret(), &expired)))
	waitingGrace.WaitingForCA = true
	conflict := observed(nil, true, recordOf(h(current, nil), h(older, &expired)))
	conflict.NameConflict = true
	conflictNoRecord := plan.Observed{NameConflict: true}
	conflictUnreadable := observed(nil, true, nil)
	conflictUnreadable.NameConflict = true
	both := steady()
	both.NameConflict, both.WaitingForCA, both.Credential = true, true, nil

	rows := []struct {
		name     string
		client   *authv1alpha1.M2MClient
		obs      plan.Observed
		action   plan.Action
		event    string // EventType
		reason   string
		secret   string
		hashes   []credential.SecretHash
		issuedAt time.Time
		next     time.Time
	}{
		// The credential Secret cannot be written: the record follows, nothing is issued.
		{name: "waiting for the CA: the record keeps its hashes", client: newClient(), obs: waiting,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonWaitingForCA, hashes: []credential.SecretHash{h(current, nil)}},
		{name: "waiting for the CA: an ended grace period is dropped", client: newClient(), obs: waitingGrace,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonWaitingForCA, hashes: []credential.SecretHash{h(current, nil), h(older, &stillRunning)}},
		{name: "name conflict: the delivered secret is carried, the expired one dropped", client: newClient(rotateAnnotation("now")), obs: conflict,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonSecretNameConflict, hashes: []credential.SecretHash{h(current, nil)}},
		{name: "name conflict without a record: none is made", client: newClient(), obs: conflictNoRecord,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonSecretNameConflict},
		{name: "name conflict with an unreadable record: left to the token server, which refuses it", client: newClient(), obs: conflictUnreadable,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonSecretNameConflict},
		{name: "waiting for the CA wins over a name conflict", client: newClient(), obs: both,
			action: plan.FollowRecord, reason: authv1alpha1.ReasonWaitingForCA, hashes: []credential.SecretHash{h(current, nil)}},

		// Create, keep, repair. A first issuance has a reason but no Event: the status
		// reports it (CredentialsReady, secretRotatedAt).
		{name: "neither Secret: the first secret", client: newClient(), obs: plan.Observed{},
			action: plan.Create, reason: authv1alpha1.ReasonCredentialsCreated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "neither Secret, with an interval: the first rotation is scheduled", client: newClient(interval(24 * time.Hour)), obs: plan.Observed{},
			action: plan.Create, reason: authv1alpha1.ReasonCredentialsCreated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now, next: now.Add(24 * time.Hour)},
		{name: "steady: the secret stands, nothing to report", client: newClient(), obs: steady(),
			action: plan.Keep, secret: current, hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued},
		{name: "steady in a grace period: the previous hash stays until its end", client: newClient(),
			obs:    observed(credSecret(current, ""), true, recordOf(h(current, nil), h(older, &stillRunning))),
			action: plan.Keep, secret: current, hashes: []credential.SecretHash{h(current, nil), h(older, &stillRunning)}, issuedAt: issued},
		{name: "a grace period ended: the previous hash goes", client: newClient(),
			obs:    observed(credSecret(current, ""), true, recordOf(h(current, nil), h(older, &expired))),
			action: plan.Keep, secret: current, hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued},
		{name: "credential Secret deleted: reissued, the old secret revoked at once", client: newClient(),
			obs:    observed(nil, true, recordOf(h(current, nil), h(older, &stillRunning))),
			action: plan.Reissue, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialSecretRecreated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "credential Secret deleted and the record unreadable: reissued", client: newClient(), obs: observed(nil, true, nil),
			action: plan.Reissue, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialSecretRecreated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "client_secret malformed: repaired", client: newClient(), obs: observed(credSecret("hunter2", ""), true, recordOf(h("hunter2", nil))),
			action: plan.Reissue, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialSecretRepaired, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "client_secret missing: repaired", client: newClient(), obs: observed(credSecret("", ""), true, recordOf(h(current, nil))),
			action: plan.Reissue, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialSecretRepaired, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "client_secret edited to one the record does not accept: every other revoked", client: newClient(),
			obs:    observed(credSecret(older, ""), true, recordOf(h(current, nil))),
			action: plan.Reissue, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialSecretEdited, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil)}, issuedAt: now},
		{name: "record deleted: rebuilt from the credential Secret, no rotation", client: newClient(), obs: observed(credSecret(current, ""), false, nil),
			action: plan.RebuildRecord, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialRecordRebuilt, secret: current,
			hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued},
		{name: "record unreadable: rebuilt, reported as unreadable", client: newClient(), obs: observed(credSecret(current, ""), true, nil),
			action: plan.RebuildRecord, event: corev1.EventTypeWarning, reason: authv1alpha1.ReasonCredentialRecordUnreadable, secret: current,
			hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued},

		// Rotation.
		{name: "rotate annotation changed: rotated, the old secret accepted for the grace period", client: newClient(rotateAnnotation("b")),
			obs:    observed(credSecret(current, "a"), true, recordOf(h(current, nil))),
			action: plan.Rotate, event: corev1.EventTypeNormal, reason: authv1alpha1.ReasonSecretRotated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil), h(current, &hourEnd)}, issuedAt: now},
		{name: "rotate annotation already answered: kept", client: newClient(rotateAnnotation("a")),
			obs:    observed(credSecret(current, "a"), true, recordOf(h(current, nil))),
			action: plan.Keep, secret: current, hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued},
		{name: "interval elapsed: rotated with the spec's grace period", client: newClient(interval(24 * time.Hour)), obs: steady(),
			action: plan.Rotate, event: corev1.EventTypeNormal, reason: authv1alpha1.ReasonSecretRotated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil), h(current, &graceEnd)}, issuedAt: now, next: now.Add(24 * time.Hour)},
		{name: "interval not elapsed: kept, the rotation scheduled", client: newClient(interval(72 * time.Hour)), obs: steady(),
			action: plan.Keep, secret: current, hashes: []credential.SecretHash{h(current, nil)}, issuedAt: issued, next: issued.Add(72 * time.Hour)},
		{name: "record deleted while a rotation is requested: rotated", client: newClient(rotateAnnotation("b")),
			obs:    observed(credSecret(current, "a"), false, nil),
			action: plan.Rotate, event: corev1.EventTypeNormal, reason: authv1alpha1.ReasonSecretRotated, secret: fresh,
			hashes: []credential.SecretHash{h(fresh, nil), h(current, &hourEnd)}, issuedAt: now},

		// Secretless methods: nothing to issue; a lost record is rebuilt.
		{name: "ServiceAccount, neither Secret: created without a secret or an Event", client: newClient(method(authv1alpha1.AuthServiceAccount)),
			obs: plan.Observed{}, action: plan.Create, issuedAt: now},
		{name: "PrivateKeyJWT, steady: kept", client: newClient(method(authv1alpha1.AuthPrivateKeyJWT)),
			obs: observed(credSecret("", ""), true, recordOf()), action: plan.Keep, issuedAt: now},
		{name: "ServiceAccount, record deleted: rebuilt quietly (it held no secret)", client: newClient(method(authv1alpha1.AuthServiceAccount)),
			obs: observed(credSecret("", ""), false, nil), action: plan.RebuildRecord, issuedAt: now},
		{name: "ServiceAccount, record unreadable: rebuilt and reported", client: newClient(method(authv1alpha1.AuthServiceAccount)),
			obs: observed(credSecret("", ""), true, nil), action: plan.RebuildRecord, event: corev1.EventTypeWarning,
			reason: authv1alpha1.ReasonCredentialRecordUnreadable, issuedAt: now},
		{name: "ServiceAccount with a stale rotate annotation: nothing to rotate", client: newClient(method(authv1alpha1.AuthServiceAccount), rotateAnnotation("x")),
			obs: observed(credSecret("", ""), true, recordOf()), action: plan.Keep, issuedAt: now},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			d, err := plan.Decide(plan.Input{Observed: row.obs, Client: row.client, Now: now}, gen)
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s %q %q", d.Action, d.EventType, d.Reason)
			want := fmt.Sprintf("%s %q %q", row.action, row.event, row.reason)
			if got != want {
				t.Errorf("decision: got %s, want %s", got, want)
			}
			if d.Secret != row.secret {
				t.Errorf("secret: got %s, want %s", name(d.Secret), name(row.secret))
			}
			if g, w := describe(d.Hashes()), describe(row.hashes); g != w {
				t.Errorf("record hashes: got %s, want %s", g, w)
			}
			if row.action != plan.FollowRecord && !d.IssuedAt.Equal(row.issuedAt) {
				t.Errorf("issued at: got %s, want %s", d.IssuedAt, row.issuedAt)
			}
			if !d.NextRotation.Equal(row.next) {
				t.Errorf("next rotation: got %s, want %s", d.NextRotation, row.next)
			}
			if d.Reason != "" && d.Action != plan.FollowRecord && d.Note == "" {
				t.Error("a reported decision needs a note for its Event")
			}
		})
	}
}

func TestDecideRotationBookkeeping(t *testing.T) {
	c := newClient(rotateAnnotation("b"))
	d, err := plan.Decide(plan.Input{Observed: observed(credSecret(current, "a"), true, recordOf(h(current, nil))), Client: c, Now: now}, gen)
	if err != nil {
		t.Fatal(err)
	}
	if d.RotateHandled != "b" {
		t.Errorf("the rotation answers the annotation: got %q", d.RotateHandled)
	}
	if !strings.Contains(d.Note, "requested by annotation") || !strings.Contains(d.Note, now.Add(time.Hour).Format(time.RFC3339)) {
		t.Errorf("note: %q", d.Note)
	}
}

func TestDecideGeneratorFailure(t *testing.T) {
	boom := errors.New("no entropy")
	_, err := plan.Decide(plan.Input{Client: newClient(), Now: now}, func() (string, error) { return "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the generator's error", err)
	}
	// A decision that issues nothing never calls the generator.
	obs := observed(credSecret(current, ""), true, recordOf(h(current, nil)))
	if _, err := plan.Decide(plan.Input{Observed: obs, Client: newClient(), Now: now}, func() (string, error) { return "", boom }); err != nil {
		t.Fatalf("a kept secret called the generator: %v", err)
	}
}

// name shows which of the test's secrets s is, never the secret itself.
func name(s string) string {
	switch s {
	case "":
		return "none"
	case current:
		return "current"
	case fresh:
		return "fresh"
	case older:
		return "older"
	}
	return "another"
}

// describe shows hashes by the name of their secret.
func describe(hashes []credential.SecretHash) string {
	var parts []string
	for _, sh := range hashes {
		n := "another"
		for _, s := range []string{current, fresh, older} {
			if hash(s) == sh.SHA256 {
				n = name(s)
			}
		}
		if sh.NotAfter != nil {
			n += "@" + sh.NotAfter.UTC().Format(time.RFC3339)
		}
		parts = append(parts, n)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
