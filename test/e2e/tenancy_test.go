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
	"net/http"
	"net/url"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// The tenancy review, end to end: a team whose only rights are testenv.TenantRules in namespace
// mallory applies YAML as it would with kubectl, and asks the token server for tokens with
// x/oauth2.
var _ = Describe("A malicious tenant", Ordered, func() {
	const tenantNS = "mallory"
	var tenant client.Client

	BeforeAll(func(ctx SpecContext) {
		applyFiles(ctx, sampleFiles()...)
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNS}}))).To(Succeed())
		var err error
		tenant, err = testenv.Tenant(ctx, k8s, sys.Config, tenantNS, "mallory")
		Expect(err).NotTo(HaveOccurred())
		applyFilesAs(ctx, tenant, "test/e2e/testdata/tenancy/squat.yaml")
	})

	// tokenFor asks for a token as the client whose credential Secret the tenant reads.
	tokenFor := func(ctx context.Context, name, audience string, scopes ...string) error {
		sec := &corev1.Secret{}
		Eventually(func() error {
			return tenant.Get(ctx, client.ObjectKey{Namespace: tenantNS, Name: name + "-m2m"}, sec)
		}).WithContext(ctx).Should(Succeed())
		v := newVolume(GinkgoT().TempDir())
		v.sync(sec)
		creds, err := readMounted(v.dir)
		Expect(err).NotTo(HaveOccurred())
		cfg := oauthConfig(creds, scopes...)
		cfg.EndpointParams = url.Values{"audience": {audience}}
		_, err = cfg.Token(ctx)
		return err
	}

	It("never gets a token for another team's audience, even after the owner's policy is deleted and re-created", func(ctx SpecContext) {
		squat := &authv1alpha1.ScopePolicy{}
		Eventually(func(g Gomega) {
			g.Expect(tenant.Get(ctx, client.ObjectKey{Namespace: tenantNS, Name: "billing"}, squat)).To(Succeed())
			cond := meta.FindStatusCondition(squat.Status.Conditions, authv1alpha1.ConditionReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(authv1alpha1.ReasonAudienceNotBound))
		}).WithContext(ctx).Should(Succeed())
		// invalid_client until the thief's record reaches the token server, then invalid_target:
		// never a token.
		Eventually(func() string {
			err := tokenFor(ctx, "thief", billingAudience, "refunds:issue")
			if err == nil {
				StopTrying("the squatter got a token for " + billingAudience).Now()
			}
			return oauthErrorCode(err)
		}).WithContext(ctx).Should(Equal("invalid_target"))

		// GitOps prune + apply of the billing team's policy: the tenant's policy is now the
		// older claimant of billing.billing, and still holds nothing.
		policy := &authv1alpha1.ScopePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "billing", Name: "billing"}}
		Expect(k8s.Delete(ctx, policy)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy))
		}).WithContext(ctx).Should(BeTrue())
		Consistently(func() string {
			return oauthErrorCode(tokenFor(ctx, "thief", billingAudience, "refunds:issue"))
		}).WithContext(ctx).WithTimeout(time.Second).WithPolling(200 * time.Millisecond).Should(Equal("invalid_target"))

		applyFiles(ctx, "config/samples/auth_v1alpha1_scopepolicy.yaml")
		recreated := time.Now()
		api := startBillingAPI(ctx)
		worker, _ := mountClient(ctx, "payments", "billing-worker")
		caller := newAPIClient(&podTokenSource{ctx: ctx, dir: worker.dir}, 0)
		Eventually(func() (int, error) {
			caller.reset()
			return caller.once(ctx, http.MethodGet, api.URL+"/invoices")
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Equal(http.StatusOK))
		GinkgoWriter.Printf("TENANCY the owner's client called its API again %s after the policy was re-created\n", time.Since(recreated).Round(time.Millisecond))
		Expect(oauthErrorCode(tokenFor(ctx, "thief", billingAudience, "refunds:issue"))).To(Equal("invalid_target"))
		Expect(oauthErrorCode(tokenFor(ctx, "thief", billingAudience))).To(Equal("invalid_target"))
	})

	It("cannot freeze a revocation by taking its credential Secret away from the controller", func(ctx SpecContext) {
		const reportsAudience = "reports.billing"
		applyFiles(ctx, "test/e2e/testdata/tenancy/reports-policy.yaml")
		readyClient(ctx, tenantNS, "reporter")
		Expect(tokenFor(ctx, "reporter", reportsAudience, "reports:read")).To(Succeed())

		// The tenant removes the ownerReference: the controller may no longer write the Secret.
		sec := &corev1.Secret{}
		Expect(tenant.Get(ctx, client.ObjectKey{Namespace: tenantNS, Name: "reporter-m2m"}, sec)).To(Succeed())
		sec.OwnerReferences = nil
		Expect(tenant.Update(ctx, sec)).To(Succeed())
		Eventually(func(g Gomega) string {
			m := &authv1alpha1.M2MClient{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: tenantNS, Name: "reporter"}, m)).To(Succeed())
			cond := meta.FindStatusCondition(m.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			return cond.Reason
		}).WithContext(ctx).Should(Equal(authv1alpha1.ReasonSecretNameConflict))
		Expect(tokenFor(ctx, "reporter", reportsAudience, "reports:read")).To(Succeed(), "the secret delivered before still works")

		// The billing team revokes the grant: issuance stops within a second.
		start := time.Now()
		applyFiles(ctx, "test/e2e/testdata/tenancy/reports-policy-revoked.yaml")
		Eventually(func() string {
			return oauthErrorCode(tokenFor(ctx, "reporter", reportsAudience, "reports:read"))
		}).WithContext(ctx).WithTimeout(time.Second).WithPolling(20 * time.Millisecond).Should(Equal("invalid_target"))
		GinkgoWriter.Printf("TENANCY revocation reached the token server %s after the apply, Secret in conflict\n", time.Since(start).Round(time.Millisecond))

		// Granted again, then disabled by an administrator: refused within a second.
		applyFiles(ctx, "test/e2e/testdata/tenancy/reports-policy.yaml")
		Eventually(func() error { return tokenFor(ctx, "reporter", reportsAudience, "reports:read") }).WithContext(ctx).Should(Succeed())
		start = time.Now()
		Expect(k8s.Patch(ctx, &authv1alpha1.M2MClient{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "reporter"}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"disabled":true}}`)))).To(Succeed())
		Eventually(func() string {
			return oauthErrorCode(tokenFor(ctx, "reporter", reportsAudience, "reports:read"))
		}).WithContext(ctx).WithTimeout(time.Second).WithPolling(20 * time.Millisecond).Should(Equal("unauthorized_client"))
		GinkgoWriter.Printf("TENANCY spec.disabled reached the token server %s after the patch, Secret in conflict\n", time.Since(start).Round(time.Millisecond))
	})
})
