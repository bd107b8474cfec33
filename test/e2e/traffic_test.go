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

package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

const (
	// refundWorkerTTL and refundWorkerGrace are spec.tokenTTL and spec.secretRotation.gracePeriod
	// in testdata/refund-worker.yaml.
	refundWorkerTTL   = time.Minute
	refundWorkerGrace = 20 * time.Second
	// callInterval paces each traffic goroutine: steady load, not a benchmark.
	callInterval = 20 * time.Millisecond
)

// fetchLog counts the token requests of the pod, by which secret they used (compared in memory,
// never printed) and how they ended.
type fetchLog struct {
	mu        sync.Mutex
	oldSecret string
	oldOK     int
	newOK     int
	failed    map[string]int
}

func (f *fetchLog) record(secret string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil:
		f.failed[err.Error()]++
	case secret == f.oldSecret:
		f.oldOK++
	default:
		f.newOK++
	}
}

func (f *fetchLog) counts() (oldOK, newOK int, failed map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.oldOK, f.newOK, maps.Clone(f.failed)
}

// succeeded returns a poll function for Eventually: the number of successful token requests
// with the old secret (or the new one). A failed request stops the polling at once: waiting on
// would only turn a clear failure into a timeout.
func (f *fetchLog) succeeded(old bool) func() int {
	return func() int {
		oldOK, newOK, failed := f.counts()
		if len(failed) > 0 {
			StopTrying(fmt.Sprintf("token requests failed: %v", failed)).Now()
		}
		if old {
			return oldOK
		}
		return newOK
	}
}

// tally records the outcomes of one route's calls.
type tally struct {
	mu sync.Mutex
	// ok and forbidden count 200 and 403 answers; other counts everything else by description.
	ok, forbidden int
	other         map[string]int
	// okAfterForbidden counts 200 answers after the first 403: a scope that came back.
	okAfterForbidden int
}

func (t *tally) add(status int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		t.other[err.Error()]++
	case status == http.StatusOK:
		t.ok++
		if t.forbidden > 0 {
			t.okAfterForbidden++
		}
	case status == http.StatusForbidden:
		t.forbidden++
	default:
		t.other[fmt.Sprintf("HTTP %d", status)]++
	}
}

// snapshot returns a copy of the counts.
func (t *tally) snapshot() (ok, forbidden, okAfterForbidden int, other map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ok, t.forbidden, t.okAfterForbidden, maps.Clone(t.other)
}

// traffic is steady load on the billing API: readers on GET /invoices (a scope the client keeps
// throughout) and one goroutine on POST /refunds (a scope that is revoked on the way).
type traffic struct {
	invoices, refunds tally
	stop              context.CancelFunc
	wg                sync.WaitGroup
}

func startTraffic(ctx context.Context, c *apiClient, apiURL string, readers int) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	t := &traffic{stop: cancel}
	t.invoices.other, t.refunds.other = map[string]int{}, map[string]int{}
	for range readers {
		t.loop(ctx, c, http.MethodGet, apiURL+"/invoices", &t.invoices)
	}
	t.loop(ctx, c, http.MethodPost, apiURL+"/refunds", &t.refunds)
	return t
}

// loop calls the route every callInterval until ctx ends. A call cut short by the end of the
// traffic is not counted: it is the test stopping, not the system failing.
func (t *traffic) loop(ctx context.Context, c *apiClient, method, url string, into *tally) {
	t.wg.Add(1)
	go func() {
		defer GinkgoRecover()
		defer t.wg.Done()
		tick := time.NewTicker(callInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			status, err := c.call(ctx, method, url)
			if ctx.Err() != nil {
				return
			}
			into.add(status, err)
		}
	}()
}

// end stops the traffic and waits for every goroutine.
func (t *traffic) end() {
	t.stop()
	t.wg.Wait()
}

// secretValue reads the current client_secret of the credential Secret.
func secretValue(ctx context.Context, sec *corev1.Secret) string {
	cur := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sec), cur)).To(Succeed())
	return string(cur.Data["client_secret"])
}

var _ = Describe("A client under steady traffic", func() {
	It("sees no failed call through a secret rotation and a scope revocation", func(ctx SpecContext) {
		By("applying the samples, the refund worker, and a billing policy granting it refunds:issue")
		applyFiles(ctx, sampleFiles()...)
		applyFiles(ctx, "test/e2e/testdata/billing-policy.yaml", "test/e2e/testdata/refund-worker.yaml")
		m := readyClient(ctx, "payments", "refund-worker")
		sec := &corev1.Secret{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, sec)).To(Succeed())
			g.Expect(string(sec.Data["scope"])).To(Equal("invoices:read refunds:issue"))
		}).WithContext(ctx).Should(Succeed())
		vol := newVolume(GinkgoT().TempDir())
		vol.sync(sec)
		oldCreds, err := readMounted(vol.dir)
		Expect(err).NotTo(HaveOccurred())
		api := startBillingAPI(ctx)

		By("starting steady traffic from a client that refreshes its token every second")
		fetches := &fetchLog{oldSecret: oldCreds.ClientSecret, failed: map[string]int{}}
		pod := &podTokenSource{ctx: ctx, dir: vol.dir, onFetch: fetches.record}
		// Refreshing a second into the token's life keeps new tokens coming through the
		// rotation and the revocation; a real client refreshes a little before expiry.
		tr := startTraffic(ctx, newAPIClient(pod, refundWorkerTTL-time.Second), api.URL, 3)
		DeferCleanup(tr.end)
		Eventually(func() int { ok, _, _, _ := tr.refunds.snapshot(); return ok }).WithContext(ctx).
			Should(BeNumerically(">=", 5), "refunds are allowed before the revocation")

		rotateUnderTraffic(ctx, m, sec, vol, fetches, oldCreds)
		revokeUnderTraffic(ctx, m, sec, vol, api, tr)

		By("letting the traffic run on, then checking every call")
		before, _, _, _ := tr.invoices.snapshot()
		Eventually(func() int { ok, _, _, _ := tr.invoices.snapshot(); return ok }).WithContext(ctx).
			Should(BeNumerically(">=", before+50))
		tr.end()
		failOnComponentError()

		ok, forbidden, _, other := tr.invoices.snapshot()
		oldOK, newOK, _ := fetches.counts()
		GinkgoWriter.Printf("GET /invoices: %d ok; token requests: %d with the old secret, %d with the new\n", ok, oldOK, newOK)
		Expect(other).To(BeEmpty(), "failed GET /invoices calls (the client keeps invoices:read throughout)")
		Expect(forbidden).To(BeZero(), "GET /invoices answered 403")
		Expect(ok).To(BeNumerically(">=", 200), "too little traffic for a meaningful result")
		ok, forbidden, okAfter, other := tr.refunds.snapshot()
		Expect(other).To(BeEmpty(), "failed POST /refunds calls (only 200 before the revocation and 403 after are right)")
		Expect(ok).To(BeNumerically(">", 0))
		Expect(forbidden).To(BeNumerically(">", 0))
		Expect(okAfter).To(BeZero(), "refunds:issue came back after the first 403")
		_, _, failed := fetches.counts()
		Expect(failed).To(BeEmpty(), "failed token requests")
	}, NodeTimeout(3*time.Minute))
})

// rotateUnderTraffic rotates the client secret by annotation and checks the grace period: the
// old secret keeps working until the pod's volume has the new one, then stops.
func rotateUnderTraffic(ctx context.Context, m *authv1alpha1.M2MClient, sec *corev1.Secret, vol *volume, fetches *fetchLog, old mountedCredentials) {
	By("rotating the secret: kubectl annotate m2mclient refund-worker auth.m2m.dev/rotate=e2e")
	requested := time.Now()
	patch := client.MergeFrom(m.DeepCopy())
	m.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "e2e"}
	Expect(k8s.Patch(ctx, m, patch)).To(Succeed())
	Eventually(func() string { return secretValue(ctx, sec) }).WithContext(ctx).ShouldNot(Equal(old.ClientSecret))
	rotated := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sec), rotated)).To(Succeed())
	fresh := old
	fresh.ClientSecret = string(rotated.Data["client_secret"])
	Eventually(func() error { _, err := oauthConfig(fresh).Token(ctx); return err }).WithContext(ctx).
		Should(Succeed(), "the token server accepts the new secret")

	By("the pod still has the old secret (the kubelet has not synced yet): it keeps getting tokens")
	oldBefore, _, _ := fetches.counts()
	Eventually(fetches.succeeded(true)).WithContext(ctx).
		Should(BeNumerically(">=", oldBefore+3), "token requests with the old secret during the grace period")

	By("the kubelet syncs the volume: the pod switches to the new secret")
	vol.sync(rotated)
	_, newBefore, _ := fetches.counts()
	Eventually(fetches.succeeded(false)).WithContext(ctx).Should(BeNumerically(">=", newBefore+3))

	By("after the grace period the old secret is refused, and not before")
	Eventually(func() string { _, err := oauthConfig(old).Token(ctx); return oauthErrorCode(err) }).
		WithContext(ctx).WithTimeout(refundWorkerGrace + time.Minute).WithPolling(500 * time.Millisecond).
		Should(Equal("invalid_client"))
	// The record's notAfter is the rotation time plus the grace period, truncated to the second.
	Expect(time.Since(requested)).To(BeNumerically(">=", refundWorkerGrace-time.Second),
		"the old secret was refused before its grace period ended")
}

// revokeUnderTraffic edits the billing policy to revoke refunds:issue and checks that the
// client's tokens lose the scope while it keeps invoices:read.
func revokeUnderTraffic(ctx context.Context, m *authv1alpha1.M2MClient, sec *corev1.Secret, vol *volume, api *billingAPI, tr *traffic) {
	By("revoking refunds:issue: the API team applies a new version of its policy")
	revoked := time.Now()
	applyFiles(ctx, "test/e2e/testdata/billing-policy-revoked.yaml")
	Eventually(func(g Gomega) {
		cur := &authv1alpha1.M2MClient{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), cur)).To(Succeed())
		g.Expect(cur.Status.GrantedScopes).To(ConsistOf("invoices:read"))
		g.Expect(cur.Status.DeniedScopes).To(ConsistOf("refunds:issue"))
		got := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sec), got)).To(Succeed())
		g.Expect(string(got.Data["scope"])).To(Equal("invoices:read"))
	}).WithContext(ctx).Should(Succeed())

	By("the client's next tokens lack refunds:issue: the API answers 403 to refunds")
	Eventually(func() int { _, f, _, _ := tr.refunds.snapshot(); return f }).WithContext(ctx).
		Should(BeNumerically(">", 0))
	GinkgoWriter.Printf("revocation reached the API after %s\n", time.Since(revoked).Round(time.Millisecond))
	c, err := readMounted(vol.dir)
	Expect(err).NotTo(HaveOccurred())
	tok, err := oauthConfig(c).Token(ctx)
	Expect(err).NotTo(HaveOccurred())
	claims, err := api.verifier.Verify(ctx, tok.AccessToken)
	Expect(err).NotTo(HaveOccurred())
	Expect(claims.Scopes).To(ConsistOf("invoices:read"))
	_, err = oauthConfig(c, "refunds:issue").Token(ctx)
	Expect(oauthErrorCode(err)).To(Equal("invalid_scope"), "asking for the revoked scope explicitly")
}
