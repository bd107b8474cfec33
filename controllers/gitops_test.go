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
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
)

// applyAs server-side applies the YAML object as field manager manager (argocd, flux), without
// forcing: a conflict with a field another manager owns is an error, as it is for them.
func applyAs(manager, doc string, opts ...client.ApplyOption) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	ExpectWithOffset(1, yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
	err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), append(opts, client.FieldOwner(manager))...)
	return u, err
}

func specOf(g Gomega, ns, name string) map[string]any {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(authv1alpha1.GroupVersion.WithKind("M2MClient"))
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	return spec
}

// withCRD changes a CRD of the suite's API server for the rest of the spec (a newer, or an
// older, CRD than this controller's) and restores it afterwards.
func withCRD(name string, mutate func(*apiextensionsv1.CustomResourceDefinition)) {
	s := scheme.New()
	ExpectWithOffset(1, apiextensionsv1.AddToScheme(s)).To(Succeed())
	crds, err := client.New(cfg, client.Options{Scheme: s})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	ExpectWithOffset(1, crds.Get(ctx, client.ObjectKey{Name: name}, crd)).To(Succeed())
	original := crd.DeepCopy()
	mutate(crd)
	ExpectWithOffset(1, crds.Update(ctx, crd)).To(Succeed())
	DeferCleanup(func() {
		Eventually(func() error {
			cur := &apiextensionsv1.CustomResourceDefinition{}
			if err := crds.Get(ctx, client.ObjectKeyFromObject(original), cur); err != nil {
				return err
			}
			cur.Spec = original.Spec
			return crds.Update(ctx, cur)
		}).Should(Succeed())
	})
}

var _ = Describe("GitOps: the controller never writes a user's spec", func() {
	It("leaves what an SSA field manager applied untouched: a second apply and a diff are clean", func() {
		ns := newNamespace(nil)
		doc := `apiVersion: auth.m2m.dev/v1alpha1
kind: M2MClient
metadata: {name: worker, namespace: ` + ns + `}
spec:
  scopes: ["invoices:read"]
  tokenTTL: 1h
  secretRotation: {interval: 720h, gracePeriod: 1h}
`
		_, err := applyAs("argocd", doc)
		Expect(err).NotTo(HaveOccurred())
		c := &authv1alpha1.M2MClient{}
		c.Namespace, c.Name = ns, "worker"
		Eventually(func() []string { return get(c).Finalizers }).Should(ContainElement(authv1alpha1.Finalizer))
		credSecret(c)
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))

		spec := specOf(Default, ns, "worker")
		Expect(spec["tokenTTL"]).To(Equal("1h"), "the duration as Git wrote it")
		Expect(spec["secretRotation"]).To(Equal(map[string]any{"interval": "720h", "gracePeriod": "1h"}))
		for _, mf := range get(c).ManagedFields {
			if mf.Manager == "argocd" || mf.Subresource == "status" {
				continue
			}
			var fields map[string]any
			Expect(json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields)).To(Succeed())
			Expect(fields).NotTo(HaveKey("f:spec"), "manager %s owns spec fields: %s", mf.Manager, mf.FieldsV1.GetRawString())
		}

		// What `kubectl diff --server-side` computes, then the next sync.
		dry, err := applyAs("argocd", doc, client.DryRunAll)
		Expect(err).NotTo(HaveOccurred())
		drySpec, _, _ := unstructured.NestedMap(dry.Object, "spec")
		Expect(drySpec).To(Equal(spec))
		before := get(c).ResourceVersion
		_, err = applyAs("argocd", doc)
		Expect(err).NotTo(HaveOccurred(), "the second apply meets no conflict")
		Expect(get(c).ResourceVersion).To(Equal(before), "and changes nothing")
	})

	It("keeps a field of a newer CRD that its Go types do not know", func() {
		withCRD("m2mclients.auth.m2m.dev", func(crd *apiextensionsv1.CustomResourceDefinition) {
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			spec.Properties["futureField"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		})

		ns := newNamespace(nil)
		doc := `apiVersion: auth.m2m.dev/v1alpha1
kind: M2MClient
metadata: {name: future, namespace: ` + ns + `}
spec: {scopes: ["invoices:read"], futureField: kept}
`
		Eventually(func(g Gomega) {
			_, err := applyAs("flux", doc)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(specOf(g, ns, "future")).To(HaveKeyWithValue("futureField", "kept"), "the API server serves the new schema")
		}).Should(Succeed())
		c := &authv1alpha1.M2MClient{}
		c.Namespace, c.Name = ns, "future"
		Eventually(func() []string { return get(c).Finalizers }).Should(ContainElement(authv1alpha1.Finalizer))
		credSecret(c)
		Eventually(func() string { return reason(c, authv1alpha1.ConditionCredentialsReady) }).Should(Equal(authv1alpha1.ReasonCredentialsIssued))
		Expect(specOf(Default, ns, "future")).To(HaveKeyWithValue("futureField", "kept"))

		// Deletion removes the finalizer by patch too.
		Expect(k8sClient.Delete(ctx, get(c))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(c), &authv1alpha1.M2MClient{}))
		}).Should(BeTrue())
	})
})
