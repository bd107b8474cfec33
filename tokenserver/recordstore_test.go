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

package tokenserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

func recordObject(t *testing.T, name string) (*corev1.Secret, string) {
	t.Helper()
	rec, _ := newRecord(t)
	data, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "m2m-system", Name: name, Labels: map[string]string{authv1alpha1.LabelClientID: rec.ClientID}},
		Type:       authv1alpha1.SecretTypeCredentialRecord,
		Data:       map[string][]byte{credential.RecordKey: data},
	}, rec.ClientID
}

// TestRecordStore: what the reflector delivers reaches the index, and a relist (after a watch
// was broken, possibly missing deletions) drops the records that are gone.
func TestRecordStore(t *testing.T) {
	ts := newTestServer(t)
	rs := newRecordStore(ts.Server)
	a, idA := recordObject(t, "a")
	b, idB := recordObject(t, "b")
	c, idC := recordObject(t, "c")
	if err := rs.Replace([]any{a, b}, "1"); err != nil {
		t.Fatal(err)
	}
	if !rs.synced.Load() || !ts.Index().Lookup(idA) || !ts.Index().Lookup(idB) {
		t.Fatal("the first list did not load both records or mark the store synced")
	}
	if err := rs.Add(c); err != nil {
		t.Fatal(err)
	}
	if err := rs.Delete(cache.DeletedFinalStateUnknown{Key: "m2m-system/a", Obj: a}); err != nil {
		t.Fatal(err)
	}
	if ts.Index().Lookup(idA) || !ts.Index().Lookup(idC) {
		t.Fatal("add or delete (final state unknown) not applied")
	}
	// b vanished while the watch was down: the relist holds only c.
	if err := rs.Replace([]any{c}, "2"); err != nil {
		t.Fatal(err)
	}
	if ts.Index().Lookup(idB) || !ts.Index().Lookup(idC) {
		t.Fatal("a relist did not drop the record that is gone")
	}
}
