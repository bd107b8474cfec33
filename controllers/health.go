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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// stalledReasons are the Ready=False reasons that waiting will not cure: someone must change
// the spec, a policy, a Secret or a ServiceAccount. kstatus (Flux) reports them as Failed, not
// as InProgress forever.
var stalledReasons = map[string]bool{
	authv1alpha1.ReasonSecretNameConflict:     true,
	authv1alpha1.ReasonInvalidJWKS:            true,
	authv1alpha1.ReasonJWKSNotFound:           true,
	authv1alpha1.ReasonNoScopesGranted:        true,
	authv1alpha1.ReasonServiceAccountNotFound: true,
	authv1alpha1.ReasonAudienceConflict:       true,
	authv1alpha1.ReasonAudienceNotBound:       true,
	authv1alpha1.ReasonGrantWithoutNamespace:  true,
}

// setHealth derives the kstatus conditions from Ready (github.com/kubernetes-sigs/cli-utils
// kstatus conventions, read by Flux and by the Argo CD health checks in docs/gitops.md):
// Stalled=True (Failed) when Ready is False for a reason waiting will not cure, Reconciling=True
// (InProgress) when it is False for any other reason (work pending, a write being retried); and
// neither when Ready is True (Current).
func setHealth(conds *[]metav1.Condition, generation int64) {
	ready := meta.FindStatusCondition(*conds, authv1alpha1.ConditionReady)
	var set, unset string // the condition that holds, and the one that does not
	var reason, msg string
	switch {
	case ready == nil:
		set, unset, reason, msg = authv1alpha1.ConditionReconciling, authv1alpha1.ConditionStalled, authv1alpha1.ReasonReconciling, "not reconciled yet"
	case ready.Status == metav1.ConditionTrue:
		meta.RemoveStatusCondition(conds, authv1alpha1.ConditionStalled)
		meta.RemoveStatusCondition(conds, authv1alpha1.ConditionReconciling)
		return
	case stalledReasons[ready.Reason]:
		set, unset, reason, msg = authv1alpha1.ConditionStalled, authv1alpha1.ConditionReconciling, ready.Reason, ready.Message
	default:
		set, unset, reason, msg = authv1alpha1.ConditionReconciling, authv1alpha1.ConditionStalled, ready.Reason, ready.Message
	}
	meta.RemoveStatusCondition(conds, unset)
	// Set in place: an unchanged condition keeps its lastTransitionTime, so a settled object's
	// status is byte-identical from one reconcile to the next and causes no write.
	meta.SetStatusCondition(conds, metav1.Condition{Type: set, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: generation})
}
