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

package tokenserver

// Fault tests (docs/faults.md): the token server under an API server outage, a deleted
// signing-key Secret, and a rolling restart of its replicas. Figures are logged on lines
// starting with "FAULT". No test prints a secret, a token or a hash.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// faultIssuer is the issuer every replica of a fault test shares, as replicas behind one
// Service do.
const faultIssuer = "https://m2m.faults.test"

// replica is one token server fed by informers, serving on a loopback listener of its own (a
// pod with its own IP).
type replica struct {
	*Server
	addr string
	url  string
	// metricsURL is the base URL of the replica's metrics port (/readyz, /metrics).
	metricsURL string
	cancel     context.CancelFunc
	// done is closed when Serve has returned, with its error in serveErr.
	done     chan struct{}
	serveErr error
	reported sync.Once
}

// startReplica starts a token server watching ns through cfg and waits until it is ready.
func startReplica(t *testing.T, cfg *rest.Config, ns string, clock *fakeClock, mut ...func(*Options)) *replica {
	t.Helper()
	opts := Options{Issuer: faultIssuer, Namespace: ns, Clock: clock.Now, AuditLog: io.Discard, RateLimit: 1e6, RateBurst: 1e6}
	for _, m := range mut {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, metricsLn := loopbackListener(t), loopbackListener(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{Server: s, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(),
		metricsURL: "http://" + metricsLn.Addr().String(), cancel: cancel, done: make(chan struct{})}
	if err := s.StartInformers(ctx, cs); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		r.serveErr = s.ServeWithMetrics(ctx, ln, metricsLn)
	}()
	t.Cleanup(func() { r.stop(t) })
	NewWithT(t).Eventually(s.Ready).WithTimeout(15 * time.Second).Should(BeTrue())
	return r
}

// stop shuts the replica down (as on SIGTERM) and waits until Serve has returned. It may be
// called more than once.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	<-r.done
	r.reported.Do(func() {
		if r.serveErr != nil {
			t.Errorf("Serve: %v", r.serveErr)
		}
	})
}

// tokenClient requests tokens over HTTP for one client.
type tokenClient struct {
	http   *http.Client
	id     string
	secret string
}

func newTokenClient(id, secret string) *tokenClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	return &tokenClient{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, id: id, secret: secret}
}

// status asks base for a token and returns the HTTP status, or 0 when no answer came.
func (c *tokenClient) status(base string) int {
	code, _ := c.get(base)
	return code
}

// get asks base for a token and returns the status and the token (empty unless 200).
func (c *tokenClient) get(base string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, base+TokenPath, strings.NewReader(grant().Encode()))
	if err != nil {
		return 0, ""
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return 0, ""
	}
	return resp.StatusCode, tr.AccessToken
}

func httpStatus(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// putRecordIn creates or updates a credential record Secret in ns.
func putRecordIn(t *testing.T, k8s client.Client, ns string, rec *credential.Record) {
	t.Helper()
	(&liveServer{k8s: k8s, ns: ns}).putRecord(t, rec)
}

// restartableAPIServer starts a control plane of its own whose API server can be stopped and
// started again on the same endpoint. envtest's API server keeps its port across a restart, but
// with a temporary certificate directory Stop deletes it and Start mints a new serving CA and
// new signing keys, so the clients of the first run could not reconnect. A certificate
// directory of our own is kept: the port, the serving certificate and the client CA survive.
func restartableAPIServer(t *testing.T) (*envtest.Environment, *rest.Config, client.Client) {
	t.Helper()
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = nil, false
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: t.TempDir()}
	// Without a watch grace period the API server holds open watches (the token server's) on
	// SIGTERM until its request timeout (60 s); with one, it ends them and stops in seconds.
	env.ControlPlane.APIServer.Configure().Set("shutdown-watch-termination-grace-period", "1s")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	k8s, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env, cfg, k8s
}

// TestKeepsIssuingWhileTheAPIServerIsDown stops the real kube-apiserver: the token server keeps
// issuing tokens for the clients it knows and stays ready. The API server is then started again
// on the same endpoint, and changes written right after (a rotated secret, a new client, a
// disabled client) take effect in the token server without a restart.
func TestKeepsIssuingWhileTheAPIServerIsDown(t *testing.T) {
	env, cfg, k8s := restartableAPIServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "m2m-system"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	clock := newFakeClock()
	keys := (&liveServer{k8s: k8s, ns: ns}).signingKeys(clock)
	if _, err := keys.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: signingkey.DefaultSecretName}}); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, cfg, ns, clock)
	a, aSecret := newRecord(t)
	gone, goneSecret := newRecord(t)
	putRecordIn(t, k8s, ns, a)
	putRecordIn(t, k8s, ns, gone)
	ca, cgone := newTokenClient(a.ClientID, aSecret), newTokenClient(gone.ClientID, goneSecret)
	g.Eventually(func() []int { return []int{ca.status(r.url), cgone.status(r.url)} }).WithTimeout(5 * time.Second).Should(Equal([]int{200, 200}))

	apiServer := env.ControlPlane.GetAPIServer()
	port := apiServer.SecureServing.Port
	down := time.Now()
	g.Expect(apiServer.Stop()).To(Succeed())
	stopTook := time.Since(down)
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})).NotTo(Succeed(), "the API server must be unreachable")

	const whileDown = 100
	for i := range whileDown {
		g.Expect(ca.status(r.url)).To(Equal(200), "token request %d while the API server is down", i)
	}
	g.Expect(httpStatus(r.metricsURL + "/readyz")).To(Equal(200))
	g.Expect(httpStatus(r.url + JWKSPath)).To(Equal(200))

	up := time.Now()
	g.Expect(apiServer.Start()).To(Succeed())
	startTook := time.Since(up)
	g.Expect(apiServer.SecureServing.Port).To(Equal(port), "same port after the restart")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})).To(Succeed(), "the first run's client (same endpoint, CA and credentials) works again")
	outage := time.Since(down)

	// Written at once, while the token server's watch is still broken or backing off.
	back := time.Now()
	newSecret, err := credential.NewSecret()
	g.Expect(err).NotTo(HaveOccurred())
	oldA := newTokenClient(a.ClientID, aSecret)
	a.Secrets = []credential.SecretHash{{SHA256: credential.HashSecret(newSecret).String()}}
	putRecordIn(t, k8s, ns, a)
	b, bSecret := newRecord(t)
	putRecordIn(t, k8s, ns, b)
	gone.Disabled = true
	putRecordIn(t, k8s, ns, gone)
	newA, cb := newTokenClient(a.ClientID, newSecret), newTokenClient(b.ClientID, bSecret)
	g.Eventually(func() []int {
		return []int{newA.status(r.url), cb.status(r.url), oldA.status(r.url), cgone.status(r.url)}
	}).WithTimeout(60*time.Second).WithPolling(50*time.Millisecond).Should(Equal([]int{200, 200, 401, 400}),
		"new secret, new client, old secret, disabled client")
	t.Logf("FAULT apiserver-down: %d tokens issued while down; outage %s (stop %s, start %s); changes applied %s after the API server was back",
		whileDown, outage.Round(time.Millisecond), stopTook.Round(time.Millisecond), startTook.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}

// signingKeys is the signing-key reconciler of a live server's namespace, on clock.
func (ls *liveServer) signingKeys(clock *fakeClock) *skctrl.Reconciler {
	return &skctrl.Reconciler{Client: ls.k8s, Namespace: ls.ns, Name: signingkey.DefaultSecretName, Clock: clock.Now,
		Policy: signingkey.Policy{Algorithm: signingkey.ES256, RotationInterval: 24 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 2 * time.Hour}}
}

// gatedKeyClient is the signing-key controller's client with a hold on creating the Secret:
// the test decides when the recreated Secret lands, to look at the token server in between.
type gatedKeyClient struct {
	client.Client
	name    string
	seen    chan struct{} // the Secret was read (the controller knows it exists)
	attempt chan struct{} // a Create of the Secret is waiting at the gate
	gate    chan struct{}
}

func (c *gatedKeyClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	if err == nil && key.Name == c.name {
		signal(c.seen)
	}
	return err
}

func (c *gatedKeyClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if obj.GetName() == c.name {
		signal(c.attempt)
		select {
		case <-c.gate:
		case <-ctx.Done():
			return fmt.Errorf("creating the signing-key Secret: %w", ctx.Err())
		}
	}
	return c.Client.Create(ctx, obj, opts...)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// startKeyController runs the signing-key controller for ls's namespace in a manager, as
// `m2m controller` does, with its client gated.
func startKeyController(t *testing.T, ls *liveServer, gc *gatedKeyClient) {
	t.Helper()
	cfg, _ := apiServer(t)
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     testenv.Scheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}}},
		Controller: ctrlcfg.Controller{SkipNameValidation: &skip},
		NewClient: func(c *rest.Config, o client.Options) (client.Client, error) {
			inner, err := client.New(c, o)
			gc.Client = inner
			return gc, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := ls.signingKeys(ls.clock)
	r.Client = nil
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// controllerMetric reads a counter from controller-runtime's registry (the controller's /metrics).
func controllerMetric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

func eventReasons(t *testing.T, k8s client.Client, ns, name string) []string {
	t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Type+"/"+e.Reason)
		}
	}
	return out
}

// TestDeletedSigningKeySecretIsRecreatedWhileSigningGoesOn deletes the signing-key Secret under a
// running controller and token server. The token server counts the deletion and keeps signing
// (and publishing) with the keys it holds; the controller recreates the Secret, says so with a
// Warning Event, an error log and a metric; the token server then signs with the new key.
func TestDeletedSigningKeySecretIsRecreatedWhileSigningGoesOn(t *testing.T) {
	ls := startLiveServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	rec, secret := newRecord(t)
	ls.putRecord(t, rec)
	g.Eventually(func() bool { return ls.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())
	// signedBy issues a token and returns the kid it was signed with, after verifying it against
	// the JWKS served at the same moment.
	signedBy := func() string {
		jwks := fetchJWKS(t, ls.url)
		w := ls.do(tokenReq(grant(), rec.ClientID, secret))
		if w.Code != 200 {
			return fmt.Sprintf("status %d", w.Code)
		}
		if string(fetchJWKS(t, ls.url)) != string(jwks) {
			return "keys changed during the request"
		}
		hdr, _, _ := verifyToken(t, decodeResponse(t, w.Body).AccessToken, jwks)
		return hdr.KeyID
	}
	oldKID := ls.keySet(t).Find(signingkey.StateActive).KID
	recreatedBefore := controllerMetric(t, "m2m_signing_key_secret_recreated_total")

	gc := &gatedKeyClient{name: signingkey.DefaultSecretName, seen: make(chan struct{}, 1), attempt: make(chan struct{}, 1), gate: make(chan struct{})}
	startKeyController(t, ls, gc)
	g.Eventually(gc.seen).WithTimeout(10*time.Second).Should(Receive(), "the controller has read the Secret")

	deleted := time.Now()
	g.Expect(ls.k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ls.ns, Name: signingkey.DefaultSecretName}})).To(Succeed())
	g.Eventually(func() string { return ls.metricsText(t) }).WithTimeout(5 * time.Second).
		Should(ContainSubstring("m2m_tokenserver_signing_key_secret_deleted_total 1"))
	g.Eventually(gc.attempt).WithTimeout(10*time.Second).Should(Receive(), "the controller is recreating the Secret")

	// The Secret is gone and not back yet: the token server still signs with the old key, still
	// publishes it, and stays ready.
	for range 20 {
		g.Expect(signedBy()).To(Equal(oldKID))
	}
	g.Expect(httpStatus(ls.metricsURL + "/readyz")).To(Equal(200))

	close(gc.gate)
	var newKID string
	g.Eventually(func(g Gomega) {
		sec := &corev1.Secret{}
		g.Expect(ls.k8s.Get(ctx, ls.keysReq.NamespacedName, sec)).To(Succeed())
		set, err := signingkey.Decode(sec.Data[signingkey.DataKey])
		g.Expect(err).NotTo(HaveOccurred())
		newKID = set.Find(signingkey.StateActive).KID
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(newKID).NotTo(Equal(oldKID))
	g.Eventually(signedBy).WithTimeout(5 * time.Second).Should(Equal(newKID))
	followed := time.Since(deleted)
	g.Eventually(func() []string { return eventReasons(t, ls.k8s, ls.ns, signingkey.DefaultSecretName) }).
		WithTimeout(5 * time.Second).Should(ContainElement(corev1.EventTypeWarning + "/" + skctrl.ReasonRecreated))
	g.Expect(controllerMetric(t, "m2m_signing_key_secret_recreated_total")).To(Equal(recreatedBefore + 1))
	t.Logf("FAULT signing-key-deleted: old key kept signing while the Secret was absent; new key signing %s after the deletion (including the test's hold)", followed.Round(time.Millisecond))
}

// balancer stands in for a Service: it routes round-robin to the replicas whose /readyz answered
// 200 at the last probe, as kube-proxy follows the EndpointSlice that readiness drives.
type balancer struct {
	mu      sync.Mutex
	members []*replica
	ready   map[*replica]bool
	// drained records the replicas seen answering /readyz 503 while they were still serving.
	drained map[*replica]bool
	next    int
	probe   *http.Client
}

func newBalancer() *balancer {
	return &balancer{ready: map[*replica]bool{}, drained: map[*replica]bool{},
		probe: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

func (b *balancer) add(r *replica) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members = append(b.members, r)
}

func (b *balancer) remove(r *replica) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.members {
		if m == r {
			b.members = append(b.members[:i], b.members[i+1:]...)
		}
	}
	delete(b.ready, r)
}

func (b *balancer) isReady(r *replica) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready[r]
}

func (b *balancer) sawDraining(r *replica) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.drained[r]
}

// pick returns the next ready replica's URL, or "" when none is ready.
func (b *balancer) pick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.members {
		r := b.members[b.next%len(b.members)]
		b.next++
		if b.ready[r] {
			return r.url
		}
	}
	return ""
}

// run probes every member's /readyz each interval until ctx is done.
func (b *balancer) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		b.mu.Lock()
		members := append([]*replica(nil), b.members...)
		b.mu.Unlock()
		for _, r := range members {
			code := 0
			if resp, err := b.probe.Get(r.metricsURL + "/readyz"); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			b.mu.Lock()
			b.ready[r] = code == http.StatusOK
			b.drained[r] = b.drained[r] || code == http.StatusServiceUnavailable
			b.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loadResult counts what a retry-once client saw.
type loadResult struct {
	sent, retried, failed atomic.Int32
}

// runLoad sends total token requests through the balancer from workers goroutines, paced by
// limiter; request i is not sent before phases[i*len(phases)/total] is closed. A request that
// fails (no answer, or not 200) is retried once on the next replica.
func runLoad(c *tokenClient, b *balancer, total, workers int, limiter *rate.Limiter, phases []chan struct{}) *loadResult {
	res := &loadResult{}
	var next atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < total; i = int(next.Add(1)) - 1 {
				<-phases[i*len(phases)/total]
				_ = limiter.Wait(context.Background())
				res.sent.Add(1)
				if c.status(b.pick()) == http.StatusOK {
					continue
				}
				res.retried.Add(1)
				if c.status(b.pick()) != http.StatusOK {
					res.failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return res
}

// TestRollingRestartFailsNoRequest sends 1,000 token requests while three replicas are replaced
// one at a time (surge one, wait until it is ready, then stop an old one gracefully), through a
// readiness-driven round-robin balancer and a client that retries once: none fails, and every
// old replica was seen not ready before its listener closed.
func TestRollingRestartFailsNoRequest(t *testing.T) {
	ls := startLiveServer(t) // the namespace, its signing keys and a record
	cfg, _ := apiServer(t)
	g := NewWithT(t)
	rec, secret := newRecord(t)
	ls.putRecord(t, rec)
	drain := func(o *Options) { o.DrainDelay = 500 * time.Millisecond }
	b := newBalancer()
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = startReplica(t, cfg, ls.ns, ls.clock, drain)
		b.add(replicas[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx, 20*time.Millisecond)
	c := newTokenClient(rec.ClientID, secret)
	for _, r := range replicas {
		g.Eventually(func() int { return c.status(r.url) }).WithTimeout(5 * time.Second).Should(Equal(200))
		g.Eventually(func() bool { return b.isReady(r) }).WithTimeout(5 * time.Second).Should(BeTrue())
	}

	// Four phases of 250 requests: the first at once, each next one when a restart begins.
	phases := make([]chan struct{}, len(replicas)+1)
	for i := range phases {
		phases[i] = make(chan struct{})
	}
	close(phases[0])
	start := time.Now()
	loadDone := make(chan *loadResult, 1)
	go func() { loadDone <- runLoad(c, b, 1000, 8, rate.NewLimiter(300, 1), phases) }()
	for i, old := range replicas {
		fresh := startReplica(t, cfg, ls.ns, ls.clock, drain)
		b.add(fresh)
		g.Eventually(func() bool { return b.isReady(fresh) }).WithTimeout(10 * time.Second).Should(BeTrue())
		old.cancel() // SIGTERM
		close(phases[i+1])
		old.stop(t)
		b.remove(old)
		g.Expect(b.sawDraining(old)).To(BeTrue(), "replica %d answered /readyz 503 before its listener closed", i)
		replicas[i] = fresh
	}
	restarted := time.Since(start)
	var res *loadResult
	g.Eventually(loadDone).WithTimeout(60 * time.Second).Should(Receive(&res))
	g.Expect(res.sent.Load()).To(Equal(int32(1000)))
	g.Expect(res.failed.Load()).To(BeZero(), "requests failed after one retry")
	t.Logf("FAULT rolling-restart: %d requests over a restart of 3 replicas (restarts took %s, load %s): %d retried once, %d failed",
		res.sent.Load(), restarted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), res.retried.Load(), res.failed.Load())
}

// TestShutdownDrainsInFlightRequests holds a token request in progress (its body half sent) while
// the replica is told to stop: /readyz turns 503 while the listener stays open for the drain
// delay, the listener then closes, and the request held still gets its token before Serve
// returns.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	ls := startLiveServer(t)
	cfg, _ := apiServer(t)
	g := NewWithT(t)
	rec, secret := newRecord(t)
	ls.putRecord(t, rec)
	r := startReplica(t, cfg, ls.ns, ls.clock, func(o *Options) { o.DrainDelay = time.Second })
	c := newTokenClient(rec.ClientID, secret)
	g.Eventually(func() int { return c.status(r.url) }).WithTimeout(5 * time.Second).Should(Equal(200))

	body := grant().Encode()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, r.url+TokenPath, pr)
	g.Expect(err).NotTo(HaveOccurred())
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(rec.ClientID), url.QueryEscape(secret))
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := c.http.Do(req)
		if err != nil {
			answered <- nil
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp
	}()
	_, err = pw.Write([]byte(body[:5]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(r.readingBodies.Load).WithTimeout(5 * time.Second).Should(Equal(int64(1)))

	r.cancel() // SIGTERM
	g.Eventually(func() int { return httpStatus(r.metricsURL + "/readyz") }).WithTimeout(5 * time.Second).Should(Equal(503))
	g.Eventually(func() error {
		conn, err := net.Dial("tcp", r.addr)
		if err == nil {
			conn.Close()
		}
		return err
	}).WithTimeout(10*time.Second).Should(HaveOccurred(), "the listener closes after the drain delay")
	g.Expect(r.done).NotTo(BeClosed(), "Serve waits for the request in flight")

	_, err = pw.Write([]byte(body[5:]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pw.Close()).To(Succeed())
	var resp *http.Response
	g.Eventually(answered).WithTimeout(5 * time.Second).Should(Receive(&resp))
	g.Expect(resp).NotTo(BeNil(), "the request in flight got an answer")
	g.Expect(resp.StatusCode).To(Equal(200))
	g.Expect(resp.Close).To(BeTrue(), "a draining server closes the connection after the response")
	g.Eventually(r.done).WithTimeout(5 * time.Second).Should(BeClosed())
	g.Expect(r.serveErr).NotTo(HaveOccurred())
}
