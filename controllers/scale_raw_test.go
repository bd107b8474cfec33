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
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
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
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// rawWritesPerClient is what a new client costs the API server in writes, the user's create
// included: create the M2MClient, patch its finalizer, create its credential Secret and its
// record, patch its status.
const rawWritesPerClient = 5

// rawFinalizer stands in for the controller's finalizer (same patch, same size), so that the
// restarted controller leaves the raw objects alone: a client being deleted without the
// controller's finalizer is nothing to it.
const rawFinalizer = "scale.m2m.dev/cleanup"

// rawTemplate is what the controller wrote for one client: the raw write path writes copies.
type rawTemplate struct {
	client       *authv1alpha1.M2MClient
	cred, record *corev1.Secret
}

// newRawTemplate makes one client as the readiness run makes each of its clients (ten
// policies, the same spec), waits until the controller has issued its credentials, and returns
// its objects.
func newRawTemplate() rawTemplate {
	apiNS, ns := newNamespace(nil), newNamespace(nil)
	createPolicies(apiNS, ns, 10)
	ready := watchReady(ns)
	createClients(ns, 1, 10)
	EventuallyWithOffset(1, ready.Load).Should(BeNumerically("==", 1))
	t := rawTemplate{client: &authv1alpha1.M2MClient{}, cred: &corev1.Secret{}, record: &corev1.Secret{}}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c-0"}, t.client)).To(Succeed())
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c-0-m2m"}, t.cred)).To(Succeed())
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: string(t.client.UID)}, t.record)).To(Succeed())
	return t
}

// controllerStopped is set while rawWritePath holds the controller stopped.
var controllerStopped bool

// restartIfStopped starts the controller again if a failed spec left it stopped.
func restartIfStopped() {
	if controllerStopped {
		controllerStopped = false
		stopMgr = startManager()
	}
}

// rawWritePath stops the controller, measures the raw write path of n clients at each
// concurrency of SCALE_RAW_WORKERS, and starts the controller again once it has gone through
// every existing client. It returns the best time.
func rawWritePath(tmpl rawTemplate, n int) time.Duration {
	stopMgr()
	controllerStopped = true
	best := time.Duration(0)
	for _, workers := range envInts("SCALE_RAW_WORKERS", 64) {
		t := measureRawWritePath(tmpl, n, workers)
		fmt.Fprintf(os.Stdout, "SCALE raw api write path clients=%d workers=%d took=%.2fs clients/s=%.0f writes/s=%.0f\n",
			n, workers, t.Seconds(), float64(n)/t.Seconds(), float64(n*rawWritesPerClient)/t.Seconds())
		if best == 0 || t < best {
			best = t
		}
	}
	controllerStopped = false
	stopMgr = func() {}
	restartIdle(nil)
	return best
}

// measureRawWritePath measures the floor under the controller: with the controller stopped,
// it writes for n clients exactly what a new client costs the API server (rawWritesPerClient
// writes, in the controller's order), from workers goroutines with no client-side rate limit,
// copies of the template (the same sizes, the same CEL validation of the M2MClient). It returns
// how long the writes took, then deletes the Secrets and the clients (which stay, being
// deleted, under rawFinalizer: the controller leaves them alone).
func measureRawWritePath(tmpl rawTemplate, n, workers int) time.Duration {
	ns := newNamespace(nil)
	unlimited := rest.CopyConfig(cfg)
	unlimited.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	c, err := client.New(unlimited, client.Options{Scheme: k8sClient.Scheme()})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	w := rawWriter{c: c, ns: ns, tmpl: tmpl}

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := atomic.Int64{}
	profiled := profileAPIServer("raw", envInt("SCALE_PROFILE_SECONDS", 0))
	defer profiled()
	cpuBefore := cpuTimes()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := w.write(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	cpu := delta(cpuBefore, cpuTimes())
	close(errs)
	for err := range errs {
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
	}
	fmt.Fprintf(os.Stdout, "SCALE raw api write path workers=%d cpu per client in ms: %s\n", workers, perClient(scaled(cpu, 1000), n))
	ExpectWithOffset(1, k8sClient.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns))).To(Succeed())
	ExpectWithOffset(1, k8sClient.DeleteAllOf(ctx, &authv1alpha1.M2MClient{}, client.InNamespace(ns))).To(Succeed())
	return took
}

// rawWriter writes a new client's objects directly, from the controller's objects of one
// client as templates.
type rawWriter struct {
	c    client.Client
	ns   string
	tmpl rawTemplate
}

// write writes client i: the user's create, then what the controller writes for it.
func (w rawWriter) write(i int) error {
	m := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: fmt.Sprintf("c-%d", i)},
		Spec:       *w.tmpl.client.Spec.DeepCopy(),
	}
	if err := w.c.Create(ctx, m); err != nil {
		return fmt.Errorf("creating M2MClient %s: %w", m.Name, err)
	}
	base := m.DeepCopy()
	controllerutil.AddFinalizer(m, rawFinalizer)
	if err := w.c.Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding the finalizer of %s: %w", m.Name, err)
	}
	cred := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: m.Name + "-m2m", Labels: w.tmpl.cred.Labels, Annotations: w.tmpl.cred.Annotations},
		Type:       w.tmpl.cred.Type,
		Data:       w.tmpl.cred.Data,
	}
	if err := controllerutil.SetControllerReference(m, cred, w.c.Scheme()); err != nil {
		return err
	}
	if err := w.c.Create(ctx, cred); err != nil {
		return fmt.Errorf("creating the credential Secret of %s: %w", m.Name, err)
	}
	rec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: string(m.UID), Labels: w.tmpl.record.Labels},
		Type:       w.tmpl.record.Type,
		Data:       w.tmpl.record.Data,
	}
	if err := w.c.Create(ctx, rec); err != nil {
		return fmt.Errorf("creating the record of %s: %w", m.Name, err)
	}
	base = m.DeepCopy()
	m.Status = *w.tmpl.client.Status.DeepCopy()
	if err := w.c.Status().Patch(ctx, m, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patching the status of %s: %w", m.Name, err)
	}
	return nil
}

// profileSelf, when SCALE_PROFILE_DIR is set, records a CPU profile of this process (the
// controller and the test's clients) into <dir>/self-<name>.pprof until the returned function
// is called.
func profileSelf(name string) (stop func()) {
	dir := os.Getenv("SCALE_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "self-"+name+".pprof"))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, pprof.StartCPUProfile(f)).To(Succeed())
	return func() {
		pprof.StopCPUProfile()
		Expect(f.Close()).To(Succeed())
	}
}

// profileAPIServer, when SCALE_PROFILE_DIR is set, records a CPU profile of the API server for
// the given seconds, in the background, into <dir>/apiserver-<name>.pprof (go tool pprof
// reads it with the kube-apiserver binary). It returns a function that waits for it.
func profileAPIServer(name string, seconds int) (wait func()) {
	dir := os.Getenv("SCALE_PROFILE_DIR")
	if dir == "" || seconds <= 0 {
		return func() {}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer GinkgoRecover()
		raw, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(seconds)).
			Timeout(time.Duration(seconds+30) * time.Second).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "apiserver-"+name+".pprof"), raw, 0o600)).To(Succeed())
	}()
	return func() { <-done }
}

// cpuTimes reads the CPU time (user + system) of this process (the controller, the test's
// clients and informers) and of its children (etcd and kube-apiserver), by command name, from
// /proc (Linux; empty elsewhere). Clock ticks are taken as 100 per second (USER_HZ).
func cpuTimes() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted after the comm.
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm, fields := s[open+1:closing], strings.Fields(s[closing+1:])
		if len(fields) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if pid != self && ppid != self {
			continue
		}
		if pid == self {
			comm = "test+controller"
		}
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		out["cpu_seconds:"+comm] += (utime + stime) / 100
	}
	return out
}

// scaled multiplies every value of m by k (seconds to milliseconds).
func scaled(m map[string]float64, k float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for name, v := range m {
		out[name] = v * k
	}
	return out
}
