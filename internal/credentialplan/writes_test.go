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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	plan "github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

// desired builds the objects a decision would write, as the controller does in the parts the
// write plan looks at: the record's hashes and the credential Secret's secret and bookkeeping,
// plus the grants (standing for every non-secret field).
func desired(t *testing.T, d plan.Decision, c *authv1alpha1.M2MClient, grants string) (record, cred *corev1.Secret) {
	t.Helper()
	rec := credential.Record{Version: credential.RecordVersion, ClientID: "m2mc_x", Namespace: c.Namespace, Name: c.Name, UID: string(c.UID),
		Method: string(c.Spec.EffectiveMethod()), Secrets: d.Hashes(), Disabled: c.Spec.Disabled,
		Grants: []credential.AudienceGrant{{Audience: "api", Scopes: []string{grants}}}}
	data, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	record = recordSecret()
	record.Data = map[string][]byte{credential.RecordKey: data}
	cred = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "worker-m2m", Annotations: map[string]string{}},
		Type:       authv1alpha1.SecretTypeClientCredentials,
		Data:       map[string][]byte{authv1alpha1.CredentialKeyClientID: []byte("m2mc_x"), authv1alpha1.CredentialKeyScope: []byte(grants)},
	}
	if d.Secret != "" {
		cred.Data[authv1alpha1.CredentialKeyClientSecret] = []byte(d.Secret)
		cred.Annotations[authv1alpha1.AnnotationSecretIssuedAt] = d.IssuedAt.UTC().Format(time.RFC3339)
		cred.Annotations[authv1alpha1.AnnotationRotateHandled] = d.RotateHandled
	}
	return record, cred
}

// TestPlanWrites: each row is an observed state (written by the controller for the given
// grants and disabled flag) and the client now, and how the pass must write.
func TestPlanWrites(t *testing.T) {
	writtenAt := func(when time.Time, c *authv1alpha1.M2MClient, grants string, disabled bool, obs plan.Observed) plan.Observed {
		d, err := plan.Decide(plan.Input{Observed: obs, Client: c, Now: when}, gen)
		if err != nil {
			t.Fatal(err)
		}
		prev := c.DeepCopy()
		prev.Spec.Disabled = disabled
		rec, cred := desired(t, d, prev, grants)
		decoded, err := credential.DecodeRecord(rec.Data[credential.RecordKey])
		if err != nil {
			t.Fatal(err)
		}
		return plan.Observed{Credential: cred, RecordSecret: rec, Record: decoded}
	}
	written := func(c *authv1alpha1.M2MClient, grants string, disabled bool, obs plan.Observed) plan.Observed {
		return writtenAt(now, c, grants, disabled, obs)
	}
	steadyObs := func(c *authv1alpha1.M2MClient, grants string, disabled bool) plan.Observed {
		return written(c, grants, disabled, observed(credSecret(current, ""), true, recordOf(h(current, nil))))
	}
	disabled := func(c *authv1alpha1.M2MClient) { c.Spec.Disabled = true }
	withoutRecord := func(o plan.Observed) plan.Observed { o.RecordSecret, o.Record = nil, nil; return o }
	withoutCred := func(o plan.Observed) plan.Observed { o.Credential = nil; return o }
	conflicting := func(o plan.Observed) plan.Observed { o.Credential, o.NameConflict = nil, true; return o }
	stillRunning, expired := now.Add(10*time.Minute), now.Add(-time.Second)
	inGrace := func(end time.Time) plan.Observed {
		// Written a minute before the end of the grace period.
		return writtenAt(end.Add(-time.Minute), newClient(), "read", false, observed(credSecret(current, ""), true, recordOf(h(current, nil), h(older, &end))))
	}

	rows := []struct {
		name          string
		client        *authv1alpha1.M2MClient
		grants        string // the grants now
		obs           plan.Observed
		mode          plan.Mode
		record, creds bool
	}{
		{name: "steady: nothing", client: newClient(), grants: "read", obs: steadyObs(newClient(), "read", false), mode: plan.WriteNothing},
		{name: "new client: both created", client: newClient(), grants: "read", obs: plan.Observed{},
			mode: plan.CreateBoth, record: true, creds: true},
		{name: "grants changed: the record first, the credential Secret next pass", client: newClient(), grants: "write",
			obs: steadyObs(newClient(), "read", false), mode: plan.RecordFirst, record: true},
		{name: "grants and spec.disabled changed: both rewritten in place", client: newClient(disabled), grants: "write",
			obs: steadyObs(newClient(), "read", false), mode: plan.Rewrite, record: true, creds: true},
		{name: "spec.disabled changed: only the record, in place", client: newClient(disabled), grants: "read",
			obs: steadyObs(newClient(), "read", false), mode: plan.Rewrite, record: true},
		{name: "rotation requested: a change of secret material", client: newClient(rotateAnnotation("b")), grants: "read",
			obs: steadyObs(newClient(), "read", false), mode: plan.Change, record: true, creds: true},
		{name: "record deleted: a change (rebuilt)", client: newClient(), grants: "read",
			obs: withoutRecord(steadyObs(newClient(), "read", false)), mode: plan.Change, record: true},
		{name: "credential Secret deleted: a change (reissued)", client: newClient(), grants: "read",
			obs: withoutCred(steadyObs(newClient(), "read", false)), mode: plan.Change, record: true, creds: true},
		{name: "grace period running: nothing", client: newClient(), grants: "read", obs: inGrace(stillRunning), mode: plan.WriteNothing},
		{name: "grace period ended: a change (the old hash revoked)", client: newClient(), grants: "read", obs: inGrace(expired),
			mode: plan.Change, record: true},
		{name: "name conflict, grants changed: only the record follows", client: newClient(), grants: "write",
			obs: conflicting(steadyObs(newClient(), "read", false)), mode: plan.FollowRecordOnly, record: true},
		{name: "name conflict, nothing changed: nothing", client: newClient(), grants: "read",
			obs: conflicting(steadyObs(newClient(), "read", false)), mode: plan.WriteNothing},
		{name: "name conflict without a record: nothing is created", client: newClient(), grants: "read",
			obs: plan.Observed{NameConflict: true}, mode: plan.WriteNothing},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			in := plan.Input{Observed: row.obs, Client: row.client, Now: now}
			d, err := plan.Decide(in, gen)
			if err != nil {
				t.Fatal(err)
			}
			rec, cred := desired(t, d, row.client, row.grants)
			w := plan.PlanWrites(in, d, rec, cred)
			want := plan.Writes{Mode: row.mode, Record: row.record, Credential: row.creds}
			if w != want {
				t.Errorf("got %+v, want %+v", w, want)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	base := credSecret(current, "")
	same := base.DeepCopy()
	if !plan.Matches(base, same) {
		t.Fatal("a copy must match")
	}
	for name, mutate := range map[string]func(*corev1.Secret){
		"data value": func(s *corev1.Secret) { s.Data[authv1alpha1.CredentialKeyClientSecret] = []byte(older) },
		"data key":   func(s *corev1.Secret) { s.Data["extra"] = nil },
		"renamed key": func(s *corev1.Secret) {
			delete(s.Data, authv1alpha1.CredentialKeyClientID)
			s.Data["other"] = []byte("m2mc_x")
		},
		"annotation": func(s *corev1.Secret) { s.Annotations[authv1alpha1.AnnotationRotateHandled] = "x" },
		"label":      func(s *corev1.Secret) { s.Labels = map[string]string{"a": "b"} },
		"type":       func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque },
		"owner":      func(s *corev1.Secret) { s.OwnerReferences = []metav1.OwnerReference{{UID: "u"}} },
		"stringData": func(s *corev1.Secret) { s.StringData = map[string]string{"a": "b"} },
	} {
		existing := base.DeepCopy()
		mutate(existing)
		if plan.Matches(existing, base) {
			t.Errorf("%s: a difference was not seen", name)
		}
	}
}
