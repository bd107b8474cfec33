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

// Package signingkey reconciles the signing-key Secret: it creates it when absent and moves its
// keys next → active → retired → gone on the rotation schedule of internal/signingkey.
package signingkey

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// retryAfter is the pause after a write conflict, before reading the Secret again.
const retryAfter = time.Second

// ControllerName names the controller, its logger and its event source.
const ControllerName = "m2m-signing-keys"

// Event reasons.
const (
	ReasonKeyBootstrapped = "SigningKeyBootstrapped"
	ReasonKeyPublished    = "SigningKeyPublished"
	ReasonKeyActivated    = "SigningKeyActivated"
	ReasonKeyRetired      = "SigningKeyRetired"
	ReasonKeyRemoved      = "SigningKeyRemoved"
	ReasonRecreated       = "SigningKeysRecreated"
	ReasonInvalid         = "SigningKeysInvalid"
	ReasonLabelRestored   = "SigningKeysLabelRestored"
)

// recreations counts signing-key Secrets found deleted and created again: every token signed
// before stops verifying, so it is worth an alert (increase(...[1h]) > 0).
var recreations = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "m2m_signing_key_secret_recreated_total",
	Help: "Signing-key Secrets that were deleted and created again with new keys (tokens signed before no longer verify).",
})

// The schedule as series, for the alerts of config/monitoring: the token servers report each
// loaded key's age (m2m_tokenserver_signing_key_age_seconds), and an active key older than
// rotationInterval+publishAhead means the rotation did not happen; a nextTransition in the past
// means this controller missed its own schedule. Set by every successful reconcile.
var (
	rotationInterval = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "m2m_signing_key_rotation_interval_seconds",
		Help: "How long a signing key stays active (--signing-key-rotation-interval).",
	})
	publishAhead = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "m2m_signing_key_publish_ahead_seconds",
		Help: "How long a next signing key is published before it signs (an active key is at most rotation interval + publish-ahead old).",
	})
	nextTransition = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "m2m_signing_key_next_transition_timestamp_seconds",
		Help: "When the signing-key controller must next advance the keys (Unix time), as planned by its last successful reconcile.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(recreations, rotationInterval, publishAhead, nextTransition)
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler keeps the one signing-key Secret of the installation on its rotation schedule.
type Reconciler struct {
	// Client reads (from the manager's cache) and writes the Secret.
	Client client.Client
	// Reader reads past the cache, to find a Secret that lost its managed-by label. Default: Client.
	Reader client.Reader
	// Recorder emits Events on the Secret; nil disables Events.
	Recorder events.EventRecorder
	// Namespace and Name locate the Secret.
	Namespace, Name string
	// Policy is the rotation schedule.
	Policy signingkey.Policy
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Generate creates keys; default signingkey.Generate.
	Generate signingkey.Generator

	mu      sync.Mutex
	seenUID types.UID
}

// SetupWithManager registers the reconciler: it watches the Secret, and runs once at start so
// that an absent Secret is created.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Reader == nil {
		r.Reader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	isOurs := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == r.Name
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("signingkey").
		For(&corev1.Secret{}, builder.WithPredicates(isOurs)).
		WatchesRawSource(source.Func(r.kickoff)).
		Complete(r)
}

// kickoff enqueues the Secret once at start: there is no watch event for an absent object.
func (r *Reconciler) kickoff(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	q.Add(r.request())
	return nil
}

func (r *Reconciler) request() reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: r.Name}}
}

// Reconcile advances the key set to now, writes it when it changed, and requeues exactly at the
// next transition.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	if req.Namespace != r.Namespace || req.Name != r.Name {
		return ctrl.Result{}, nil
	}
	secret, err := r.load(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secret == nil {
		return r.create(ctx)
	}
	r.remember(secret.UID)
	return r.advance(ctx, secret)
}

// load returns the Secret, or nil when it does not exist. A Secret that the label-filtered cache
// cannot see (its managed-by label was removed) is read past the cache and relabelled.
func (r *Reconciler) load(ctx context.Context) (*corev1.Secret, error) {
	key := r.request().NamespacedName
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, key, secret)
	if err == nil {
		return secret, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading signing-key Secret %s: %w", key, err)
	}
	if err := r.reader().Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading signing-key Secret %s: %w", key, err)
	}
	return secret, r.restoreLabel(ctx, secret)
}

func (r *Reconciler) restoreLabel(ctx context.Context, secret *corev1.Secret) error {
	if secret.Labels[authv1alpha1.LabelManagedBy] == authv1alpha1.ManagedByValue {
		return nil
	}
	patch := client.MergeFrom(secret.DeepCopy())
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[authv1alpha1.LabelManagedBy] = authv1alpha1.ManagedByValue
	if err := r.Client.Patch(ctx, secret, patch); err != nil {
		return fmt.Errorf("restoring the managed-by label of the signing-key Secret: %w", err)
	}
	log.FromContext(ctx).Info("restored the managed-by label of the signing-key Secret")
	r.event(secret, corev1.EventTypeWarning, ReasonLabelRestored, "Restore", "the %s label was missing; restored it", authv1alpha1.LabelManagedBy)
	return nil
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

// create writes a new Secret with one active key.
func (r *Reconciler) create(ctx context.Context) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	res, err := signingkey.Advance(nil, r.now(), r.Policy, r.generator())
	if err != nil {
		return ctrl.Result{}, err
	}
	data, err := res.Set.Encode()
	if err != nil {
		return ctrl.Result{}, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.Namespace,
			Name:      r.Name,
			Labels:    map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue},
		},
		Type: signingkey.SecretType,
		Data: map[string][]byte{signingkey.DataKey: data},
	}
	if err := r.Client.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return ctrl.Result{RequeueAfter: retryAfter}, nil
		}
		return ctrl.Result{}, fmt.Errorf("creating signing-key Secret: %w", err)
	}
	if r.forget() {
		recreations.Inc()
		logger.Error(nil, "the signing-key Secret disappeared and was created again with a new key: tokens signed with the old keys no longer verify",
			"secret", r.Name, "namespace", r.Namespace)
		r.event(secret, corev1.EventTypeWarning, ReasonRecreated, "Recreate", "the signing-key Secret was deleted and created again; tokens signed with the previous keys no longer verify")
	}
	r.remember(secret.UID)
	r.report(ctx, secret, res.Transitions)
	return r.scheduled(res.NextTransition), nil
}

// advance moves an existing Secret's keys along the schedule.
func (r *Reconciler) advance(ctx context.Context, secret *corev1.Secret) (ctrl.Result, error) {
	set, err := signingkey.Decode(secret.Data[signingkey.DataKey])
	if err != nil {
		log.FromContext(ctx).Error(err, "the signing-key Secret is invalid; leaving it untouched (delete it to start over with new keys)")
		r.event(secret, corev1.EventTypeWarning, ReasonInvalid, "Validate", "the signing-key Secret is invalid and is left untouched: %v", err)
		return ctrl.Result{}, fmt.Errorf("signing-key Secret is invalid: %w", err)
	}
	res, err := signingkey.Advance(set, r.now(), r.Policy, r.generator())
	if err != nil {
		return ctrl.Result{}, err
	}
	if !res.Changed {
		return r.scheduled(res.NextTransition), nil
	}
	data, err := res.Set.Encode()
	if err != nil {
		return ctrl.Result{}, err
	}
	secret.Data = map[string][]byte{signingkey.DataKey: data}
	if err := r.Client.Update(ctx, secret); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: retryAfter}, nil
		}
		return ctrl.Result{}, fmt.Errorf("updating signing-key Secret: %w", err)
	}
	r.report(ctx, secret, res.Transitions)
	return r.scheduled(res.NextTransition), nil
}

// scheduled records a successful reconcile's schedule in the metrics and requeues at next.
func (r *Reconciler) scheduled(next time.Time) ctrl.Result {
	rotationInterval.Set(r.Policy.RotationInterval.Seconds())
	publishAhead.Set(r.Policy.PublishAhead.Seconds())
	if !next.IsZero() {
		nextTransition.Set(float64(next.Unix()))
	}
	return r.requeueAt(next)
}

// report logs and records one Event per transition (key ids only: never key material).
func (r *Reconciler) report(ctx context.Context, secret *corev1.Secret, ts []signingkey.Transition) {
	logger := log.FromContext(ctx)
	for _, t := range ts {
		logger.Info("signing key "+string(t.Kind), "kid", t.KID, "alg", t.Algorithm)
		r.event(secret, corev1.EventTypeNormal, reasonFor(t.Kind), string(t.Kind), "signing key %s (%s) %s", t.KID, t.Algorithm, t.Kind)
	}
}

func reasonFor(k signingkey.TransitionKind) string {
	switch k {
	case signingkey.Bootstrapped:
		return ReasonKeyBootstrapped
	case signingkey.Published:
		return ReasonKeyPublished
	case signingkey.Activated:
		return ReasonKeyActivated
	case signingkey.Retired:
		return ReasonKeyRetired
	default:
		return ReasonKeyRemoved
	}
}

func (r *Reconciler) event(secret *corev1.Secret, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(secret, nil, eventType, reason, action, note, args...)
}

// requeueAt asks to be called again exactly at t.
func (r *Reconciler) requeueAt(t time.Time) ctrl.Result {
	if t.IsZero() {
		return ctrl.Result{}
	}
	d := t.Sub(r.now())
	if d <= 0 {
		return ctrl.Result{RequeueAfter: retryAfter}
	}
	return ctrl.Result{RequeueAfter: d}
}

func (r *Reconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *Reconciler) generator() signingkey.Generator {
	if r.Generate != nil {
		return r.Generate
	}
	return signingkey.Generate
}

func (r *Reconciler) remember(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seenUID = uid
}

// forget reports whether a Secret had been seen before (so it is being recreated) and clears it.
func (r *Reconciler) forget() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seenUID != ""
	r.seenUID = ""
	return seen
}
