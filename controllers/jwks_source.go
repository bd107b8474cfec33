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

package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// JWKS from a referenced object (spec.authentication.jwksFrom).
//
// The manager's Secret cache holds only the Secrets this controller wrote, so a user's Secret is
// invisible to it, and caching every Secret and ConfigMap of the cluster (even their metadata
// alone) would make the controller's memory grow with the cluster. Instead the referenced
// object must carry the label auth.m2m.dev/jwks=true, and a second, small cache watches exactly
// the Secrets and ConfigMaps so labelled: a change reaches the clients that reference the
// object at once (through the indexJWKSFrom index), and memory grows only with the objects
// that hold client keys. An unlabelled object looks missing (JWKSNotFound, whose message says
// to add the label).

// jwksLabelValue is the value of authv1alpha1.LabelJWKS the JWKS cache selects.
const jwksLabelValue = "true"

// indexJWKSFrom indexes M2MClients by the object their jwksFrom references, as jwksRefKey.
const indexJWKSFrom = "spec.authentication.jwksFrom"

// jwksRef is the object and key a client's JWKS is read from.
type jwksRef struct {
	kind, name, key string
}

// jwksRefOf returns the reference of a client's spec.authentication.jwksFrom, if it has one.
func jwksRefOf(c *authv1alpha1.M2MClient) (jwksRef, bool) {
	a := c.Spec.Authentication
	if a == nil || a.JWKSFrom == nil {
		return jwksRef{}, false
	}
	switch {
	case a.JWKSFrom.SecretKeyRef != nil:
		return jwksRef{kind: "Secret", name: a.JWKSFrom.SecretKeyRef.Name, key: a.JWKSFrom.SecretKeyRef.Key}, true
	case a.JWKSFrom.ConfigMapKeyRef != nil:
		return jwksRef{kind: "ConfigMap", name: a.JWKSFrom.ConfigMapKeyRef.Name, key: a.JWKSFrom.ConfigMapKeyRef.Key}, true
	}
	return jwksRef{}, false
}

// indexKey is the index value of a reference: kind and name (the namespace is the client's).
func (r jwksRef) indexKey() string { return jwksRefKey(r.kind, r.name) }

func jwksRefKey(kind, name string) string { return kind + "/" + name }

// jwksNotFoundError says that the referenced object or key is missing (or not labelled).
type jwksNotFoundError struct{ msg string }

func (e *jwksNotFoundError) Error() string { return e.msg }

// jwksCache is the cache of labelled Secrets and ConfigMaps. GetCache puts it in the manager's
// cache group: started (and synced) before the controllers, and without leader election.
type jwksCache struct{ cache.Cache }

func (c jwksCache) GetCache() cache.Cache { return c.Cache }

// newJWKSCache builds the cache of Secrets and ConfigMaps labelled auth.m2m.dev/jwks=true and
// adds it to the manager.
func newJWKSCache(mgr ctrl.Manager) (cache.Cache, error) {
	sel := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelJWKS: jwksLabelValue})
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient: mgr.GetHTTPClient(),
		Scheme:     mgr.GetScheme(),
		Mapper:     mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: sel},
			&corev1.ConfigMap{}: {Label: sel},
		},
		// Only these two types are ever read from this cache.
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the JWKS cache: %w", err)
	}
	if err := mgr.Add(jwksCache{c}); err != nil {
		return nil, fmt.Errorf("adding the JWKS cache: %w", err)
	}
	return c, nil
}

// readJWKSFrom reads the JWKS document a client references. A missing object, an unlabelled
// object, or a missing key is a *jwksNotFoundError; other errors are the API's, to retry.
func (r *M2MClientReconciler) readJWKSFrom(ctx context.Context, c *authv1alpha1.M2MClient, ref jwksRef) ([]byte, error) {
	key := client.ObjectKey{Namespace: c.Namespace, Name: ref.name}
	var (
		v  []byte
		ok bool
	)
	if ref.kind == "Secret" {
		s := &corev1.Secret{}
		if err := r.JWKSCache.Get(ctx, key, s); err != nil {
			return nil, jwksReadError(err, ref, key)
		}
		v, ok = s.Data[ref.key]
	} else {
		cm := &corev1.ConfigMap{}
		if err := r.JWKSCache.Get(ctx, key, cm); err != nil {
			return nil, jwksReadError(err, ref, key)
		}
		var str string
		if str, ok = cm.Data[ref.key]; ok {
			v = []byte(str)
		} else {
			v, ok = cm.BinaryData[ref.key]
		}
	}
	if !ok {
		return nil, &jwksNotFoundError{msg: fmt.Sprintf("%s %s has no key %q: put the JWKS document under that key, or fix spec.authentication.jwksFrom", ref.kind, key, ref.key)}
	}
	return v, nil
}

func jwksReadError(err error, ref jwksRef, key client.ObjectKey) error {
	if apierrors.IsNotFound(err) {
		return &jwksNotFoundError{msg: fmt.Sprintf("%s %s was not found with label %s=%s: create it (the JWKS under key %q) and label it, so that the controller sees it",
			ref.kind, key, authv1alpha1.LabelJWKS, jwksLabelValue, ref.key)}
	}
	return fmt.Errorf("reading %s %s: %w", ref.kind, key, err)
}

// jwksSourceHandler enqueues the clients of the object's namespace that reference it.
func (r *M2MClientReconciler) jwksSourceHandler(kind string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list authv1alpha1.M2MClientList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()),
			client.MatchingFields{indexJWKSFrom: jwksRefKey(kind, o.GetName())}); err != nil {
			logf.FromContext(ctx).Error(err, "listing M2MClients by jwksFrom", "kind", kind, "namespace", o.GetNamespace(), "name", o.GetName())
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	})
}
