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

package tlscontroller

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// ControllerName names the controller, its logger and its event source.
const ControllerName = "m2m-tls"

// retryAfter is the pause after a write conflict, before reading the Secrets again.
const retryAfter = time.Second

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Namespaces say where the TLS controller keeps what. They differ in an install: the token
// server may read every Secret of the credentials namespace (RBAC cannot narrow a list or watch
// to some names), so the CA key must live elsewhere.
type Namespaces struct {
	// System holds the CA Secret, which only the controller reads, and the token server's
	// Service, whose DNS names the serving certificate holds.
	System string
	// Credentials holds the serving Secret, which the token server reads.
	Credentials string
}

// Reconciler keeps the CA Secret in the system namespace, the serving Secret in the
// credentials namespace and the CA ConfigMap (the public bundle) in the system namespace. Every request reconciles both, in order (the serving certificate
// depends on the CA), so there is never a race between them. Build it with New.
type Reconciler struct {
	// Client reads (from the manager's cache, which holds managed Secrets only) and writes.
	Client client.Client
	// Reader reads past the cache, to find a Secret whose managed-by label was removed.
	// Default: Client.
	Reader client.Reader
	// Recorder emits Events on the Secrets; nil disables Events.
	Recorder events.EventRecorder
	// Namespaces are where the Secrets are kept.
	Namespaces Namespaces
	// Options are the options, completed by New.
	Options Options
}

// New returns a Reconciler for the Secrets in ns, with opts completed and validated. reader
// reads past c's cache (nil: c); recorder may be nil.
func New(c client.Client, reader client.Reader, recorder events.EventRecorder, ns Namespaces, opts Options) (*Reconciler, error) {
	if ns.System == "" || ns.Credentials == "" {
		return nil, errors.New("the TLS controller needs the system and the credentials namespace")
	}
	if err := opts.complete(); err != nil {
		return nil, err
	}
	return &Reconciler{Client: c, Reader: reader, Recorder: recorder, Namespaces: ns, Options: opts}, nil
}

// SetupWithManager registers the TLS controller with mgr when opts.Enabled; otherwise it does
// nothing, so that callers can call it unconditionally.
func SetupWithManager(mgr ctrl.Manager, opts Options, ns Namespaces) error {
	if !opts.Enabled {
		return nil
	}
	r, err := New(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder(ControllerName), ns, opts)
	if err != nil {
		return err
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager watches the two Secrets and the CA ConfigMap (the manager's cache should
// hold managed ConfigMaps only, as it does Secrets) and reconciles once at start, since there is no watch
// event for a Secret that does not exist yet.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.Options.complete(); err != nil {
		return err
	}
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		key := client.ObjectKeyFromObject(o)
		return key == r.caKey() || key == r.servingKey()
	})
	published := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return client.ObjectKeyFromObject(o) == r.caConfigMapKey()
	})
	err := ctrl.NewControllerManagedBy(mgr).
		Named("tokenserver-tls").
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.toRequest), builder.WithPredicates(ours)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.toRequest), builder.WithPredicates(published)).
		WatchesRawSource(source.Func(r.kickoff)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("setting up the TLS controller: %w", err)
	}
	return nil
}

// request is the one work item: both Secrets are reconciled together.
func (r *Reconciler) request() reconcile.Request {
	return reconcile.Request{NamespacedName: r.servingKey()}
}

// caKey names the CA Secret; servingKey names the serving Secret.
func (r *Reconciler) caKey() types.NamespacedName {
	return types.NamespacedName{Namespace: r.Namespaces.System, Name: CASecretName}
}

func (r *Reconciler) servingKey() types.NamespacedName {
	return types.NamespacedName{Namespace: r.Namespaces.Credentials, Name: ServingSecretName}
}

func (r *Reconciler) toRequest(context.Context, client.Object) []reconcile.Request {
	return []reconcile.Request{r.request()}
}

func (r *Reconciler) kickoff(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	q.Add(r.request())
	return nil
}

// errRetry marks a lost write race (conflict, already exists): read again shortly.
var errRetry = errors.New("the Secret changed meanwhile")

// Reconcile brings the CA and then the serving certificate up to date, and requeues exactly when
// the next one is due for renewal (or an old CA leaves the bundle).
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	now := r.Options.Clock.Now()
	next, err := r.reconcile(ctx, now)
	switch {
	case errors.Is(err, errRetry):
		return ctrl.Result{RequeueAfter: retryAfter}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	return r.requeueAt(now, next), nil
}

// reconcile returns when the Secrets change next by themselves.
func (r *Reconciler) reconcile(ctx context.Context, now time.Time) (time.Time, error) {
	ca, err := r.ensureCA(ctx, now)
	if err != nil {
		return time.Time{}, err
	}
	leafRenewal, err := r.ensureServing(ctx, ca, now)
	if err != nil {
		return time.Time{}, err
	}
	// Last, so that a failure to publish never holds back the serving certificate.
	if err := r.publishCA(ctx, ca); err != nil {
		return time.Time{}, err
	}
	return earliest(leafRenewal, ca.nextChange()), nil
}

// requeueAt asks to be called again exactly at t.
func (r *Reconciler) requeueAt(now, t time.Time) ctrl.Result {
	if t.IsZero() {
		return ctrl.Result{}
	}
	if d := t.Sub(now); d > 0 {
		return ctrl.Result{RequeueAfter: d}
	}
	return ctrl.Result{RequeueAfter: retryAfter}
}

func earliest(ts ...time.Time) time.Time {
	var first time.Time
	for _, t := range ts {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// load returns the Secret key, or nil when it does not exist. A Secret the label-filtered cache
// cannot see (its managed-by label was removed) is read past the cache; the next write puts the
// label back.
func (r *Reconciler) load(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		err = r.reader().Get(ctx, key, secret)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	return secret, nil
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

// write creates secret when it has no resourceVersion yet and updates it otherwise, always with
// the managed-by label (so that the manager's cache, and the token server, see it).
func (r *Reconciler) write(ctx context.Context, secret *corev1.Secret) error {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[authv1alpha1.LabelManagedBy] = authv1alpha1.ManagedByValue
	var err error
	if secret.ResourceVersion == "" {
		err = r.Client.Create(ctx, secret)
	} else {
		err = r.Client.Update(ctx, secret)
	}
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return errRetry
	case err != nil:
		return fmt.Errorf("writing Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	return nil
}

func labelled(secret *corev1.Secret) bool {
	return secret.Labels[authv1alpha1.LabelManagedBy] == authv1alpha1.ManagedByValue
}

// event records an Event on secret; notes name serial numbers and dates, never key material.
func (r *Reconciler) event(secret *corev1.Secret, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(secret, nil, eventType, reason, action, note, args...)
}

// renewBefore is how long before its expiry cert is replaced: a third of its life, so that it is
// renewed at two thirds and a third is left to ride out an outage of the controller.
func renewBefore(cert *x509.Certificate) time.Duration { return certs.Lifetime(cert) / 3 }
