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
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// ScopePolicyReconciler decides which policy holds each audience and reports, on each policy,
// whether it holds its audience and how many clients it serves. The grants themselves are
// resolved into clients by the M2MClient reconciler.
type ScopePolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=auth.m2m.dev,resources=scopepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=scopepolicies/status,verbs=patch
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=audiencebindings,verbs=get;list;watch

// Reconcile updates one policy's status.
func (r *ScopePolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &authv1alpha1.ScopePolicy{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	base := p.DeepCopy()
	aud := resolve.Audience(p)
	p.Status.Audience = aud
	p.Status.ObservedGeneration = p.Generation

	bindings, err := listBindings(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	if binding := resolve.BindingOf(aud, p.Namespace, bindings); binding != resolve.BoundByName && binding != resolve.BoundByBinding {
		r.setNotBound(p, binding)
	} else if holder, err := r.holder(ctx, aud, bindings); err != nil {
		return ctrl.Result{}, err
	} else if holder != nil && (holder.Namespace != p.Namespace || holder.Name != p.Name) {
		r.setConflict(p, holder)
	} else if err := r.setHolding(ctx, p, aud); err != nil {
		return ctrl.Result{}, err
	}

	setHealth(&p.Status.Conditions, p.Generation)
	if equality.Semantic.DeepEqual(base.Status, p.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, p, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching ScopePolicy status: %w", client.IgnoreNotFound(err))
	}
	return ctrl.Result{}, nil
}

func (r *ScopePolicyReconciler) holder(ctx context.Context, aud string, bindings resolve.Bindings) (*authv1alpha1.ScopePolicy, error) {
	var claimants authv1alpha1.ScopePolicyList
	if err := r.List(ctx, &claimants, client.MatchingFields{indexPolicyAudience: aud}); err != nil {
		return nil, fmt.Errorf("listing ScopePolicies for audience %q: %w", aud, err)
	}
	return resolve.Holders(claimants.Items, bindings)[aud], nil
}

// listBindings reads every AudienceBinding from the cache.
func listBindings(ctx context.Context, c client.Reader) (resolve.Bindings, error) {
	var list authv1alpha1.AudienceBindingList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing AudienceBindings: %w", err)
	}
	return resolve.NewBindings(list.Items), nil
}

// setConflict reports that an older policy of the same namespace holds the audience (policies
// of other namespaces never hold it, so the message names nothing outside this namespace).
func (r *ScopePolicyReconciler) setConflict(p, holder *authv1alpha1.ScopePolicy) {
	msg := fmt.Sprintf("audience %q is held by the older ScopePolicy %s of this namespace; this policy grants nothing until that one is deleted or this one uses another spec.audience",
		p.Status.Audience, holder.Name)
	wasConflict := meta.IsStatusConditionTrue(p.Status.Conditions, authv1alpha1.ConditionAudienceConflict)
	setPolicyCondition(p, authv1alpha1.ConditionAudienceConflict, metav1.ConditionTrue, authv1alpha1.ReasonAudienceHeldByOtherPolicy, msg)
	setPolicyCondition(p, authv1alpha1.ConditionReady, metav1.ConditionFalse, authv1alpha1.ReasonAudienceConflict, msg)
	p.Status.Clients = 0
	if !wasConflict {
		r.Recorder.Eventf(p, holder, corev1.EventTypeWarning, authv1alpha1.ReasonAudienceConflict, "Reconcile", "%s", msg)
	}
}

// setNotBound reports that the policy's audience is not bound to its namespace. The message
// says how to bind it and nothing about which namespace, if any, holds it.
func (r *ScopePolicyReconciler) setNotBound(p *authv1alpha1.ScopePolicy, binding resolve.Binding) {
	aud, ns := p.Status.Audience, p.Namespace
	msg := fmt.Sprintf("audience %q is not bound to namespace %s, so this policy grants nothing: use an audience of the form <x>.%s (the default is %s.%s), or ask a cluster administrator for an AudienceBinding of %q to %s",
		aud, ns, ns, p.Name, ns, aud, ns)
	if binding == resolve.Contested {
		msg = fmt.Sprintf("AudienceBindings bind audience %q to more than one namespace, so it is bound to none and this policy grants nothing: ask a cluster administrator to keep only the binding to %s", aud, ns)
	}
	wasReady := meta.FindStatusCondition(p.Status.Conditions, authv1alpha1.ConditionReady)
	meta.RemoveStatusCondition(&p.Status.Conditions, authv1alpha1.ConditionAudienceConflict)
	setPolicyCondition(p, authv1alpha1.ConditionReady, metav1.ConditionFalse, authv1alpha1.ReasonAudienceNotBound, msg)
	p.Status.Clients = 0
	if wasReady == nil || wasReady.Reason != authv1alpha1.ReasonAudienceNotBound {
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, authv1alpha1.ReasonAudienceNotBound, "Reconcile", "%s", msg)
	}
}

func (r *ScopePolicyReconciler) setHolding(ctx context.Context, p *authv1alpha1.ScopePolicy, aud string) error {
	var holding authv1alpha1.M2MClientList
	if err := r.List(ctx, &holding, client.MatchingFields{indexClientAudiences: aud}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("counting clients of audience %q: %w", aud, err)
	}
	p.Status.Clients = int32(len(holding.Items))
	setPolicyCondition(p, authv1alpha1.ConditionAudienceConflict, metav1.ConditionFalse, authv1alpha1.ReasonAudienceHeld,
		fmt.Sprintf("this policy holds audience %q", aud))
	if unbounded := unboundedGrants(p); len(unbounded) > 0 {
		setPolicyCondition(p, authv1alpha1.ConditionReady, metav1.ConditionFalse, authv1alpha1.ReasonGrantWithoutNamespace,
			fmt.Sprintf("spec.grants%v.clients set neither namespaces nor namespaceSelector, so they match no client (client names and labels are chosen by each namespace's team): add namespaces, or namespaceSelector: {} for every namespace; the other grants apply", unbounded))
		return nil
	}
	setPolicyCondition(p, authv1alpha1.ConditionReady, metav1.ConditionTrue, authv1alpha1.ReasonReady,
		fmt.Sprintf("audience %q offers %d scopes through %d grants to %d clients", aud, len(p.Spec.Scopes), len(p.Spec.Grants), len(holding.Items)))
	return nil
}

// unboundedGrants lists the indexes of the grants without a namespace boundary.
func unboundedGrants(p *authv1alpha1.ScopePolicy) []int {
	var out []int
	for i := range p.Spec.Grants {
		if !resolve.Bounded(&p.Spec.Grants[i].Clients) {
			out = append(out, i)
		}
	}
	return out
}

func setPolicyCondition(p *authv1alpha1.ScopePolicy, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
	})
}

// SetupWithManager watches policies (a change to one can hand its audience to another) and
// clients (their status decides the policy's client count).
func (r *ScopePolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.ScopePolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&authv1alpha1.ScopePolicy{}, r.sameAudienceHandler()).
		Watches(&authv1alpha1.M2MClient{}, r.clientHandler()).
		Watches(&authv1alpha1.AudienceBinding{}, bindingHandler(r.enqueueClaimants)).
		Named("scopepolicy").
		Complete(r)
}

// sameAudienceHandler enqueues every policy claiming the audience of a changed policy.
func (r *ScopePolicyReconciler) sameAudienceHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q requestQueue) {
			r.enqueueClaimants(ctx, q, resolve.Audience(e.Object.(*authv1alpha1.ScopePolicy)))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q requestQueue) {
			// Only the spec (generation) and deletion decide who holds an audience; a status
			// patch must not start another round of recounts.
			if e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() &&
				e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()) {
				return
			}
			r.enqueueClaimants(ctx, q, resolve.Audience(e.ObjectOld.(*authv1alpha1.ScopePolicy)))
			r.enqueueClaimants(ctx, q, resolve.Audience(e.ObjectNew.(*authv1alpha1.ScopePolicy)))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q requestQueue) {
			if p, ok := e.Object.(*authv1alpha1.ScopePolicy); ok {
				r.enqueueClaimants(ctx, q, resolve.Audience(p))
			}
		},
	}
}

// clientHandler enqueues the policies of the audiences a client gained or lost.
func (r *ScopePolicyReconciler) clientHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, q requestQueue, auds ...[]string) {
		seen := map[string]bool{}
		for _, list := range auds {
			for _, a := range list {
				if !seen[a] {
					seen[a] = true
					r.enqueueClaimantsAfter(ctx, q, a, clientCountDelay)
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q requestQueue) {
			enqueue(ctx, q, e.Object.(*authv1alpha1.M2MClient).Status.Audiences)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q requestQueue) {
			o, n := e.ObjectOld.(*authv1alpha1.M2MClient), e.ObjectNew.(*authv1alpha1.M2MClient)
			if equality.Semantic.DeepEqual(o.Status.Audiences, n.Status.Audiences) {
				return
			}
			enqueue(ctx, q, o.Status.Audiences, n.Status.Audiences)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q requestQueue) {
			if c, ok := e.Object.(*authv1alpha1.M2MClient); ok {
				enqueue(ctx, q, c.Status.Audiences)
			}
		},
	}
}

// bindingHandler calls enqueue with the audience of a changed AudienceBinding (old and new):
// a binding decides which namespace may hold it.
func bindingHandler(enqueue func(context.Context, requestQueue, string)) handler.EventHandler {
	audience := func(o client.Object) (string, bool) {
		b, ok := o.(*authv1alpha1.AudienceBinding)
		if !ok {
			return "", false
		}
		return string(b.Spec.Audience), true
	}
	each := func(ctx context.Context, q requestQueue, objs ...client.Object) {
		seen := map[string]bool{}
		for _, o := range objs {
			if aud, ok := audience(o); ok && !seen[aud] {
				seen[aud] = true
				enqueue(ctx, q, aud)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q requestQueue) { each(ctx, q, e.Object) },
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q requestQueue) { each(ctx, q, e.ObjectOld, e.ObjectNew) },
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q requestQueue) { each(ctx, q, e.Object) },
	}
}

func (r *ScopePolicyReconciler) enqueueClaimants(ctx context.Context, q requestQueue, aud string) {
	r.enqueueClaimantsAfter(ctx, q, aud, 0)
}

// clientCountDelay coalesces the recounts of status.clients: while clients are being created by
// the thousand, a policy is recounted (and its status patched) about once a second instead of
// after every client.
const clientCountDelay = time.Second

// enqueueClaimantsAfter enqueues every policy claiming aud, after delay (none when zero).
func (r *ScopePolicyReconciler) enqueueClaimantsAfter(ctx context.Context, q requestQueue, aud string, delay time.Duration) {
	var list authv1alpha1.ScopePolicyList
	if err := r.List(ctx, &list, client.MatchingFields{indexPolicyAudience: aud}); err != nil {
		logf.FromContext(ctx).Error(err, "listing ScopePolicies by audience", "audience", aud)
		return
	}
	for i := range list.Items {
		req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}}
		if delay > 0 {
			q.AddAfter(req, delay)
		} else {
			q.Add(req)
		}
	}
}
