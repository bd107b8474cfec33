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

package testenv

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TenantRules are everything a team may do in its own namespace in the tenancy tests: all of
// M2MClients and ScopePolicies, Secrets, ConfigMaps and ServiceAccounts (and their tokens). A
// malicious tenant has exactly these rights, and none outside its namespace.
var TenantRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"auth.m2m.dev"}, Resources: []string{"m2mclients", "scopepolicies"}, Verbs: []string{"*"}},
	{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "serviceaccounts", "serviceaccounts/token"}, Verbs: []string{"*"}},
}

// Tenant gives user the TenantRules in namespace ns (a Role and a RoleBinding written with
// admin) and returns a client that acts as that user through impersonation, with the groups
// every authenticated user has and nothing else.
func Tenant(ctx context.Context, admin client.Client, cfg *rest.Config, ns, user string) (client.Client, error) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
		Rules:      TenantRules,
	}
	if err := admin.Create(ctx, role); client.IgnoreAlreadyExists(err) != nil {
		return nil, fmt.Errorf("creating the tenant Role in %s: %w", ns, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := admin.Create(ctx, binding); client.IgnoreAlreadyExists(err) != nil {
		return nil, fmt.Errorf("binding the tenant Role in %s: %w", ns, err)
	}
	return Impersonate(cfg, user)
}

// Impersonate returns a client acting as user, a member of system:authenticated only.
func Impersonate(cfg *rest.Config, user string, groups ...string) (client.Client, error) {
	icfg := rest.CopyConfig(cfg)
	icfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	c, err := client.New(icfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("creating a client impersonating %s: %w", user, err)
	}
	return c, nil
}
