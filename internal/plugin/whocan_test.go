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

package plugin

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// TestRefusal: who-can leaves out exactly the clients the token server refuses whatever their
// grants; a CredentialsReady=False that keeps the delivered credentials in force leaves it in.
func TestRefusal(t *testing.T) {
	rotated := metav1.Now()
	client := func(method authv1alpha1.AuthenticationMethod, disabled bool, reason string, status metav1.ConditionStatus, delivered bool) *authv1alpha1.M2MClient {
		m := &authv1alpha1.M2MClient{Spec: authv1alpha1.M2MClientSpec{Disabled: disabled}, Status: authv1alpha1.M2MClientStatus{ClientID: "m2mc_x"}}
		if method != authv1alpha1.AuthClientSecret {
			m.Spec.Authentication = &authv1alpha1.Authentication{Method: method}
		}
		if reason != "" {
			m.Status.Conditions = []metav1.Condition{{Type: authv1alpha1.ConditionCredentialsReady, Status: status, Reason: reason}}
		}
		if delivered {
			m.Status.SecretRotatedAt = &rotated
		}
		return m
	}
	secret, sa, jwt := authv1alpha1.AuthClientSecret, authv1alpha1.AuthServiceAccount, authv1alpha1.AuthPrivateKeyJWT
	tests := []struct {
		name    string
		m       *authv1alpha1.M2MClient
		refused bool
	}{
		{"ready", client(secret, false, authv1alpha1.ReasonCredentialsIssued, metav1.ConditionTrue, true), false},
		{"disabled", client(secret, true, authv1alpha1.ReasonCredentialsIssued, metav1.ConditionTrue, true), true},
		{"not reconciled", client(secret, false, "", "", false), true},
		{"ServiceAccount missing", client(sa, false, authv1alpha1.ReasonServiceAccountNotFound, metav1.ConditionFalse, false), true},
		{"JWKS missing", client(jwt, false, authv1alpha1.ReasonJWKSNotFound, metav1.ConditionFalse, false), true},
		{"JWKS invalid", client(jwt, false, authv1alpha1.ReasonInvalidJWKS, metav1.ConditionFalse, false), true},
		{"waiting for the CA, never issued", client(secret, false, authv1alpha1.ReasonWaitingForCA, metav1.ConditionFalse, false), true},
		{"name conflict after a secret was delivered", client(secret, false, authv1alpha1.ReasonSecretNameConflict, metav1.ConditionFalse, true), false},
		{"record write failed, ServiceAccount method", client(sa, false, authv1alpha1.ReasonRecordWriteFailed, metav1.ConditionFalse, false), false},
	}
	for _, tt := range tests {
		if got := refusal(tt.m); (got != "") != tt.refused {
			t.Errorf("%s: refusal = %q, want refused=%v", tt.name, got, tt.refused)
		}
	}
	noID := client(secret, false, authv1alpha1.ReasonCredentialsIssued, metav1.ConditionTrue, true)
	noID.Status.ClientID = ""
	if refusal(noID) == "" {
		t.Error("a client without a client id is refused")
	}
}
