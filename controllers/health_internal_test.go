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
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// TestSetHealthKeepsTransitionTimes: deriving Stalled or Reconciling again for an unchanged
// Ready changes nothing, so a settled object's status causes no write.
func TestSetHealthKeepsTransitionTimes(t *testing.T) {
	for _, reason := range []string{"NoScopesGranted", "WaitingForCA"} {
		past := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
		conds := []metav1.Condition{{Type: authv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: "m", LastTransitionTime: past}}
		setHealth(&conds, 1)
		for i := range conds {
			conds[i].LastTransitionTime = past
		}
		before := append([]metav1.Condition(nil), conds...)
		setHealth(&conds, 1)
		if !equality.Semantic.DeepEqual(before, conds) {
			t.Errorf("%s: setHealth changed a settled status:\n%+v\n%+v", reason, before, conds)
		}
	}
	conds := []metav1.Condition{{Type: authv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: authv1alpha1.ReasonReady},
		{Type: authv1alpha1.ConditionStalled, Status: metav1.ConditionTrue}, {Type: authv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue}}
	setHealth(&conds, 1)
	if meta.FindStatusCondition(conds, authv1alpha1.ConditionStalled) != nil || meta.FindStatusCondition(conds, authv1alpha1.ConditionReconciling) != nil {
		t.Errorf("Ready=True kept Stalled or Reconciling: %+v", conds)
	}
}

// TestReadyKeepsGrantsWhenPoliciesUnresolved: a pass that could not list the policies (no
// resolution) leaves Ready as the last resolution said, not NoScopesGranted (Stalled).
func TestReadyKeepsGrantsWhenPoliciesUnresolved(t *testing.T) {
	c := &authv1alpha1.M2MClient{}
	c.Generation = 1
	c.Spec.Scopes = []authv1alpha1.ScopeToken{"invoices:read"}
	c.Status.GrantedScopes = []string{"invoices:read"}
	c.Status.Audiences = []string{"billing.team-a"}
	c.Status.Conditions = []metav1.Condition{{Type: authv1alpha1.ConditionCredentialsReady, Status: metav1.ConditionTrue, Reason: authv1alpha1.ReasonCredentialsIssued}}
	s := &clientScope{client: c}
	setReady(s)
	ready := meta.FindStatusCondition(c.Status.Conditions, authv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != authv1alpha1.ReasonReady {
		t.Fatalf("Ready = %+v, want True/%s from the last resolution", ready, authv1alpha1.ReasonReady)
	}
}
