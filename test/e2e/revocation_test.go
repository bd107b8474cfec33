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
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/verify"
)

// revocationBound is what the issue promises with verify's default refresh (2 s): a revoked
// client's existing tokens are refused within 5 s.
const revocationBound = 5 * time.Second

// holder calls the API in a loop with one token it got before the revocation, never a new one,
// and records when it was first refused.
type holder struct {
	mu        sync.Mutex
	ok, other int
	refused   time.Time
}

func (h *holder) add(status int, err error, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil && status == http.StatusOK:
		h.ok++
	case err == nil && status == http.StatusUnauthorized:
		if h.refused.IsZero() {
			h.refused = at
		}
	default:
		h.other++
	}
}

func (h *holder) state() (ok, other int, refused time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.other, h.refused
}

var _ = Describe("Revocation for local verifiers, under steady traffic", Ordered, func() {
	const apiNS, clientNS = "revapi", "revclients"
	aud := "api." + apiNS
	var (
		apiURL  string
		holders = map[string]*holder{}
		stop    context.CancelFunc
		wg      sync.WaitGroup
	)

	BeforeAll(func(ctx SpecContext) {
		for _, ns := range []string{apiNS, clientNS} {
			Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))).To(Succeed())
		}
		Expect(k8s.Create(ctx, &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: apiNS, Name: "api"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{clientNS}}}},
			},
		})).To(Succeed())
		v, err := verify.New(ctx, sys.Issuer, aud, verify.WithRevocationList())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(v.Close)
		mux := http.NewServeMux()
		mux.Handle("GET /invoices", v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok"))
		})))
		api := httptest.NewServer(mux)
		DeferCleanup(api.Close)
		apiURL = api.URL + "/invoices"

		// Three clients, each with one token, each calling the API every 20 ms.
		trafficCtx, cancel := context.WithCancel(context.Background())
		stop = cancel
		DeferCleanup(func() { cancel(); wg.Wait() })
		hc := &http.Client{Timeout: 5 * time.Second}
		for _, name := range []string{"revoked", "disabled", "bystander"} {
			Expect(k8s.Create(ctx, &authv1alpha1.M2MClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: clientNS, Name: name},
				Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"}},
			})).To(Succeed())
			vol, _ := mountClient(ctx, clientNS, name)
			creds, err := readMounted(vol.dir)
			Expect(err).NotTo(HaveOccurred())
			tok, err := oauthConfig(creds).Token(ctx)
			Expect(err).NotTo(HaveOccurred())
			h := &holder{}
			holders[name] = h
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for trafficCtx.Err() == nil {
					status, err := doRequest(trafficCtx, hc, http.MethodGet, apiURL, "Bearer "+tok.AccessToken)
					if trafficCtx.Err() != nil {
						return
					}
					h.add(status, err, time.Now())
					select {
					case <-trafficCtx.Done():
					case <-time.After(callInterval):
					}
				}
			}()
		}
		Eventually(func(g Gomega) {
			for name, h := range holders {
				ok, _, _ := h.state()
				g.Expect(ok).To(BeNumerically(">", 5), "%s is not accepted yet", name)
			}
		}).WithContext(ctx).Should(Succeed())
	})
	AfterAll(func() { stop() })

	// refusedWithin applies change to the named client and waits for the API to refuse that
	// client's existing token; it returns how long that took.
	refusedWithin := func(ctx context.Context, name string, change func(*authv1alpha1.M2MClient)) time.Duration {
		m := &authv1alpha1.M2MClient{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: clientNS, Name: name}, m)).To(Succeed())
		change(m)
		start := time.Now()
		Expect(k8s.Update(ctx, m)).To(Succeed())
		var took time.Duration
		Eventually(func(g Gomega) {
			_, _, refused := holders[name].state()
			g.Expect(refused.IsZero()).To(BeFalse(), "%s's token is still accepted", name)
			took = refused.Sub(start)
		}).WithContext(ctx).WithTimeout(3 * revocationBound).Should(Succeed())
		AddReportEntry(fmt.Sprintf("%s: existing token refused after", name), took.String())
		GinkgoWriter.Printf("revocation: %s's existing token refused %v after the change\n", name, took)
		return took
	}

	It("refuses a client's existing tokens within the bound after the revoke-tokens annotation, others unaffected", func(ctx SpecContext) {
		took := refusedWithin(ctx, "revoked", func(m *authv1alpha1.M2MClient) {
			m.Annotations = map[string]string{authv1alpha1.AnnotationRevokeTokens: "incident-42"}
		})
		Expect(took).To(BeNumerically("<=", revocationBound))
		for _, name := range []string{"disabled", "bystander"} {
			_, other, refused := holders[name].state()
			Expect(refused.IsZero()).To(BeTrue(), "%s was refused too", name)
			Expect(other).To(BeZero())
		}

		// A token the revoked client gets now is accepted.
		vol, _ := mountClient(ctx, clientNS, "revoked")
		creds, err := readMounted(vol.dir)
		Expect(err).NotTo(HaveOccurred())
		tok, err := oauthConfig(creds).Token(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(doRequest(ctx, http.DefaultClient, http.MethodGet, apiURL, "Bearer "+tok.AccessToken)).To(Equal(http.StatusOK))
	})

	It("refuses a disabled client's existing tokens the same way", func(ctx SpecContext) {
		before, _, _ := holders["bystander"].state()
		took := refusedWithin(ctx, "disabled", func(m *authv1alpha1.M2MClient) { m.Spec.Disabled = true })
		Expect(took).To(BeNumerically("<=", revocationBound))
		ok, other, refused := holders["bystander"].state()
		Expect(refused.IsZero()).To(BeTrue(), "the bystander was refused")
		Expect(other).To(BeZero())
		Expect(ok).To(BeNumerically(">", before), "the bystander's traffic went on")
	})
})
