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

// m2m authz behind real gateways on loopback, with real tokens from the token server: nginx
// (Debian's package, auth_request) runs testdata/gateways/nginx.conf, the configuration that
// docs/gateways/nginx.md shows, in front of a plain upstream that echoes the headers it gets.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
	"github.com/m2m-dev/m2m-operator/verify/dpopclient"
)

// headersMoreModule is Debian's headers-more module, which the nginx configuration loads to
// clear every client-supplied x-m2m-* header.
const headersMoreModule = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"

// gatewayRoutes are the billing API's routes for the gateway specs.
func gatewayRoutes(readScope authv1alpha1.ScopeToken) []authv1alpha1.Route {
	return []authv1alpha1.Route{
		{PathPrefix: "/invoices", Methods: []authv1alpha1.HTTPMethod{"GET", "HEAD"}, Scopes: []authv1alpha1.ScopeToken{readScope}},
		{PathPrefix: "/invoices", Methods: []authv1alpha1.HTTPMethod{"POST"}, Scopes: []authv1alpha1.ScopeToken{"invoices:write"}},
		{PathPrefix: "/healthz", Scopes: []authv1alpha1.ScopeToken{}},
	}
}

// echoUpstream is the API behind the gateway: it answers every request with the headers it got.
func echoUpstream() *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	DeferCleanup(s.Close)
	return s
}

// startAuthz runs m2m authz's forward-auth in this process against the running system, as
// `m2m authz --issuer=<token server> --audience-header=X-M2M-Audience` does (its default
// options: the revocation list on).
func startAuthz(ctx context.Context) (*httptest.Server, *authz.Decider) {
	opts := authz.DefaultOptions()
	v, err := authz.NewVerifier(ctx, sys.Issuer, "", logr.Discard(), opts.VerifierOptions()...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(v.Close)
	d := authz.NewDecider(v, nil)
	pol, err := authz.NewPolicies(sys.Config, d, logr.Discard())
	Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pol.Run(runCtx) }()
	DeferCleanup(func() {
		cancel()
		Expect(<-done).To(Succeed())
	})
	Eventually(pol.Synced()).WithContext(ctx).Should(BeClosed())
	s := httptest.NewServer(authz.ForwardAuth(d, "X-M2M-Audience"))
	DeferCleanup(s.Close)
	return s, d
}

// freeAddr returns a loopback address free a moment ago, for a gateway that opens its own port.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	return addr
}

// renderConfig writes a testdata/gateways file with its @NAME@ placeholders replaced.
func renderConfig(name, dir string, values map[string]string) string {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test", "e2e", "testdata", "gateways", name))
	Expect(err).NotTo(HaveOccurred())
	s := string(b)
	for k, v := range values {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	Expect(s).NotTo(MatchRegexp(`@[A-Z]+@`), "a placeholder is left in "+name)
	out := filepath.Join(dir, name)
	Expect(os.WriteFile(out, []byte(s), 0o600)).To(Succeed())
	return out
}

// startGateway runs a gateway process until the spec ends and waits until it answers on addr.
func startGateway(ctx context.Context, addr, bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
	// Worker processes inherit the output pipes: never wait on them for long.
	cmd.WaitDelay = 5 * time.Second
	Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	DeferCleanup(func() {
		// SIGTERM, not SIGKILL: the gateway's master process stops its workers before it exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	Eventually(func() error {
		select {
		case err := <-exited:
			StopTrying(fmt.Sprintf("%s exited: %v", bin, err)).Now()
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).WithContext(ctx).Should(Succeed())
}

// gatewayResponse is what a client of the gateway sees.
type gatewayResponse struct {
	status    int
	challenge string
	// upstream holds the headers the API received (nil when the request did not reach it).
	upstream http.Header
}

func callGateway(ctx context.Context, base, method, path, token string, extra map[string]string) gatewayResponse {
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	out := gatewayResponse{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/json" {
		Expect(json.Unmarshal(body, &out.upstream)).To(Succeed())
	}
	return out
}

// tokenOf gets a real token from the token server as the client, for the audience.
func tokenOf(ctx context.Context, namespace, name, audience string, scopes ...string) string {
	v, _ := mountClient(ctx, namespace, name)
	creds, err := readMounted(v.dir)
	Expect(err).NotTo(HaveOccurred())
	cfg := oauthConfig(creds, scopes...)
	cfg.EndpointParams.Set("audience", audience)
	var tok string
	Eventually(func() error {
		t, err := cfg.Token(ctx)
		if err == nil {
			tok = t.AccessToken
		}
		return err
	}).WithContext(ctx).Should(Succeed())
	return tok
}

// setBillingRoutes puts routes on the billing policy and returns when the update is stored.
func setBillingRoutes(ctx context.Context, routes []authv1alpha1.Route) {
	Eventually(func() error {
		p := &authv1alpha1.ScopePolicy{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "billing", Name: "billing"}, p); err != nil {
			return err
		}
		p.Spec.Routes = routes
		return k8s.Update(ctx, p)
	}).WithContext(ctx).Should(Succeed())
}

// gateway is how a spec finds a gateway's binary (skipping when it is missing) and starts it
// in front of the upstream, asking m2m authz at authz (both host:port); start returns the
// gateway's base URL.
type gateway struct {
	name  string
	find  func() string
	start func(ctx SpecContext, bin, authz, upstream string) string
}

var _ = Describe("m2m authz behind nginx (auth_request)", Ordered, func() {
	gatewaySpecs(gateway{name: "nginx", find: func() string {
		bin, err := exec.LookPath("nginx")
		if err != nil {
			bin = "/usr/sbin/nginx"
		}
		if _, err := os.Stat(bin); err != nil {
			Skip("nginx is not installed: run `make gateway-tools` (hack/install-gateways.sh installs Debian's nginx-light and libnginx-mod-http-headers-more-filter)")
		}
		if _, err := os.Stat(headersMoreModule); err != nil {
			Skip("nginx's headers-more module is not installed (" + headersMoreModule + "): run `make gateway-tools`")
		}
		return bin
	}, start: func(ctx SpecContext, bin, authzAddr, upstream string) string {
		dir := GinkgoT().TempDir()
		addr := freeAddr()
		conf := renderConfig("nginx.conf", dir, map[string]string{
			"DIR": dir, "LISTEN": addr, "AUTHZ": authzAddr, "UPSTREAM": upstream, "AUDIENCE": billingAudience,
		})
		startGateway(ctx, addr, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
		return "http://" + addr
	}})
})

var _ = Describe("m2m authz behind Caddy (forward_auth)", Ordered, func() {
	gatewaySpecs(gateway{name: "Caddy", find: func() string {
		bin := os.Getenv("CADDY") // make test-e2e: the pinned build
		if _, err := os.Stat(bin); bin != "" && err != nil {
			Skip("Caddy is not built at " + bin + ": run `make caddy`")
		}
		if bin == "" {
			matches, _ := filepath.Glob(filepath.Join(toolCache(), "caddy-v*"))
			if len(matches) == 0 {
				Skip("Caddy is not built: run `make caddy` (builds github.com/caddyserver/caddy/v2/cmd/caddy into ~/.cache/m2m-operator/bin), or set CADDY")
			}
			bin = matches[len(matches)-1]
		}
		return bin
	}, start: func(ctx SpecContext, bin, authzAddr, upstream string) string {
		dir := GinkgoT().TempDir()
		addr := freeAddr()
		conf := renderConfig("Caddyfile", dir, map[string]string{
			"LISTEN": addr, "AUTHZ": authzAddr, "UPSTREAM": upstream, "AUDIENCE": billingAudience,
		})
		startGateway(ctx, addr, bin, "run", "--config", conf, "--adapter", "caddyfile")
		return "http://" + addr
	}})
})

// toolCache is where make builds tools (LOCALBIN's default).
func toolCache() string {
	if dir := os.Getenv("LOCALBIN"); dir != "" {
		return dir
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "m2m-operator", "bin")
}

// gatewaySpecs are the cases every gateway must pass, with real tokens from the token server.
func gatewaySpecs(gw gateway) {
	var (
		base                 string
		read, write, foreign string
	)

	BeforeAll(func(ctx SpecContext) {
		bin := gw.find()
		authzSrv, _ := startAuthz(ctx)
		upstream := echoUpstream()
		applyFiles(ctx, sampleFiles()...)
		applyFiles(ctx, "test/e2e/testdata/gateways/reports.yaml")
		setBillingRoutes(ctx, gatewayRoutes("invoices:read"))
		read = tokenOf(ctx, "payments", "billing-worker", billingAudience, "invoices:read")
		write = tokenOf(ctx, "payments", "billing-admin", billingAudience, "invoices:write")
		foreign = tokenOf(ctx, "payments", "report-reader", "reports.billing", "reports:read")
		base = gw.start(ctx, bin, strings.TrimPrefix(authzSrv.URL, "http://"), strings.TrimPrefix(upstream.URL, "http://"))
	})

	It("lets a token with the route's scopes through, with the identity headers, and no client x-m2m-* header", func(ctx SpecContext) {
		forged := map[string]string{"X-M2M-Client-Id": "m2mc_forged", "X-M2M-Namespace": "kube-system", "X-M2M-Admin": "true", "X-M2M-Audience": "reports.billing"}
		r := callGateway(ctx, base, http.MethodGet, "/invoices/42?x=1", read, forged)
		Expect(r.status).To(Equal(http.StatusOK), r.challenge)
		Expect(r.upstream.Get("X-M2m-Client-Id")).To(HavePrefix("m2mc_"))
		Expect(r.upstream.Get("X-M2m-Client-Id")).NotTo(Equal("m2mc_forged"))
		Expect(r.upstream.Get("X-M2m-Namespace")).To(Equal("payments"))
		Expect(r.upstream.Get("X-M2m-Scopes")).To(Equal("invoices:read"))
		Expect(r.upstream).NotTo(HaveKey("X-M2m-Admin"))
		Expect(r.upstream).NotTo(HaveKey("X-M2m-Audience"))
		Expect(r.upstream.Values("X-M2m-Client-Id")).To(HaveLen(1))
	})

	It("answers 403 insufficient_scope for a missing scope, with the scope", func(ctx SpecContext) {
		r := callGateway(ctx, base, http.MethodPost, "/invoices", read, nil)
		Expect(r.status).To(Equal(http.StatusForbidden))
		Expect(r.challenge).To(ContainSubstring(`error="insufficient_scope", scope="invoices:write"`))
		Expect(callGateway(ctx, base, http.MethodPost, "/invoices", write, nil).status).To(Equal(http.StatusOK))
	})

	It("answers 401 invalid_token for a bad or foreign-audience token, and a bare challenge without one", func(ctx SpecContext) {
		for name, tok := range map[string]string{"tampered": read[:len(read)-4] + "AAAA", "foreign audience": foreign, "garbage": "not-a-jwt"} {
			r := callGateway(ctx, base, http.MethodGet, "/invoices", tok, nil)
			Expect(r.status).To(Equal(http.StatusUnauthorized), name)
			Expect(r.challenge).To(ContainSubstring(`error="invalid_token"`), name)
		}
		r := callGateway(ctx, base, http.MethodGet, "/invoices", "", nil)
		Expect(r.status).To(Equal(http.StatusUnauthorized))
		Expect(r.challenge).To(Equal(`Bearer realm="billing.billing"`))
	})

	It("denies a route no rule covers, and lets any valid token reach a route with scopes: []", func(ctx SpecContext) {
		Expect(callGateway(ctx, base, http.MethodGet, "/admin", write, nil).status).To(Equal(http.StatusForbidden))
		Expect(callGateway(ctx, base, http.MethodDelete, "/invoices/1", write, nil).status).To(Equal(http.StatusForbidden))
		Expect(callGateway(ctx, base, http.MethodGet, "/healthz", foreign, nil).status).To(Equal(http.StatusUnauthorized), "still a token of this audience")
		Expect(callGateway(ctx, base, http.MethodGet, "/healthz", write, nil).status).To(Equal(http.StatusOK))
	})

	It("lets a DPoP-bound token with its proof through, and refuses it as Bearer or with a replayed proof", func(ctx SpecContext) {
		v, _ := mountClient(ctx, "payments", "billing-worker")
		creds, err := readMounted(v.dir)
		Expect(err).NotTo(HaveOccurred())
		tr, err := dpopclient.New(dpopclient.Config{TokenURL: creds.TokenURL, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
			Audience: billingAudience, Scopes: []string{"invoices:read"}})
		Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/invoices/42?x=1", nil)
		Expect(err).NotTo(HaveOccurred())
		resp, err := tr.Client().Do(req)
		Expect(err).NotTo(HaveOccurred())
		var upstream http.Header
		Expect(json.NewDecoder(resp.Body).Decode(&upstream)).To(Succeed())
		_ = resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK), resp.Header.Get("WWW-Authenticate"))
		Expect(upstream.Get("X-M2m-Scopes")).To(Equal("invoices:read"))
		auth, proof := upstream.Get("Authorization"), upstream.Get("Dpop")
		Expect(auth).To(HavePrefix("DPoP "))

		bound := strings.TrimPrefix(auth, "DPoP ")
		r := callGateway(ctx, base, http.MethodGet, "/invoices/42", bound, nil)
		Expect(r.status).To(Equal(http.StatusUnauthorized))
		Expect(r.challenge).To(ContainSubstring(`error="invalid_token"`))
		r = callGateway(ctx, base, http.MethodGet, "/invoices/42", "", map[string]string{"Authorization": auth, "DPoP": proof})
		Expect(r.status).To(Equal(http.StatusUnauthorized))
		Expect(r.challenge).To(HavePrefix(`DPoP realm="billing.billing", error="invalid_dpop_proof"`))
	})

	It("puts a policy edit in force within a second", func(ctx SpecContext) {
		Expect(callGateway(ctx, base, http.MethodGet, "/invoices", read, nil).status).To(Equal(http.StatusOK))
		setBillingRoutes(ctx, gatewayRoutes("invoices:write"))
		edited := time.Now()
		Eventually(func() int { return callGateway(ctx, base, http.MethodGet, "/invoices", read, nil).status }).
			WithContext(ctx).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Equal(http.StatusForbidden))
		GinkgoWriter.Printf("GATEWAY %s enforced the edited route %s after the update was stored\n", gw.name, time.Since(edited).Round(time.Millisecond))
		setBillingRoutes(ctx, gatewayRoutes("invoices:read"))
		Eventually(func() int { return callGateway(ctx, base, http.MethodGet, "/invoices", read, nil).status }).
			WithContext(ctx).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Equal(http.StatusOK))
	})
}
