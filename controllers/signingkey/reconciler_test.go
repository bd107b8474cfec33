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

package signingkey_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	skctrl "github.com/m2m-dev/m2m-operator/controllers/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

const ns = "m2m-system"

var (
	cfg *rest.Config
	k8s client.Client
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	// This package needs no CRDs: start the control plane without them, so that these tests do
	// not depend on the state of config/crd.
	suite, err := testenv.StartSuite(context.Background(), testenv.SuiteOptions{WithoutCRDs: true, Namespaces: []string{ns}})
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		cfg, k8s = suite.Config, suite.Client
		code = m.Run()
	}
	if err := suite.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func policy() signingkey.Policy {
	return signingkey.Policy{Algorithm: signingkey.ES256, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 24*time.Hour + 5*time.Minute}
}

func getSet(g Gomega, ctx context.Context, name string) (*corev1.Secret, *signingkey.Set) {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	set, err := signingkey.Decode(s.Data[signingkey.DataKey])
	g.Expect(err).NotTo(HaveOccurred())
	return s, set
}

func TestReconcileFollowsTheScheduleAndRequeuesExactly(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	clock := &fakeClock{now: t0}
	p := policy()
	r := &skctrl.Reconciler{Client: k8s, Namespace: ns, Name: "keys-schedule", Policy: p, Clock: clock.Now}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "keys-schedule"}}

	res, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(p.RotationInterval - p.PublishAhead))
	g.Expect(scheduleMetrics(g)).To(Equal(map[string]float64{
		"m2m_signing_key_rotation_interval_seconds":         p.RotationInterval.Seconds(),
		"m2m_signing_key_publish_ahead_seconds":             p.PublishAhead.Seconds(),
		"m2m_signing_key_next_transition_timestamp_seconds": float64(t0.Add(p.RotationInterval - p.PublishAhead).Unix()),
	}))
	secret, set := getSet(g, ctx, "keys-schedule")
	g.Expect(secret.Type).To(Equal(corev1.SecretType(signingkey.SecretType)))
	g.Expect(secret.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
	g.Expect(set.Keys).To(HaveLen(1))
	first := set.Find(signingkey.StateActive).KID

	// Nothing due: no write, same requeue.
	clock.Set(t0.Add(time.Hour))
	res, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(p.RotationInterval - p.PublishAhead - time.Hour))
	again, _ := getSet(g, ctx, "keys-schedule")
	g.Expect(again.ResourceVersion).To(Equal(secret.ResourceVersion))

	// Publish ahead.
	clock.Set(t0.Add(p.RotationInterval - p.PublishAhead))
	res, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(p.PublishAhead))
	g.Expect(scheduleMetrics(g)).To(HaveKeyWithValue("m2m_signing_key_next_transition_timestamp_seconds", float64(t0.Add(p.RotationInterval).Unix())))
	_, set = getSet(g, ctx, "keys-schedule")
	g.Expect(set.Keys).To(HaveLen(2))
	g.Expect(set.Find(signingkey.StateActive).KID).To(Equal(first))
	second := set.Find(signingkey.StateNext).KID

	// Activation.
	clock.Set(t0.Add(p.RotationInterval))
	res, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(p.RetainAfterRetire))
	_, set = getSet(g, ctx, "keys-schedule")
	g.Expect(set.Find(signingkey.StateActive).KID).To(Equal(second))
	g.Expect(set.Find(signingkey.StateRetired).KID).To(Equal(first))

	// Removal.
	clock.Set(t0.Add(p.RotationInterval + p.RetainAfterRetire))
	res, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(Equal(p.RotationInterval - p.PublishAhead - p.RetainAfterRetire))
	_, set = getSet(g, ctx, "keys-schedule")
	g.Expect(set.Keys).To(HaveLen(1))
	g.Expect(set.Find(signingkey.StateActive).KID).To(Equal(second))
}

// scheduleMetrics gathers the signing-key schedule gauges from the controller's registry.
func scheduleMetrics(g Gomega) map[string]float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		switch f.GetName() {
		case "m2m_signing_key_rotation_interval_seconds", "m2m_signing_key_publish_ahead_seconds", "m2m_signing_key_next_transition_timestamp_seconds":
			out[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out
}

func TestReconcileLeavesAnInvalidSecretUntouched(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keys-invalid", Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue}},
		Type:       signingkey.SecretType,
		Data:       map[string][]byte{signingkey.DataKey: []byte(`{"version":1,"keys":[{"kid":"x"}]}`)},
	}
	g.Expect(k8s.Create(ctx, bad)).To(Succeed())
	r := &skctrl.Reconciler{Client: k8s, Namespace: ns, Name: "keys-invalid", Policy: policy(), Clock: (&fakeClock{now: t0}).Now}
	_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "keys-invalid"}})
	g.Expect(err).To(HaveOccurred())
	after := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(bad), after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(bad.ResourceVersion))
}

// TestManagerCreatesRecreatesAndRelabels runs the reconciler in a manager whose Secret cache is
// limited by the managed-by label, as in production.
func TestManagerCreatesRecreatesAndRelabels(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const name = "keys-managed"
	mgr, err := ctrl.NewManager(cfg, testenv.ManagerOptions())
	g.Expect(err).NotTo(HaveOccurred())
	var generated atomic.Int32
	r := &skctrl.Reconciler{Namespace: ns, Name: name, Policy: policy(),
		Generate: func(alg string) (signingkey.Key, error) { generated.Add(1); return signingkey.Generate(alg) }}
	g.Expect(r.SetupWithManager(mgr)).To(Succeed())
	stop := testenv.RunManager(ctx, mgr)
	defer func() { g.Expect(stop()).To(Succeed()) }()

	var firstKID string
	g.Eventually(func(g Gomega) {
		_, set := getSet(g, ctx, name)
		firstKID = set.Find(signingkey.StateActive).KID
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// Someone strips the label: the cache loses sight of it; the reconciler restores the label
	// instead of failing to create a second Secret.
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)).To(Succeed())
	delete(s.Labels, authv1alpha1.LabelManagedBy)
	g.Expect(k8s.Update(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s, set := getSet(g, ctx, name)
		g.Expect(s.Labels).To(HaveKeyWithValue(authv1alpha1.LabelManagedBy, authv1alpha1.ManagedByValue))
		g.Expect(set.Find(signingkey.StateActive).KID).To(Equal(firstKID))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(generated.Load()).To(Equal(int32(1)))

	// Deleted: recreated with a new key, and a Warning Event says so.
	g.Expect(k8s.Delete(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, set := getSet(g, ctx, name)
		g.Expect(set.Find(signingkey.StateActive).KID).NotTo(Equal(firstKID))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var evs eventsv1.EventList
		g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range evs.Items {
			if e.Reason == skctrl.ReasonRecreated && e.Type == corev1.EventTypeWarning && e.Regarding.Name == name {
				found = true
			}
		}
		g.Expect(found).To(BeTrue(), "no %s Warning Event", skctrl.ReasonRecreated)
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

func TestReconcileIgnoresOtherSecrets(t *testing.T) {
	g := NewWithT(t)
	r := &skctrl.Reconciler{Client: k8s, Namespace: ns, Name: "keys-only-this", Policy: policy()}
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "something-else"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(Equal(reconcile.Result{}))
	err = k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "something-else"}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
}
