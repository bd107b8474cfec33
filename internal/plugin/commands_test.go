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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

func clientSecretOf(ctx context.Context, ns, name string) string {
	sec := &corev1.Secret{}
	Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-m2m"}, sec)).To(Succeed())
	return string(sec.Data[authv1alpha1.CredentialKeyClientSecret])
}

func clientIDOf(ctx context.Context, ns, name string) string {
	m := &authv1alpha1.M2MClient{}
	Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)).To(Succeed())
	return m.Status.ClientID
}

// rawToken fetches a token with `token --raw` and checks it is one line.
func rawToken(ctx context.Context, args ...string) string {
	res := kubectlM2M(ctx, "", append([]string{"token", "--raw"}, args...)...)
	Expect(res.err).NotTo(HaveOccurred())
	tok := strings.TrimSuffix(res.out, "\n")
	Expect(tok).To(MatchRegexp(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`), "--raw prints only the token")
	return tok
}

var _ = Describe("kubectl m2m token and decode", Ordered, func() {
	BeforeAll(func(ctx SpecContext) { setUpFixture(ctx) })

	It("fetches a token with the client secret and prints it decoded and verified, never the secret", func(ctx SpecContext) {
		res := kubectlM2M(ctx, "", "token", "worker", "-n", "payments")
		Expect(res.err).NotTo(HaveOccurred())
		for _, w := range []string{"  typ: at+jwt", "  client_id: " + clientIDOf(ctx, "payments", "worker"), "  scope: invoices:write",
			"  aud: billing.billing", "  namespace: payments", "expiry: expires in ", "signature: signature verified against the JWKS of issuer " + sys.Issuer} {
			Expect(res.out).To(ContainSubstring(w))
		}
		Expect(res.out).To(MatchRegexp(`(?m)^  exp: \d+ \(\d{4}-\d\d-\d\dT`))
		Expect(res.out).NotTo(ContainSubstring(clientSecretOf(ctx, "payments", "worker")))
	})

	It("asks for the scope given, and decode verifies the raw token, from an argument or stdin", func(ctx SpecContext) {
		tok := rawToken(ctx, "worker2", "-n", "payments", "--scope", "invoices:read")
		for _, res := range []result{kubectlM2M(ctx, "", "decode", tok, "-o", "json"), kubectlM2M(ctx, tok+"\n", "decode", "-", "-o", "json")} {
			Expect(res.err).NotTo(HaveOccurred())
			var d decoded
			Expect(json.Unmarshal([]byte(res.out), &d)).To(Succeed())
			Expect(d.Verified).To(BeTrue(), d.Verification)
			Expect(d.Claims).To(HaveKeyWithValue("scope", "invoices:read"))
			Expect(d.Header).To(HaveKeyWithValue("typ", "at+jwt"))
			Expect(d.Expiry).To(HavePrefix("expires in "))
		}
	})

	It("decode fails clearly on a signature that does not verify", func(ctx SpecContext) {
		tok := rawToken(ctx, "worker", "-n", "payments")
		parts := strings.Split(tok, ".")
		sig := []byte(parts[2])
		sig[len(sig)/2] ^= 'A' ^ 'B' // stays base64url; a different signature
		if sig[len(sig)/2] == parts[2][len(sig)/2] {
			sig[len(sig)/2] = 'x'
		}
		forged := parts[0] + "." + parts[1] + "." + string(sig)
		res := kubectlM2M(ctx, "", "decode", forged)
		Expect(res.err).To(MatchError(ContainSubstring("the token does not verify")))
		Expect(res.out).To(ContainSubstring("signature: NOT verified against the JWKS of issuer " + sys.Issuer))
		Expect(res.out).To(ContainSubstring("  scope: invoices:write"), "the claims are still shown")

		res = kubectlM2M(ctx, "", "decode", "not-a-token")
		Expect(res.err).To(MatchError(ContainSubstring("not a JWS compact token")))
	})

	It("fetches a token for a ServiceAccount client through TokenRequest", func(ctx SpecContext) {
		res := kubectlM2M(ctx, "", "token", "sa-worker", "-n", "payments", "--audience", "billing.billing", "-o", "json")
		Expect(res.err).NotTo(HaveOccurred())
		var d decoded
		Expect(json.Unmarshal([]byte(res.out), &d)).To(Succeed())
		Expect(d.Verified).To(BeTrue(), d.Verification)
		Expect(d.Claims).To(HaveKeyWithValue("client_id", clientIDOf(ctx, "payments", "sa-worker")))
	})

	It("fetches a token for a PrivateKeyJWT client with --key-file", func(ctx SpecContext) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		der, err := x509.MarshalPKCS8PrivateKey(key)
		Expect(err).NotTo(HaveOccurred())
		keyFile := filepath.Join(GinkgoT().TempDir(), "private.pem")
		Expect(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)).To(Succeed())
		kid, err := signingkey.Thumbprint(&key.PublicKey)
		Expect(err).NotTo(HaveOccurred())
		jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
		Expect(err).NotTo(HaveOccurred())
		// app=jwt: only grants[1] (invoices:read) matches, so who-can invoices:write is unchanged.
		create(ctx, &authv1alpha1.M2MClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "jwt", Labels: map[string]string{"app": "jwt"}},
			Spec: authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"},
				Authentication: &authv1alpha1.Authentication{Method: authv1alpha1.AuthPrivateKeyJWT, JWKS: string(jwks)}},
		})
		Eventually(func(g Gomega) {
			m := &authv1alpha1.M2MClient{}
			g.Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: "payments", Name: "jwt"}, m)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionReady)).To(BeTrue())
		}).WithContext(ctx).Should(Succeed())
		res := kubectlM2M(ctx, "", "token", "jwt", "-n", "payments")
		Expect(res.err).To(MatchError(ContainSubstring("pass --key-file")))
		var out string
		Eventually(func() error { // until the token server has loaded the record
			res = kubectlM2M(ctx, "", "token", "jwt", "-n", "payments", "--key-file", keyFile)
			out = res.out
			return res.err
		}).WithContext(ctx).Should(Succeed())
		Expect(out).To(ContainSubstring("  scope: invoices:read"))
		Expect(out).To(ContainSubstring("signature: signature verified"))
	})

	It("says what the token endpoint refused", func(ctx SpecContext) {
		res := kubectlM2M(ctx, "", "token", "other", "-n", "payments", "--audience", "billing.billing")
		Expect(res.err).To(MatchError(ContainSubstring("the token endpoint refused: invalid_target")))
	})
})

var _ = Describe("kubectl m2m rotate", Ordered, func() {
	BeforeAll(func(ctx SpecContext) { setUpFixture(ctx) })

	It("annotates the client and waits until the credential Secret holds the new secret", func(ctx SpecContext) {
		before := clientSecretOf(ctx, "payments", "worker2")
		m := &authv1alpha1.M2MClient{}
		Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: "payments", Name: "worker2"}, m)).To(Succeed())
		generation := m.Generation
		res := kubectlM2M(ctx, "", "rotate", "worker2", "-n", "payments", "--value", "first")
		Expect(res.err).NotTo(HaveOccurred())
		Expect(res.out).To(MatchRegexp(`M2MClient payments/worker2: new client secret issued at \d{4}-.* \(confirmed by the credential Secret\)`))
		// Returned only once the new secret was there: no wait needed to see it.
		Expect(clientSecretOf(ctx, "payments", "worker2")).NotTo(Equal(before))
		Expect(sys.Client.Get(ctx, client.ObjectKey{Namespace: "payments", Name: "worker2"}, m)).To(Succeed())
		Expect(m.Annotations).To(HaveKeyWithValue(authv1alpha1.AnnotationRotate, "first"))
		Expect(m.Generation).To(Equal(generation), "only metadata.annotations is patched")
	})

	It("waits on the status when the caller may not read Secrets", func(ctx SpecContext) {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "rotator"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"auth.m2m.dev"}, Resources: []string{"m2mclients"}, Verbs: []string{"get", "patch"}}}}
		create(ctx, role)
		create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "rotator"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "rotator"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "rotator"}}})
		before := clientSecretOf(ctx, "payments", "worker")
		res := kubectlM2M(ctx, "", "rotate", "worker", "-n", "payments", "--as", "rotator", "-o", "json")
		Expect(res.err).NotTo(HaveOccurred())
		var out rotateOutput
		Expect(json.Unmarshal([]byte(res.out), &out)).To(Succeed())
		Expect(out.ConfirmedBy).To(Equal("status"))
		Expect(out.SecretRotatedAt).NotTo(BeEmpty())
		Expect(clientSecretOf(ctx, "payments", "worker")).NotTo(Equal(before))
	})

	It("refuses a client without a client secret", func(ctx SpecContext) {
		res := kubectlM2M(ctx, "", "rotate", "sa-worker", "-n", "payments")
		Expect(res.err).To(MatchError(ContainSubstring("uses method ServiceAccount: it has no client secret to rotate")))
	})
})
