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
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// Field index names.
const (
	// indexClientScopes indexes M2MClients by each requested scope.
	indexClientScopes = "spec.scopes"
	// indexClientAudiences indexes M2MClients by each audience in their status.
	indexClientAudiences = "status.audiences"
	// indexPolicyAudience indexes ScopePolicies by effective audience.
	indexPolicyAudience = "audience"
	// indexClientServiceAccount indexes ServiceAccount-method M2MClients by
	// "<namespace>/<serviceAccountName>".
	indexClientServiceAccount = "spec.authentication.serviceAccountName"
	// indexSecretClientID indexes the cached Secrets (credential Secrets and records) by their
	// client-id label. A label selector would scan every cached Secret of the namespace: with
	// one record per client, that made each first issuance cost O(clients).
	indexSecretClientID = "metadata.labels.client-id"
)

func setupIndexes(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	ctx := context.Background()
	if err := idx.IndexField(ctx, &authv1alpha1.M2MClient{}, indexClientScopes, func(o client.Object) []string {
		c := o.(*authv1alpha1.M2MClient)
		out := make([]string, 0, len(c.Spec.Scopes))
		for _, s := range c.Spec.Scopes {
			out = append(out, string(s))
		}
		return out
	}); err != nil {
		return fmt.Errorf("indexing M2MClients by scope: %w", err)
	}
	if err := idx.IndexField(ctx, &authv1alpha1.M2MClient{}, indexClientAudiences, func(o client.Object) []string {
		return o.(*authv1alpha1.M2MClient).Status.Audiences
	}); err != nil {
		return fmt.Errorf("indexing M2MClients by audience: %w", err)
	}
	if err := idx.IndexField(ctx, &authv1alpha1.M2MClient{}, indexJWKSFrom, func(o client.Object) []string {
		if ref, ok := jwksRefOf(o.(*authv1alpha1.M2MClient)); ok {
			return []string{ref.indexKey()}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing M2MClients by jwksFrom: %w", err)
	}
	if err := idx.IndexField(ctx, &authv1alpha1.M2MClient{}, indexClientServiceAccount, func(o client.Object) []string {
		if key, ok := serviceAccountKey(o.(*authv1alpha1.M2MClient)); ok {
			return []string{key}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing M2MClients by ServiceAccount: %w", err)
	}
	if err := idx.IndexField(ctx, &corev1.Secret{}, indexSecretClientID, func(o client.Object) []string {
		if id, ok := o.GetLabels()[authv1alpha1.LabelClientID]; ok {
			return []string{id}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing Secrets by client id: %w", err)
	}
	if err := idx.IndexField(ctx, &authv1alpha1.ScopePolicy{}, indexPolicyAudience, func(o client.Object) []string {
		return []string{resolve.Audience(o.(*authv1alpha1.ScopePolicy))}
	}); err != nil {
		return fmt.Errorf("indexing ScopePolicies by audience: %w", err)
	}
	return nil
}
