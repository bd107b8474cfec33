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
	"net/http"
	"net/http/httptest"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/verify"
	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

// billingAudience is the audience of the sample ScopePolicy.
const billingAudience = "billing.billing"

// billingAPI is the example resource server: the billing team's API, each route protected by
// the verify middleware with the scope it needs.
type billingAPI struct {
	*httptest.Server
	verifier *verify.Verifier
}

func startBillingAPI(ctx context.Context) *billingAPI {
	v, err := verify.New(ctx, sys.Issuer, billingAudience)
	Expect(err).NotTo(HaveOccurred())
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s from %s\n", claims.ClientID, claims.Namespace)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", v.Middleware("invoices:read")(ok))
	mux.Handle("POST /invoices", v.Middleware("invoices:write")(ok))
	mux.Handle("POST /refunds", v.Middleware("refunds:issue")(ok))
	api := &billingAPI{Server: httptest.NewServer(mux), verifier: v}
	DeferCleanup(api.Close)
	return api
}

// mountClient waits for the client to be ready and mounts its credential Secret in a new volume.
func mountClient(ctx context.Context, namespace, name string) (*volume, *corev1.Secret) {
	m := readyClient(ctx, namespace, name)
	sec := credentialSecret(ctx, m)
	v := newVolume(GinkgoT().TempDir())
	v.sync(sec)
	return v, sec
}

var _ = Describe("The samples, applied from config/samples", Ordered, func() {
	var (
		api    *billingAPI
		worker *volume
	)

	BeforeAll(func(ctx SpecContext) {
		applyFiles(ctx, sampleFiles()...)
		worker, _ = mountClient(ctx, "payments", "billing-worker")
		api = startBillingAPI(ctx)
	})

	It("give the payments worker a credential Secret with what a pod needs", func(ctx SpecContext) {
		m := readyClient(ctx, "payments", "billing-worker")
		Expect(m.Status.ClientID).To(HavePrefix("m2mc_"))
		Expect(m.Status.GrantedScopes).To(ConsistOf("invoices:read"), "granted by namespace labels")
		Expect(m.Status.DeniedScopes).To(ConsistOf("invoices:write"), "asked for, granted by no policy")
		Expect(meta.IsStatusConditionFalse(m.Status.Conditions, authv1alpha1.ConditionScopesGranted)).To(BeTrue())

		sec := credentialSecret(ctx, m)
		Expect(string(sec.Type)).To(Equal(authv1alpha1.SecretTypeClientCredentials))
		Expect(metav1.IsControlledBy(sec, m)).To(BeTrue(), "the Secret is owned by its M2MClient")

		c, err := readMounted(worker.dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.ClientID).To(Equal(m.Status.ClientID))
		Expect(c.ClientSecret).To(HavePrefix("m2ms_"))
		Expect(c.Issuer).To(Equal(sys.Issuer))
		Expect(c.TokenURL).To(Equal(sys.Issuer + "/oauth2/token"))
		Expect(c.Scope).To(Equal("invoices:read"))
		Expect(c.Audience).To(Equal(billingAudience))
	})

	It("issue a token with x/oauth2 that the API accepts for the granted scope", func(ctx SpecContext) {
		c, err := readMounted(worker.dir)
		Expect(err).NotTo(HaveOccurred())
		tok, err := oauthConfig(c).Token(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(tok.TokenType).To(Equal("Bearer"))

		claims, err := api.verifier.Verify(ctx, tok.AccessToken)
		Expect(err).NotTo(HaveOccurred())
		Expect(claims.ClientID).To(Equal(c.ClientID))
		Expect(claims.Subject).To(Equal(c.ClientID))
		Expect(claims.Namespace).To(Equal("payments"))
		Expect(claims.Scopes).To(ConsistOf("invoices:read"))
		Expect(claims.Extra).To(HaveKeyWithValue("team", "payments"), "the client's claims are copied")

		Expect(doRequest(ctx, http.DefaultClient, http.MethodGet, api.URL+"/invoices", "Bearer "+tok.AccessToken)).
			To(Equal(http.StatusOK))
	})

	It("answer 401 without a token, or with a malformed or forged one", func(ctx SpecContext) {
		Expect(doRequest(ctx, http.DefaultClient, http.MethodGet, api.URL+"/invoices", "")).
			To(Equal(http.StatusUnauthorized))
		Expect(doRequest(ctx, http.DefaultClient, http.MethodGet, api.URL+"/invoices", "Bearer not-a-jwt")).
			To(Equal(http.StatusUnauthorized))

		// Everything right except the key: it claims our issuer, audience and scope.
		forger := verifytest.NewServer(verifytest.WithIssuerURL(sys.Issuer), verifytest.WithAudience(billingAudience))
		DeferCleanup(forger.Close)
		forged := forger.Token(verifytest.Scope("invoices:read"))
		Expect(doRequest(ctx, http.DefaultClient, http.MethodGet, api.URL+"/invoices", "Bearer "+forged)).
			To(Equal(http.StatusUnauthorized))
	})

	It("answer 403 to a valid token that lacks the route's scope", func(ctx SpecContext) {
		c, err := readMounted(worker.dir)
		Expect(err).NotTo(HaveOccurred())
		tok, err := oauthConfig(c).Token(ctx)
		Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.URL+"/invoices", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
		Expect(resp.Header.Get("WWW-Authenticate")).To(ContainSubstring(`error="insufficient_scope"`))
	})

	It("refuse to issue a scope the policy does not grant, and a wrong secret", func(ctx SpecContext) {
		c, err := readMounted(worker.dir)
		Expect(err).NotTo(HaveOccurred())
		_, err = oauthConfig(c, "invoices:write").Token(ctx)
		Expect(oauthErrorCode(err)).To(Equal("invalid_scope"))

		wrong := c
		wrong.ClientSecret = c.ClientSecret[:len(c.ClientSecret)-1] + flip(c.ClientSecret[len(c.ClientSecret)-1])
		_, err = oauthConfig(wrong).Token(ctx)
		Expect(oauthErrorCode(err)).To(Equal("invalid_client"))
	})

	It("grant by name: the admin client may write invoices and issue refunds", func(ctx SpecContext) {
		admin, _ := mountClient(ctx, "payments", "billing-admin")
		c, err := readMounted(admin.dir)
		Expect(err).NotTo(HaveOccurred())
		tok, err := oauthConfig(c).Token(ctx)
		Expect(err).NotTo(HaveOccurred())
		for _, route := range []string{"/invoices", "/refunds"} {
			Expect(doRequest(ctx, http.DefaultClient, http.MethodPost, api.URL+route, "Bearer "+tok.AccessToken)).
				To(Equal(http.StatusOK), "POST %s", route)
		}
	})
})

// flip returns a different alphanumeric character, so that a secret stays well-formed but wrong.
func flip(b byte) string {
	if b == 'a' {
		return "b"
	}
	return "a"
}
