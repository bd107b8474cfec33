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
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// Run with: make scale (go test -tags scale ./controllers -run TestControllers -ginkgo.focus Scale -timeout 30m)
// SCALE_CLIENTS sets the size of the readiness run (default 1000; the goal is 15 ms per
// client: 1,000 in 15 s, 10,000 in 150 s). The propagation run is always 1,000 clients and 50
// policies.
var _ = Describe("Scale", Label("scale"), func() {
	It("makes every new client CredentialsReady in at most 15 ms per client", func() {
		n := envInt("SCALE_CLIENTS", 1000)
		apiNS, clientNS := newNamespace(nil), newNamespace(nil)
		createPolicies(apiNS, clientNS, 10)
		ready := watchReady(clientNS)
		before := apiRequests()
		start := time.Now()
		createClients(clientNS, n, 10)
		created := time.Since(start)
		Eventually(ready.Load).WithTimeout(time.Duration(n) * 100 * time.Millisecond).WithPolling(200 * time.Millisecond).
			Should(BeNumerically("==", n))
		took := time.Since(start)
		fmt.Fprintf(os.Stdout, "SCALE ready clients=%d all_credentials_ready=%.2fs (creating them took %.2fs) per_client=%.1fms\n",
			n, took.Seconds(), created.Seconds(), float64(took.Milliseconds())/float64(n))
		fmt.Fprintf(os.Stdout, "SCALE api calls per new client (the test's create included): %s\n", perClient(before, apiRequests(), n))
		AddReportEntry("all credentials ready", took)
		Expect(took).To(BeNumerically("<=", time.Duration(n)*15*time.Millisecond))
	})

	It("reflects a policy edit in every affected record in under 5 s", func() {
		const nClients, nPolicies = 1000, 50
		apiNS, clientNS := newNamespace(nil), newNamespace(nil)
		By(fmt.Sprintf("creating %d policies and %d clients", nPolicies, nClients))
		target := createPolicies(apiNS, clientNS, nPolicies)
		start := time.Now()
		createClients(clientNS, nClients, nPolicies)
		Eventually(func() int { return countRecords(clientNS, "api-0.", "api0:read", 1) }).
			WithTimeout(10 * time.Minute).WithPolling(500 * time.Millisecond).Should(Equal(nClients))
		granted := time.Since(start)

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
		before := apiRequests()
		Eventually(func() int { return countRecords(clientNS, "api-0.", "api0:write", 2) }).
			WithTimeout(5 * time.Minute).WithPolling(100 * time.Millisecond).Should(Equal(nClients))
		propagated := time.Since(edit)
		// Every status has followed too once each record has: count the calls the edit cost.
		Eventually(func() int { return countStatuses(clientNS, "api0:write") }).
			WithTimeout(5 * time.Minute).WithPolling(100 * time.Millisecond).Should(Equal(nClients))
		after := apiRequests()

		fmt.Fprintf(os.Stdout, "SCALE propagation clients=%d policies=%d all_records_granted=%.2fs policy_edit_propagated=%.2fs\n",
			nClients, nPolicies, granted.Seconds(), propagated.Seconds())
		fmt.Fprintf(os.Stdout, "SCALE api calls per affected client for the edit ): %s\n", perClient(before, after, nClients))
		AddReportEntry("policy edit propagation", propagated)
		Expect(propagated).To(BeNumerically("<", 5*time.Second))
	})
})

// createPolicies creates n policies in apiNS, policy i offering api<i>:read and api<i>:write and
// granting api<i>:read to every client in clientNS. It returns policy 0.
func createPolicies(apiNS, clientNS string, n int) *authv1alpha1.ScopePolicy {
	var first *authv1alpha1.ScopePolicy
	for i := range n {
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
		ExpectWithOffset(1, k8sClient.Create(ctx, p)).To(Succeed())
		if i == 0 {
			first = p
		}
	}
	return first
}

// createClients creates n clients in ns from 8 goroutines (as kubectl apply of many files, or
// Argo CD, would), client i requesting api0:read, api0:write and api<1+i%(policies-1)>:read.
func createClients(ns string, n, policies int) {
	fast := rest.CopyConfig(cfg)
	fast.QPS, fast.Burst = 1000, 2000
	c, err := client.New(fast, client.Options{Scheme: k8sClient.Scheme()})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs <- c.Create(ctx, &authv1alpha1.M2MClient{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c-%d", i)},
					Spec: authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{
						"api0:read", "api0:write", authv1alpha1.ScopeToken(fmt.Sprintf("api%d:read", 1+i%(policies-1))),
					}},
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
	}
}

// watchReady counts, from a watch rather than repeated lists (a list of 10,000 clients every
// poll would load the API server being measured), the clients in ns that are CredentialsReady.
func watchReady(ns string) *atomic.Int64 {
	c, err := cache.New(cfg, cache.Options{Scheme: k8sClient.Scheme(), DefaultNamespaces: map[string]cache.Config{ns: {}}})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	inf, err := c.GetInformer(ctx, &authv1alpha1.M2MClient{})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var mu sync.Mutex
	seen := map[string]bool{}
	var count atomic.Int64
	update := func(obj any) {
		m, ok := obj.(*authv1alpha1.M2MClient)
		if !ok || !meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionCredentialsReady) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[m.Name] {
			seen[m.Name] = true
			count.Add(1)
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, n any) { update(n) },
	})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	cctx, cancel := context.WithCancel(ctx)
	DeferCleanup(cancel)
	go func() { _ = c.Start(cctx) }()
	ExpectWithOffset(1, c.WaitForCacheSync(cctx)).To(BeTrue())
	return &count
}

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
			if len(g.Audience) >= len(audPrefix) && g.Audience[:len(audPrefix)] == audPrefix && len(g.Scopes) >= n && slices.Contains(g.Scopes, scope) {
				count++
			}
		}
	}
	return count
}

// countStatuses counts the clients in ns whose status lists scope as granted.
func countStatuses(ns, scope string) int {
	var list authv1alpha1.M2MClientList
	ExpectWithOffset(1, k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	count := 0
	for _, c := range list.Items {
		if slices.Contains(c.Status.GrantedScopes, scope) {
			count++
		}
	}
	return count
}

// apiRequests reads the API server's apiserver_request_total for Secrets and M2MClients, summed
// by verb (LIST and WATCH left out: the test's own polling lists).
func apiRequests() map[string]float64 {
	cs, err := kubernetes.NewForConfig(cfg)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		res := label(line, "resource")
		if res != "secrets" && res != "m2mclients" && res != "scopepolicies" && res != "events" {
			continue
		}
		verb := label(line, "verb")
		if verb == "LIST" || verb == "WATCH" {
			continue
		}
		if sub := label(line, "subresource"); sub != "" {
			verb += "/" + sub
		}
		verb = res + ":" + verb
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			out[verb] += v
		}
	}
	return out
}

func label(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

func perClient(before, after map[string]float64, n int) string {
	verbs := make([]string, 0, len(after))
	for v := range after {
		if after[v] > before[v] {
			verbs = append(verbs, v)
		}
	}
	sort.Strings(verbs)
	parts := make([]string, 0, len(verbs))
	for _, v := range verbs {
		parts = append(parts, fmt.Sprintf("%s=%.2f", v, (after[v]-before[v])/float64(n)))
	}
	return strings.Join(parts, " ")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
