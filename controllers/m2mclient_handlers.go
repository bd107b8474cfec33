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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// isRecord selects credential records: Secrets in the credentials namespace with a client-id
// label.
func (r *M2MClientReconciler) isRecord(o client.Object) bool {
	_, ok := o.GetLabels()[authv1alpha1.LabelClientID]
	return ok && o.GetNamespace() == r.CredentialsNamespace
}

// isCABundle selects the token server's CA Secret, whose bundle every credential Secret carries.
func (r *M2MClientReconciler) isCABundle(o client.Object) bool {
	return r.CABundle && o.GetNamespace() == r.SystemNamespace && o.GetName() == tlscontroller.CASecretName
}

// allClients enqueues every client (the CA bundle changed).
func (r *M2MClientReconciler) allClients(ctx context.Context, _ client.Object) []reconcile.Request {
	var list authv1alpha1.M2MClientList
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing M2MClients")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// recordToClient maps a record back to its M2MClient through its labels.
func (r *M2MClientReconciler) recordToClient(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	ns, name := l[authv1alpha1.LabelClientNamespace], l[authv1alpha1.LabelClientName]
	if ns == "" || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

type requestQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// policyHandler re-resolves exactly the clients a policy change can affect: those requesting a
// scope declared by any policy claiming the policy's audience (old and new), and those holding
// that audience now. An update that changes nothing clients resolve against (the ScopePolicy
// controller recounting status.clients while clients are created) re-resolves none: it used
// to re-enqueue every client of the audience about once a second per policy.
func (r *M2MClientReconciler) policyHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q requestQueue) {
			r.enqueueForPolicies(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q requestQueue) {
			o, n := e.ObjectOld.(*authv1alpha1.ScopePolicy), e.ObjectNew.(*authv1alpha1.ScopePolicy)
			if resolve.SameForClients(o, n) {
				return
			}
			r.enqueueForPolicies(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q requestQueue) {
			r.enqueueForPolicies(ctx, q, e.Object)
		},
	}
}

func (r *M2MClientReconciler) enqueueForPolicies(ctx context.Context, q requestQueue, objs ...client.Object) {
	var changed []authv1alpha1.ScopePolicy
	var auds []string
	for _, o := range objs {
		if p, ok := o.(*authv1alpha1.ScopePolicy); ok {
			changed = append(changed, *p)
			auds = append(auds, resolve.Audience(p))
		}
	}
	r.enqueueForAudiences(ctx, q, auds, changed)
}

// enqueueForAudience re-resolves the clients an AudienceBinding change can affect: those of
// every policy claiming its audience.
func (r *M2MClientReconciler) enqueueForAudience(ctx context.Context, q requestQueue, aud string) {
	r.enqueueForAudiences(ctx, q, []string{aud}, nil)
}

// enqueueForAudiences enqueues the clients requesting a scope declared by a policy claiming one
// of the audiences (the changed policies, which may be gone from the cache, and every policy the
// cache holds for them), and the clients holding one of the audiences now.
func (r *M2MClientReconciler) enqueueForAudiences(ctx context.Context, q requestQueue, auds []string, changed []authv1alpha1.ScopePolicy) {
	log := logf.FromContext(ctx)
	seen := map[types.NamespacedName]bool{}
	add := func(list *authv1alpha1.M2MClientList) {
		for i := range list.Items {
			key := client.ObjectKeyFromObject(&list.Items[i])
			if !seen[key] {
				seen[key] = true
				q.Add(reconcile.Request{NamespacedName: key})
			}
		}
	}
	scopes := map[string]bool{}
	claimants := changed
	for _, aud := range auds {
		var others authv1alpha1.ScopePolicyList
		if err := r.List(ctx, &others, client.MatchingFields{indexPolicyAudience: aud}); err != nil {
			log.Error(err, "listing ScopePolicies by audience", "audience", aud)
		}
		claimants = append(claimants, others.Items...)
		var holding authv1alpha1.M2MClientList
		if err := r.List(ctx, &holding, client.MatchingFields{indexClientAudiences: aud}, client.UnsafeDisableDeepCopy); err != nil {
			log.Error(err, "listing M2MClients by audience", "audience", aud)
		}
		add(&holding)
	}
	for _, c := range claimants {
		for _, d := range c.Spec.Scopes {
			scopes[string(d.Name)] = true
		}
	}
	for s := range scopes {
		var requesting authv1alpha1.M2MClientList
		if err := r.List(ctx, &requesting, client.MatchingFields{indexClientScopes: s}, client.UnsafeDisableDeepCopy); err != nil {
			log.Error(err, "listing M2MClients by scope", "scope", s)
			continue
		}
		add(&requesting)
	}
}

// namespaceHandler re-resolves every client in a namespace whose labels changed (grants by
// namespaceSelector).
func (r *M2MClientReconciler) namespaceHandler() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		ns, ok := o.(*corev1.Namespace)
		if !ok {
			return nil
		}
		var list authv1alpha1.M2MClientList
		if err := r.List(ctx, &list, client.InNamespace(ns.Name), client.UnsafeDisableDeepCopy); err != nil {
			logf.FromContext(ctx).Error(err, "listing M2MClients in namespace", "namespace", ns.Name)
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	})
}

// serviceAccountToClients maps a ServiceAccount (created or deleted) to the clients bound to it.
func (r *M2MClientReconciler) serviceAccountToClients(ctx context.Context, o client.Object) []reconcile.Request {
	var list authv1alpha1.M2MClientList
	if err := r.List(ctx, &list, client.MatchingFields{indexClientServiceAccount: o.GetNamespace() + "/" + o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing M2MClients by ServiceAccount", "serviceAccount", o.GetNamespace()+"/"+o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}
