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

package credentialplan

import (
	"bytes"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// Mode says how a pass writes a decision, and how far it may trust the objects it observed.
type Mode string

const (
	// WriteNothing means both objects already hold what was decided.
	WriteNothing Mode = "Nothing"
	// CreateBoth means neither object exists, so the pass only creates (the credential Secret
	// first). A create cannot overwrite anything: a stale cache, or a foreign Secret holding
	// the name, meets AlreadyExists.
	CreateBoth Mode = "CreateBoth"
	// Rewrite means the objects are rewritten in place with exactly the secret material they hold
	// (grants, scopes, claims, CA bundle changed). Each update is guarded by the observed
	// resourceVersion, so a stale observation fails with a conflict instead of overwriting.
	Rewrite Mode = "Rewrite"
	// RecordFirst means a grants-only change of both objects. The record, which the token server
	// enforces, is written in this pass; the credential Secret's informational keys and the
	// status in the next, so that a policy edit reaches every affected record after one write
	// per client.
	RecordFirst Mode = "RecordFirst"
	// Change means the secret material changes (a secret issued, rotated, revoked or a record
	// rebuilt). It is written only once the observed objects are confirmed by live reads:
	// a decision taken on a stale cache could revoke a secret just delivered.
	Change Mode = "Change"
	// FollowRecordOnly means only the record is written, carrying its hashes (FollowRecord).
	FollowRecordOnly Mode = "FollowRecord"
)

// Writes is which objects a pass writes, and how.
type Writes struct {
	Mode               Mode
	Record, Credential bool
}

// PlanWrites compares the desired objects built from d with the observed ones.
func PlanWrites(in Input, d Decision, record, cred *corev1.Secret) Writes {
	writeRec := in.RecordSecret == nil || !Matches(in.RecordSecret, record)
	if d.Action == FollowRecord {
		if in.Record == nil || !writeRec {
			return Writes{Mode: WriteNothing}
		}
		return Writes{Mode: FollowRecordOnly, Record: true}
	}
	writeCred := in.Credential == nil || !Matches(in.Credential, cred)
	switch {
	case !writeRec && !writeCred:
		return Writes{Mode: WriteNothing}
	case in.Credential == nil && in.RecordSecret == nil:
		return Writes{Mode: CreateBoth, Record: true, Credential: true}
	case !keepsSecretMaterial(in, d, record, cred):
		return Writes{Mode: Change, Record: writeRec, Credential: writeCred}
	case writeRec && writeCred && in.Record.Disabled == in.Client.Spec.Disabled:
		return Writes{Mode: RecordFirst, Record: true}
	default:
		return Writes{Mode: Rewrite, Record: writeRec, Credential: writeCred}
	}
}

// keepsSecretMaterial reports whether the desired objects replace the observed ones in place
// with exactly the secret material they hold: the same accepted hashes (with the same expiries)
// in the record, the same client secret and rotation bookkeeping in the credential Secret, and
// no object created or replaced.
func keepsSecretMaterial(in Input, d Decision, record, cred *corev1.Secret) bool {
	if in.Credential == nil || in.RecordSecret == nil || in.Record == nil || d.Reason != "" {
		return false
	}
	if in.Credential.Type != cred.Type || in.RecordSecret.Type != record.Type {
		return false
	}
	return sameHashes(d.Hashes(), in.Record.Secrets) &&
		bytes.Equal(in.Credential.Data[authv1alpha1.CredentialKeyClientSecret], cred.Data[authv1alpha1.CredentialKeyClientSecret]) &&
		maps.Equal(in.Credential.Annotations, cred.Annotations)
}

// sameHashes reports whether a and b list the same hashes with the same expiries, in order.
func sameHashes(a, b []credential.SecretHash) bool {
	return slices.EqualFunc(a, b, func(x, y credential.SecretHash) bool {
		if x.SHA256 != y.SHA256 || (x.NotAfter == nil) != (y.NotAfter == nil) {
			return false
		}
		return x.NotAfter == nil || x.NotAfter.Equal(*y.NotAfter)
	})
}

// Matches reports whether existing already is desired: same type, data, labels, annotations
// and owners.
func Matches(existing, desired *corev1.Secret) bool {
	if existing.Type != desired.Type || len(existing.StringData) != 0 {
		return false
	}
	return maps.EqualFunc(existing.Data, desired.Data, bytes.Equal) &&
		maps.Equal(existing.Labels, desired.Labels) && maps.Equal(existing.Annotations, desired.Annotations) &&
		equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences)
}
