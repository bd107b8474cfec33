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
	"sync/atomic"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

var nsCounter, touches atomic.Int32

// newNamespace creates a namespace with a unique name and the given labels.
func newNamespace(lbls map[string]string) string {
	name := fmt.Sprintf("t%d", nsCounter.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	ExpectWithOffset(1, k8sClient.Create(ctx, ns)).To(Succeed())
	return name
}

// newClient creates an M2MClient after applying the mutations.
func newClient(ns, name string, mutate ...func(*authv1alpha1.M2MClient)) *authv1alpha1.M2MClient {
	c := &authv1alpha1.M2MClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       authv1alpha1.M2MClientSpec{Scopes: []authv1alpha1.ScopeToken{"invoices:read"}},
	}
	for _, m := range mutate {
		m(c)
	}
	ExpectWithOffset(1, k8sClient.Create(ctx, c)).To(Succeed())
	return c
}

func get(c *authv1alpha1.M2MClient) *authv1alpha1.M2MClient {
	out := &authv1alpha1.M2MClient{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(c), out)).To(Succeed())
	return out
}

// update retries an optimistic update of the client.
func update(c *authv1alpha1.M2MClient, mutate func(*authv1alpha1.M2MClient)) {
	EventuallyWithOffset(1, func() error {
		cur := get(c)
		mutate(cur)
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

func credSecretKey(c *authv1alpha1.M2MClient) client.ObjectKey {
	name := c.Spec.SecretName
	if name == "" {
		name = c.Name + "-m2m"
	}
	return client.ObjectKey{Namespace: c.Namespace, Name: name}
}

// credSecret waits for the credential Secret and returns it.
func credSecret(c *authv1alpha1.M2MClient) *corev1.Secret {
	s := &corev1.Secret{}
	EventuallyWithOffset(1, func() error { return k8sClient.Get(ctx, credSecretKey(c), s) }).Should(Succeed())
	return s
}

func recordKey(c *authv1alpha1.M2MClient) client.ObjectKey {
	return client.ObjectKey{Namespace: systemNamespace, Name: string(get(c).UID)}
}

// record waits for the credential record and returns the Secret and its decoded document.
func record(c *authv1alpha1.M2MClient) (*corev1.Secret, *credential.Record) {
	s := &corev1.Secret{}
	key := recordKey(c)
	EventuallyWithOffset(1, func() error { return k8sClient.Get(ctx, key, s) }).Should(Succeed())
	rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return s, rec
}

// recordHashes returns the record's hashes, each with its NotAfter ("" when none).
func recordHashes(g Gomega, c *authv1alpha1.M2MClient) map[string]string {
	s := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, recordKey(c), s)).To(Succeed())
	rec, err := credential.DecodeRecord(s.Data[credential.RecordKey])
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]string{}
	for _, h := range rec.Secrets {
		out[h.SHA256] = ""
		if h.NotAfter != nil {
			out[h.SHA256] = h.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	return out
}

func hashOf(s *corev1.Secret) string {
	return credential.HashSecret(string(s.Data["client_secret"])).String()
}

func condition(c *authv1alpha1.M2MClient, typ string) *metav1.Condition {
	return meta.FindStatusCondition(get(c).Status.Conditions, typ)
}

// reason is the reason of a condition, "" while the condition is absent (so it can be polled).
func reason(c *authv1alpha1.M2MClient, typ string) string {
	if cond := condition(c, typ); cond != nil {
		return cond.Reason
	}
	return ""
}

// eventReasons lists the reasons of the Events about an object.
func eventReasons(g Gomega, o client.Object) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(o.GetNamespace()))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.UID == o.GetUID() {
			out = append(out, e.Reason)
		}
	}
	return out
}

// touch triggers a reconcile without changing the spec.
func touch(c *authv1alpha1.M2MClient) {
	update(c, func(c *authv1alpha1.M2MClient) {
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations["test/touch"] = fmt.Sprint(touches.Add(1))
	})
}
