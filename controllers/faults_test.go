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

// Fault tests (docs/faults.md): a controller that dies in the middle of a rotation, and a
// corrupted credential record under a running token server. No test prints a secret, a token
// or a hash.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// crashingClient is the manager's client with one planted fault: once armed, the next update of
// a credential Secret never reaches the API server. It reports the hash of the secret that
// update carried and hangs until the manager stops, as if the process died mid-write.
type crashingClient struct {
	client.Client
	armed   atomic.Bool
	blocked chan string
}

func (c *crashingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	sec, ok := obj.(*corev1.Secret)
	if ok && sec.Type == authv1alpha1.SecretTypeClientCredentials && c.armed.CompareAndSwap(true, false) {
		c.blocked <- credential.HashSecret(string(sec.Data[authv1alpha1.CredentialKeyClientSecret])).String()
		<-ctx.Done()
		return fmt.Errorf("the controller stopped before writing the credential Secret: %w", ctx.Err())
	}
	return c.Client.Update(ctx, obj, opts...)
}

// staleClient reads like a cache that has not seen the latest write of one Secret: Get serves
// that Secret from a snapshot taken earlier; everything else is live.
type staleClient struct {
	client.Client
	snapshot *corev1.Secret
}

func (c staleClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if sec, ok := obj.(*corev1.Secret); ok && key == client.ObjectKeyFromObject(c.snapshot) {
		c.snapshot.DeepCopyInto(sec)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// withClient makes the manager hand out cc, wrapped around a real client.
func withClient(cc *crashingClient) func(*ctrl.Options) {
	return func(o *ctrl.Options) {
		o.NewClient = func(c *rest.Config, opts client.Options) (client.Client, error) {
			inner, err := client.New(c, opts)
			cc.Client = inner
			return cc, err
		}
	}
}

// liveTokenServer is a token server on loopback, fed by informers on the system namespace.
type liveTokenServer struct {
	*tokenserver.Server
	url  string
	done chan error
}

// startTokenServer writes the signing keys with the signing-key reconciler (on the suite's
// clock) and starts a token server; it stops when the spec ends.
func startTokenServer() *liveTokenServer {
	keys := &skctrl.Reconciler{Client: k8sClient, Namespace: systemNamespace, Name: signingkey.DefaultSecretName, Clock: clock.Now,
		Policy: signingkey.Policy{Algorithm: signingkey.ES256, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 25 * time.Hour}}
	_, err := keys.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: systemNamespace, Name: signingkey.DefaultSecretName}})
	Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	ts := &liveTokenServer{url: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	ts.Server, err = tokenserver.New(tokenserver.Options{Issuer: ts.url, Namespace: systemNamespace, Clock: clock.Now,
		AuditLog: io.Discard, RateLimit: 1e6, RateBurst: 1e6})
	Expect(err).NotTo(HaveOccurred())
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	sctx, cancel := context.WithCancel(ctx)
	Expect(ts.StartInformers(sctx, cs)).To(Succeed())
	go func() { ts.done <- ts.Serve(sctx, ln) }()
	DeferCleanup(func() {
		cancel()
		Expect(<-ts.done).To(Succeed())
	})
	Eventually(ts.Ready).Should(BeTrue())
	return ts
}

// tokenStatus asks for a token with the credentials of the Secret and returns the HTTP status
// (0 when no answer came).
func (ts *liveTokenServer) tokenStatus(cred *corev1.Secret) int {
	req, err := http.NewRequest(http.MethodPost, ts.url+tokenserver.TokenPath, strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(string(cred.Data[authv1alpha1.CredentialKeyClientID])), url.QueryEscape(string(cred.Data[authv1alpha1.CredentialKeyClientSecret])))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

var brokenSeen = regexp.MustCompile(`(?m)^m2m_tokenserver_broken_records_seen_total (\d+)$`)

// brokenRecordsSeen reads the token server's count of invalid record versions from /metrics.
func (ts *liveTokenServer) brokenRecordsSeen(g Gomega) int {
	rec := httptest.NewRecorder()
	ts.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	g.Expect(rec.Code).To(Equal(http.StatusOK))
	m := brokenSeen.FindSubmatch(rec.Body.Bytes())
	g.Expect(m).NotTo(BeNil(), "the broken-record metric is exported")
	n, err := strconv.Atoi(string(m[1]))
	g.Expect(err).NotTo(HaveOccurred())
	return n
}

// hammer asks for tokens with cred in a loop until stopped, and counts the answers.
type hammer struct {
	ok, failed atomic.Int32
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startHammer(ts *liveTokenServer, cred *corev1.Secret) *hammer {
	h := &hammer{stop: make(chan struct{})}
	h.wg.Go(func() {
		for {
			select {
			case <-h.stop:
				return
			default:
			}
			if ts.tokenStatus(cred) == http.StatusOK {
				h.ok.Add(1)
			} else {
				h.failed.Add(1)
			}
		}
	})
	return h
}

func (h *hammer) finish() {
	close(h.stop)
	h.wg.Wait()
}

// hashRoles describes the record's accepted hashes by role (each with its NotAfter, "" for
// none), so that a failure message never shows a hash; hashes without a role are counted
// under "unknown".
func hashRoles(g Gomega, c *authv1alpha1.M2MClient, roles map[string]string) map[string]string {
	out := map[string]string{}
	unknown := 0
	for h, notAfter := range recordHashes(g, c) {
		role := ""
		for name, rh := range roles {
			if rh == h {
				role = name
			}
		}
		if role == "" {
			unknown++
			continue
		}
		out[role] = notAfter
	}
	if unknown > 0 {
		out["unknown"] = strconv.Itoa(unknown)
	}
	return out
}

var _ = Describe("Faults", func() {
	It("loses neither hash when the controller dies between writing the record and the credential Secret", func() {
		ns := newNamespace(nil)
		cc := &crashingClient{blocked: make(chan string, 1)}
		stopMgr()
		stopMgr = startManager(withClient(cc))
		recovered := false
		DeferCleanup(func() {
			if !recovered {
				stopMgr()
				stopMgr = startManager()
			}
		})

		c := newClient(ns, "crash-rotor", func(c *authv1alpha1.M2MClient) {
			c.Spec.SecretRotation = &authv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: time.Hour}}
		})
		oldHash := hashOf(credSecret(c))
		Eventually(func(g Gomega) {
			g.Expect(hashRoles(g, c, map[string]string{"old": oldHash})).To(Equal(map[string]string{"old": ""}))
			cur := get(c)
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
		}).Should(Succeed())

		cc.armed.Store(true)
		update(c, func(c *authv1alpha1.M2MClient) {
			c.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "crash"}
		})
		var heldHash string
		Eventually(cc.blocked).Should(Receive(&heldHash))
		graceEnd := clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")
		// The crash point: the record already accepts the new secret and, for the grace period,
		// the old one; the credential Secret (what pods mount) still holds the old one.
		roles := map[string]string{"old": oldHash, "held": heldHash}
		Expect(hashRoles(Default, c, roles)).To(Equal(map[string]string{"held": "", "old": graceEnd}))
		Expect(hashOf(credSecret(c)) == oldHash).To(BeTrue(), "the credential Secret still holds the old secret")

		stopMgr() // the controller dies with the credential Secret write in flight
		Expect(hashOf(credSecret(c)) == oldHash).To(BeTrue(), "the held write never reached the API server")
		Expect(hashRoles(Default, c, roles)).To(HaveKeyWithValue("old", graceEnd), "pods holding the old secret still authenticate")

		stopMgr = startManager()
		recovered = true
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(k8sClient.Get(ctx, credSecretKey(c), s)).To(Succeed())
			current := hashOf(s)
			g.Expect(current == oldHash || current == heldHash).To(BeFalse(), "the fresh controller finishes the rotation with a new secret")
			// Both accepted: the delivered secret, and the old one until the grace period ends.
			// The secret of the lost write was never delivered, so it is not kept.
			g.Expect(hashRoles(g, c, map[string]string{"old": oldHash, "held": heldHash, "current": current})).
				To(Equal(map[string]string{"current": "", "old": graceEnd}))
			cond := condition(c, authv1alpha1.ConditionCredentialsReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
	})

	It("never revokes a delivered secret on a stale cache: a change of secret material waits for live reads to confirm it", func() {
		ns := newNamespace(nil)
		c := newClient(ns, "stale-rotor", func(c *authv1alpha1.M2MClient) {
			c.Annotations = map[string]string{authv1alpha1.AnnotationRotate: "a"}
		})
		old := credSecret(c).DeepCopy()
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(Equal(map[string]string{hashOf(old): ""}))
		update(c, func(c *authv1alpha1.M2MClient) { c.Annotations[authv1alpha1.AnnotationRotate] = "b" })
		var delivered string
		Eventually(func(g Gomega) {
			cur := credSecret(c)
			delivered = hashOf(cur)
			g.Expect(delivered).NotTo(Equal(hashOf(old)))
			g.Expect(recordHashes(g, c)).To(HaveKeyWithValue(delivered, ""))
		}).Should(Succeed())
		accepted := func(g Gomega) map[string]string {
			return hashRoles(g, c, map[string]string{"delivered": delivered, "old": hashOf(old)})
		}
		before := accepted(Default)

		// A cache still holding the credential Secret before the rotation (rotate-handled "a",
		// the annotation now "b") would rotate the old secret again and drop the delivered one.
		r := directReconciler()
		r.Client = staleClient{Client: k8sClient, snapshot: old}
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		Expect(accepted(Default)).To(Equal(before), "the record still accepts the delivered secret and nothing else")
		Expect(hashOf(credSecret(c))).To(Equal(delivered))
		Expect(err).NotTo(HaveOccurred())
	})

	It("sees a credential Secret whose labels were removed (the cache cannot): its labels come back, its secret stays", func() {
		ns := newNamespace(nil)
		c := newClient(ns, "unlabelled")
		sec := credSecret(c)
		hash := hashOf(sec)
		Eventually(func(g Gomega) map[string]string { return recordHashes(g, c) }).Should(Equal(map[string]string{hash: ""}))
		sec.Labels = nil
		Expect(k8sClient.Update(ctx, sec)).To(Succeed())
		Eventually(func(g Gomega) {
			cur := credSecret(c)
			g.Expect(cur.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
			g.Expect(hashOf(cur)).To(Equal(hash))
		}).Should(Succeed())
		Expect(recordHashes(Default, c)).To(Equal(map[string]string{hash: ""}))
	})

	It("reports a corrupted record with an Event, a condition and the token server's metric, and other clients never notice", func() {
		ns := newNamespace(nil)
		Expect(k8sClient.Create(ctx, &authv1alpha1.ScopePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
			Spec: authv1alpha1.ScopePolicySpec{
				Scopes: []authv1alpha1.ScopeDefinition{{Name: "invoices:read"}},
				Grants: []authv1alpha1.Grant{{Scopes: []authv1alpha1.GrantScope{"invoices:read"},
					Clients: authv1alpha1.ClientMatcher{Namespaces: []string{ns}}}},
			},
		})).To(Succeed())
		victim, bystander := newClient(ns, "victim"), newClient(ns, "bystander")
		ts := startTokenServer()
		victimCred, bystanderCred := credSecret(victim), credSecret(bystander)
		Eventually(func() []int { return []int{ts.tokenStatus(victimCred), ts.tokenStatus(bystanderCred)} }).
			Should(Equal([]int{200, 200}))
		brokenBefore := ts.brokenRecordsSeen(Default)

		h := startHammer(ts, bystanderCred)
		recObj, _ := record(victim)
		recObj.Data[credential.RecordKey] = []byte("{garbage")
		corrupted := time.Now()
		Expect(k8sClient.Update(ctx, recObj)).To(Succeed())

		// The token server saw the broken version, and the controller rebuilt the record.
		Eventually(ts.brokenRecordsSeen).Should(BeNumerically(">", brokenBefore))
		Eventually(func(g Gomega) map[string]string {
			return hashRoles(g, victim, map[string]string{"current": hashOf(victimCred)})
		}).Should(Equal(map[string]string{"current": ""}))
		Eventually(func() int { return ts.tokenStatus(victimCred) }).Should(Equal(200))
		repaired := time.Since(corrupted)
		h.finish()
		Expect(h.failed.Load()).To(BeZero(), "the other client was refused while one record was broken")
		Expect(h.ok.Load()).To(BeNumerically(">", 0))
		Expect(ts.done).NotTo(Receive(), "the token server is still serving")
		Expect(ts.Ready()).To(BeTrue())

		Eventually(func(g Gomega) []string { return eventReasons(g, get(victim)) }).
			Should(ContainElement(authv1alpha1.ReasonCredentialRecordUnreadable))
		Eventually(func() string { return condition(victim, authv1alpha1.ConditionCredentialsReady).Reason }).
			Should(Equal(authv1alpha1.ReasonCredentialRecordUnreadable))
		cond := condition(victim, authv1alpha1.ConditionCredentialsReady)
		Expect(cond.Status).To(Equal(metav1.ConditionTrue), "the credentials work again")
		Expect(cond.Message).To(ContainSubstring("unreadable"))
		Expect(condition(bystander, authv1alpha1.ConditionCredentialsReady).Reason).To(Equal(authv1alpha1.ReasonCredentialsIssued))

		// The report stays while nothing else happens, and clears with the next spec change.
		touch(victim)
		Consistently(func() string { return condition(victim, authv1alpha1.ConditionCredentialsReady).Reason }, "300ms").
			Should(Equal(authv1alpha1.ReasonCredentialRecordUnreadable))
		update(victim, func(c *authv1alpha1.M2MClient) { c.Spec.DisplayName = "repaired" })
		Eventually(func() string { return condition(victim, authv1alpha1.ConditionCredentialsReady).Reason }).
			Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		GinkgoWriter.Printf("FAULT corrupted-record: rebuilt and accepted again %s after the corruption; the other client got %d tokens meanwhile, 0 refused\n",
			repaired.Round(time.Millisecond), h.ok.Load())
	})
})
