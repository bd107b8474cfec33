//go:build scale

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

package controllers_test

import (
	"fmt"
	"os"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// Run with: go test -tags scale ./controllers -run TestControllers -ginkgo.focus Scale -timeout 30m
// SCALE_CLIENTS and SCALE_POLICIES override the sizes (default 1000 and 50).
var _ = Describe("Scale", Label("scale"), func() {
	It("reflects a policy edit in every affected record in under 5 s", func() {
		nClients, nPolicies := envInt("SCALE_CLIENTS", 1000), envInt("SCALE_POLICIES", 50)
		apiNS := newNamespace(nil)
		clientNS := newNamespace(nil)
		By(fmt.Sprintf("creating %d policies", nPolicies))
		var target *authv1alpha1.ScopePolicy
		for i := range nPolicies {
			p := &authv1alpha1.ScopePolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: fmt.Sprintf("api-%d", i)},
				Spec: authv1alpha1.ScopePolicySpec{
					Scopes: []authv1alpha1.ScopeDefinition{{Name: authv1alpha1.ScopeToken(fmt.Sprintf("api%d:read", i))}, {Name: authv1alpha1.ScopeToken(fmt.Sprintf("api%d:write", i))}},
					Grants: []authv1alpha1.Grant{{
						Scopes:  []authv1alpha1.GrantScope{authv1alpha1.GrantScope(fmt.Sprintf("api%d:read", i))},
						Clients: authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}},
					}},
				},
			}
			Expect(k8sClient.Create(ctx, p)).To(Succeed())
			if i == 0 {
				target = p
			}
		}
		By(fmt.Sprintf("creating %d clients", nClients))
		start := time.Now()
		for i := range nClients {
			c := &authv1alpha1.M2MClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: clientNS, Name: fmt.Sprintf("c-%d", i)},
				Spec: authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{
					"api0:read", "api0:write", authv1alpha1.ScopeToken(fmt.Sprintf("api%d:read", 1+i%(nPolicies-1))),
				}},
			}
			Expect(k8sClient.Create(ctx, c)).To(Succeed())
		}
		Eventually(func() int { return countRecords(clientNS, "api-0.", "api0:read", 1) }).
			WithTimeout(10 * time.Minute).WithPolling(500 * time.Millisecond).Should(Equal(nClients))
		ready := time.Since(start)

		By("granting api0:write to every client")
		Eventually(func() error {
			cur := &authv1alpha1.ScopePolicy{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(target), cur); err != nil {
				return err
			}
			cur.Spec.Grants[0].Scopes = []authv1alpha1.GrantScope{"api0:*"}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		edit := time.Now()
		Eventually(func() int { return countRecords(clientNS, "api-0.", "api0:write", 2) }).
			WithTimeout(5 * time.Minute).WithPolling(100 * time.Millisecond).Should(Equal(nClients))
		propagated := time.Since(edit)

		fmt.Fprintf(os.Stdout, "SCALE clients=%d policies=%d all_records_granted=%.2fs policy_edit_propagated=%.2fs\n",
			nClients, nPolicies, ready.Seconds(), propagated.Seconds())
		AddReportEntry("policy edit propagation", propagated)
		Expect(propagated).To(BeNumerically("<", 5*time.Second))
	})
})

// countRecords counts the records of clients in ns whose grant for the audience with the given
// prefix holds scope, among grants that hold at least n scopes.
func countRecords(ns, audPrefix, scope string, n int) int {
	var list corev1.SecretList
	ExpectWithOffset(1, k8sClient.List(ctx, &list, client.InNamespace(systemNamespace),
		client.MatchingLabels{authv1alpha1.LabelClientNamespace: ns})).To(Succeed())
	count := 0
	for _, s := range list.Items {
		rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
		if err != nil {
			continue
		}
		for _, g := range rec.Grants {
			if len(g.Audience) >= len(audPrefix) && g.Audience[:len(audPrefix)] == audPrefix && len(g.Scopes) >= n && contains(g.Scopes, scope) {
				count++
			}
		}
	}
	return count
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
