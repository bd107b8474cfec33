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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

const audience = "billing.billing"

// m2mClient is an M2MClient of the fixture.
type m2mClient struct {
	ns, name  string
	labels    map[string]string
	scopes    []string
	audiences []authv1alpha1.Audience
	disabled  bool
	sa        string
}

// The fixture: billing's policy grants invoices:write to app=worker clients of team=payments
// namespaces (grants[0]) and invoices:read to namespaces payments and ops (grants[1]); mallory
// squats audience ledger.ledger. The clients cover every reason a client gets, or does not get,
// invoices:write.
var fixtureClients = []m2mClient{
	{ns: "payments", name: "worker", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:write"}},
	{ns: "payments", name: "worker2", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:write", "invoices:read"}},
	{ns: "payments", name: "sa-worker", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:write"}, sa: "sa-worker"},
	{ns: "payments", name: "off", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:write"}, disabled: true},
	{ns: "payments", name: "other", labels: map[string]string{"app": "other"}, scopes: []string{"invoices:write"}},
	{ns: "payments", name: "typo", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:delete"}, audiences: []authv1alpha1.Audience{audience}},
	{ns: "payments", name: "squatted", labels: map[string]string{"app": "worker"}, scopes: []string{"ledger:read"}},
	{ns: "ops", name: "worker", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:write"}},
	{ns: "ops", name: "reader", labels: map[string]string{"app": "worker"}, scopes: []string{"invoices:read"}},
}

func policy(ns, name, aud string, declared []string, grants ...authv1alpha1.Grant) *authv1alpha1.ScopePolicy {
	p := &authv1alpha1.ScopePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: authv1alpha1.ScopePolicySpec{Audience: authv1alpha1.Audience(aud), Grants: grants}}
	for _, d := range declared {
		p.Spec.Scopes = append(p.Spec.Scopes, authv1alpha1.ScopeDefinition{Name: authv1alpha1.ScopeToken(d)})
	}
	return p
}

func grantOf(m authv1alpha1.ClientMatcher, scopes ...string) authv1alpha1.Grant {
	g := authv1alpha1.Grant{Clients: m}
	for _, s := range scopes {
		g.Scopes = append(g.Scopes, authv1alpha1.GrantScope(s))
	}
	return g
}

func create(ctx context.Context, obj client.Object) {
	Expect(client.IgnoreAlreadyExists(sys.Client.Create(ctx, obj))).To(Succeed(), "creating %T %s", obj, obj.GetName())
}

// fixtureReady is set once setUpFixture has run (each container's BeforeAll calls it).
var fixtureReady bool

// setUpFixture creates the namespaces and policies, waits until the controller has taken the
// policies in (so every client's first record already holds its final grants), then the
// clients, and waits until each is reconciled.
func setUpFixture(ctx context.Context) {
	if fixtureReady {
		return
	}
	defer func() { fixtureReady = true }()
	for ns, labels := range map[string]map[string]string{"billing": nil, "mallory": nil, "payments": {"team": "payments"}, "ops": {"team": "ops"}} {
		create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})
	}
	billing := policy("billing", "billing", audience, []string{"invoices:read", "invoices:write", "refunds:issue"},
		grantOf(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}},
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "worker"}}}, "invoices:write"),
		grantOf(authv1alpha1.ClientMatcher{Namespaces: []string{"payments", "ops"}}, "invoices:read"))
	squat := policy("mallory", "ledger", "ledger.ledger", []string{"ledger:read"},
		grantOf(authv1alpha1.ClientMatcher{NamespaceSelector: &metav1.LabelSelector{}}, "ledger:read"))
	for _, p := range []*authv1alpha1.ScopePolicy{billing, squat} {
		create(ctx, p)
		Eventually(func(g Gomega) {
			got := &authv1alpha1.ScopePolicy{}
			g.Expect(sys.Client.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, authv1alpha1.ConditionReady)).NotTo(BeNil())
		}).WithContext(ctx).Should(Succeed())
	}
	for _, fc := range fixtureClients {
		m := &authv1alpha1.M2MClient{ObjectMeta: metav1.ObjectMeta{Namespace: fc.ns, Name: fc.name, Labels: fc.labels},
			Spec: authv1alpha1.M2MClientSpec{Audiences: fc.audiences, Disabled: fc.disabled}}
		for _, s := range fc.scopes {
			m.Spec.Scopes = append(m.Spec.Scopes, authv1alpha1.ScopeToken(s))
		}
		if fc.sa != "" {
			create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: fc.ns, Name: fc.sa}})
			m.Spec.Authentication = &authv1alpha1.Authentication{Method: authv1alpha1.AuthServiceAccount, ServiceAccountName: fc.sa}
		}
		create(ctx, m)
	}
	for _, fc := range fixtureClients {
		Eventually(func(g Gomega) {
			m := &authv1alpha1.M2MClient{}
			g.Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: fc.ns, Name: fc.name}, m)).To(Succeed())
			g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionCredentialsReady)).To(BeTrue(), "%+v", m.Status.Conditions)
		}).WithContext(ctx).Should(Succeed())
	}
}

// explainJSON runs explain -o json for the client.
func explainJSON(ctx context.Context, ns, name string) explainOutput {
	res := kubectlM2M(ctx, "", "explain", name, "-n", ns, "-o", "json")
	Expect(res.err).NotTo(HaveOccurred())
	var out explainOutput
	Expect(json.Unmarshal([]byte(res.out), &out)).To(Succeed())
	return out
}

var _ = Describe("kubectl m2m", Ordered, func() {
	BeforeAll(func(ctx SpecContext) { setUpFixture(ctx) })

	Describe("explain", func() {
		// Each reason of the acceptance: the table names it and the fix; -o json carries it.
		DescribeTable("names the reason and the fix",
			func(ctx SpecContext, ns, name, scope string, reason resolve.Reason, policyName string, words ...string) {
				res := kubectlM2M(ctx, "", "explain", name, "-n", ns)
				Expect(res.err).NotTo(HaveOccurred())
				Expect(res.out).To(MatchRegexp(`(?m)^%s\s+\S+\s+(granted|denied)\s+%s\s`, scope, reason))
				for _, w := range words {
					Expect(res.out).To(ContainSubstring(w))
				}
				out := explainJSON(ctx, ns, name)
				Expect(out.Scopes).To(HaveLen(1))
				v := out.Scopes[0].Verdicts[0]
				Expect(v.Reason).To(Equal(reason))
				Expect(v.Policy).To(Equal(policyName))
				if reason != resolve.ReasonGranted {
					Expect(res.out).To(ContainSubstring("fix: " + v.Fix))
				}
			},
			Entry("granted: the policy and the grant", "payments", "worker", "invoices:write", resolve.ReasonGranted, "billing/billing", "billing/billing  grants[0]"),
			Entry("undeclared scope", "payments", "typo", "invoices:delete", resolve.ReasonScopeNotDeclared, "billing/billing", "does not declare scope invoices:delete"),
			Entry("unmatched namespace labels", "ops", "worker", "invoices:write", resolve.ReasonNamespaceLabelsMismatch, "billing/billing", "selects namespaces by {team=payments}; namespace ops has labels {kubernetes.io/metadata.name=ops,team=ops}"),
			Entry("unmatched client selector", "payments", "other", "invoices:write", resolve.ReasonSelectorMismatch, "billing/billing", "client payments/other has labels {app=other}"),
			Entry("audience not bound to the namespace", "payments", "squatted", "ledger:read", resolve.ReasonAudienceNotBound, "mallory/ledger", "not bound to namespace mallory"),
			Entry("disabled client", "payments", "off", "invoices:write", resolve.ReasonClientDisabled, "billing/billing", "spec.disabled is true"),
		)

		It("explains from the status, and says why, when the caller may not list ScopePolicies", func(ctx SpecContext) {
			_, err := testenv.Tenant(ctx, sys.Client, sys.Config, "payments", "alice")
			Expect(err).NotTo(HaveOccurred())
			res := kubectlM2M(ctx, "", "explain", "worker2", "-n", "payments", "--as", "alice")
			Expect(res.err).NotTo(HaveOccurred())
			Expect(res.out).To(ContainSubstring("limited: listing ScopePolicies in all namespaces: forbidden"))
			Expect(res.out).To(MatchRegexp(`(?m)^invoices:read\s+granted$`))
			Expect(res.out).To(MatchRegexp(`(?m)^invoices:write\s+granted$`))
			Expect(res.out).To(ContainSubstring("audiences (per status): billing.billing"))
		})

		It("prints YAML with -o yaml", func(ctx SpecContext) {
			res := kubectlM2M(ctx, "", "explain", "worker", "-n", "payments", "-o", "yaml")
			Expect(res.err).NotTo(HaveOccurred())
			var out explainOutput
			Expect(yaml.Unmarshal([]byte(res.out), &out)).To(Succeed())
			Expect(out.Scopes[0].Granted).To(BeTrue())
			Expect(out.ClientID).To(HavePrefix("m2mc_"))
		})
	})

	Describe("who-can", func() {
		It("lists exactly the clients the token server issues the scope to", func(ctx SpecContext) {
			res := kubectlM2M(ctx, "", "who-can", audience, "invoices:write", "-o", "json")
			Expect(res.err).NotTo(HaveOccurred())
			var out whoCanOutput
			Expect(json.Unmarshal([]byte(res.out), &out)).To(Succeed())
			listed := []string{}
			for _, e := range out.Clients {
				listed = append(listed, e.Namespace+"/"+e.Name)
				Expect(e.Grants).To(Equal([]int{0}), "through grants[0]")
				Expect(e.ClientID).To(HavePrefix("m2mc_"))
			}
			issued := []string{}
			for _, fc := range fixtureClients {
				if realTokenRequest(ctx, fc, "invoices:write") {
					issued = append(issued, fc.ns+"/"+fc.name)
				}
			}
			slices.Sort(listed)
			slices.Sort(issued)
			Expect(listed).To(Equal(issued), "who-can versus real token requests")
			// The comparison has teeth: granted clients of both methods, and every kind of refusal.
			Expect(issued).To(Equal([]string{"payments/sa-worker", "payments/worker", "payments/worker2"}))
			Expect(out.Excluded).To(ConsistOf(HaveField("Name", "off")))
		})

		It("prints a table, the excluded on request", func(ctx SpecContext) {
			res := kubectlM2M(ctx, "", "who-can", audience, "invoices:write", "--show-excluded")
			Expect(res.err).NotTo(HaveOccurred())
			Expect(res.out).To(ContainSubstring("audience billing.billing (ScopePolicy billing/billing), scope invoices:write: 3 client(s)"))
			Expect(res.out).To(MatchRegexp(`(?m)^payments\s+worker2\s+m2mc_\S+\s+invoices:write\s+grants\[0\]\s+-$`))
			Expect(res.out).To(MatchRegexp(`(?m)^payments\s+off\s+m2mc_\S+\s+invoices:write\s+grants\[0\]\s+disabled`))
		})

		It("lists every scope of the audience without a scope, as YAML", func(ctx SpecContext) {
			res := kubectlM2M(ctx, "", "who-can", audience, "-o", "yaml")
			Expect(res.err).NotTo(HaveOccurred())
			var out whoCanOutput
			Expect(yaml.Unmarshal([]byte(res.out), &out)).To(Succeed())
			Expect(out.Clients).To(ContainElement(And(HaveField("Name", "worker2"), HaveField("Scopes", []string{"invoices:read", "invoices:write"}), HaveField("Grants", []int{0, 1}))))
			Expect(out.Clients).To(ContainElement(And(HaveField("Namespace", "ops"), HaveField("Name", "reader"), HaveField("Grants", []int{1}))))
		})

		It("says so when no policy holds the audience", func(ctx SpecContext) {
			res := kubectlM2M(ctx, "", "who-can", "ledger.ledger")
			Expect(res.err).NotTo(HaveOccurred())
			Expect(res.out).To(ContainSubstring("no ScopePolicy holds audience ledger.ledger"))
		})
	})
})

// realTokenRequest asks the token server for a token of the audience with the scope as the
// client would (its credential Secret, or its ServiceAccount's token), once the token server
// knows the client (invalid_client: its record is not loaded yet), and reports whether it
// issued one.
func realTokenRequest(ctx context.Context, fc m2mClient, scope string) bool {
	sec := &corev1.Secret{}
	Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: fc.ns, Name: fc.name + "-m2m"}, sec)).To(Succeed())
	cfg := clientcredentials.Config{
		ClientID: string(sec.Data[authv1alpha1.CredentialKeyClientID]), ClientSecret: string(sec.Data[authv1alpha1.CredentialKeyClientSecret]),
		TokenURL: string(sec.Data[authv1alpha1.CredentialKeyTokenURL]), Scopes: []string{scope},
		AuthStyle: oauth2.AuthStyleInHeader, EndpointParams: url.Values{"audience": {audience}},
	}
	if fc.sa != "" {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{string(sec.Data[authv1alpha1.CredentialKeyIssuer])}, ExpirationSeconds: ptr.To(int64(600))}}
		Expect(sys.Client.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: fc.ns, Name: fc.sa}}, tr)).To(Succeed())
		cfg.ClientSecret, cfg.AuthStyle = "", oauth2.AuthStyleInParams
		cfg.EndpointParams.Set("client_assertion_type", assertionType)
		cfg.EndpointParams.Set("client_assertion", tr.Status.Token)
	}
	var issued bool
	Eventually(func() error {
		_, err := cfg.Token(ctx)
		var re *oauth2.RetrieveError
		switch {
		case err == nil:
			issued = true
			return nil
		case errors.As(err, &re) && re.ErrorCode == "invalid_client":
			return fmt.Errorf("%s/%s not loaded by the token server yet: %w", fc.ns, fc.name, err)
		case errors.As(err, &re):
			issued = false
			return nil
		}
		return err
	}).WithContext(ctx).Should(Succeed())
	GinkgoWriter.Printf("token for %s/%s, %s: issued=%v\n", fc.ns, fc.name, scope, issued)
	return issued
}
