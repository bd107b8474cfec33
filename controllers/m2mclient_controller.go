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
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	tlscontroller "github.com/m2m-dev/m2m-operator/controllers/tls"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/credentialplan"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// M2MClientReconciler turns an M2MClient into a working machine identity: a client id, a
// credential Secret in the client's namespace, and a credential record (hashes only) in the
// credentials namespace for the token server.
type M2MClientReconciler struct {
	client.Client
	// APIReader reads objects the label-filtered cache cannot see (a foreign Secret squatting
	// on the credential Secret's name).
	APIReader client.Reader
	// JWKSCache holds only the Secrets and ConfigMaps labelled auth.m2m.dev/jwks=true, which
	// spec.authentication.jwksFrom may reference (see jwks_source.go).
	JWKSCache cache.Cache
	Recorder  events.EventRecorder
	Options
}

// clientScope carries one reconcile's state from phase to phase. The phases record facts in
// it and never touch the status: updateStatus (m2mclient_status.go) derives the whole status,
// every condition included, from those facts, once, in the deferred patch.
type clientScope struct {
	client *authv1alpha1.M2MClient
	now    time.Time
	// clientID is the client id (reconcileIdentity).
	clientID string
	// resolution is the client's resolution against the policies; resolved is set once it is
	// made (reconcileScopes).
	resolution resolve.Result
	resolved   bool
	// caBundle is the token server's CA bundle, when Options.CABundle is on; waitingForCA is
	// set while it is not issued: the credential Secret waits for it, the record does not
	// (reconcileCABundle).
	caBundle     []byte
	waitingForCA bool
	// jwks is the checked public JWKS of a PrivateKeyJWT client for the record; jwksErr says
	// why the client's JWKS cannot be used (the record then holds no key): a
	// *jwksNotFoundError when jwksFrom names a missing object or key, else the JWKS is invalid.
	// jwksSource names where the JWKS came from, for messages (reconcileClientKeys).
	jwks       []byte
	jwksErr    error
	jwksSource string
	// serviceAccountMissing is set when the ServiceAccount of a ServiceAccount-method client
	// does not exist: no pod can present its token (reconcileServiceAccount).
	serviceAccountMissing bool
	// credentials is how far the credentials phase got (reconcileCredentials).
	credentials credentialsOutcome
	// revocation is the record's not-before times (credentialplan.DecideRevocation);
	// revocationWritten is set once a record holding them is written or already held them,
	// and only then does the status record the revoke-tokens value as handled.
	revocation        credentialplan.Revocation
	revocationWritten bool
	// requeue is the earliest moment something must happen without an event (rotation due,
	// a grace period ending).
	requeue time.Time
}

func (s *clientScope) requeueAt(t time.Time) {
	if !t.IsZero() && (s.requeue.IsZero() || t.Before(s.requeue)) {
		s.requeue = t
	}
}

// +kubebuilder:rbac:groups=auth.m2m.dev,resources=m2mclients,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=m2mclients/status,verbs=patch
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=m2mclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=scopepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.m2m.dev,resources=audiencebindings,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one M2MClient's Secrets and status in line with its spec.
func (r *M2MClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	c := &authv1alpha1.M2MClient{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, c)
	}
	// The finalizer goes on before anything is written, so nothing can be left behind.
	if err := patchFinalizers(ctx, r.Client, c, func(o client.Object) bool {
		return controllerutil.AddFinalizer(o, authv1alpha1.Finalizer)
	}); err != nil {
		return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
	}

	base := c.DeepCopy()
	s := &clientScope{client: c, now: r.Clock.Now()}
	defer func() {
		r.updateStatus(s)
		if err := r.patchStatus(ctx, base, c); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	phases := []func(context.Context, *clientScope) error{
		r.reconcileIdentity,
		r.reconcileScopes,
		r.reconcileClientKeys,
		r.reconcileServiceAccount,
		r.reconcileCABundle,
		r.reconcileCredentials,
	}
	for _, phase := range phases {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	if s.credentials.state == credentialsDeferred {
		return ctrl.Result{RequeueAfter: followUpDelay}, nil
	}
	return ctrl.Result{RequeueAfter: requeueAfter(s.now, s.requeue)}, nil
}

// followUpDelay is how long a deferred pass (the record only, or nothing while the cache is
// behind) waits before the pass that writes the credential Secret and the status: long enough
// for the cache to see the record just written, so the follow-up does not trip over its own
// resourceVersion.
const followUpDelay = 200 * time.Millisecond

// patchStatus writes the status only when it changed, so unchanged clients cause no writes.
func (r *M2MClientReconciler) patchStatus(ctx context.Context, base, c *authv1alpha1.M2MClient) error {
	if equality.Semantic.DeepEqual(base.Status, c.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, c, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patching status: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// reconcileIdentity assigns the client id: derived from the namespace and name, so it is the
// same on every run, survives a lost status, and stays the same when the object is deleted and
// created again or restored from a backup. A client that was given the id derived from its UID
// (before ids were derived from names) keeps it for its life.
func (r *M2MClientReconciler) reconcileIdentity(_ context.Context, s *clientScope) error {
	c := s.client
	s.clientID = c.Status.ClientID
	if legacy := credential.ClientIDFor(string(c.UID)); s.clientID != legacy {
		s.clientID = credential.ClientIDForName(c.Namespace, c.Name)
	}
	return nil
}

// reconcileScopes resolves the client against every ScopePolicy.
func (r *M2MClientReconciler) reconcileScopes(ctx context.Context, s *clientScope) error {
	res, err := ResolveClient(ctx, r.Client, s.client)
	if err != nil {
		return err
	}
	s.resolution, s.resolved = res, true
	return nil
}

// ResolveClient resolves the client against every ScopePolicy, reading what the reconciler
// reads: its status and credential Secret say the same once the controller has caught up (so
// `m2m dev` can tell when a client's grants are settled).
func ResolveClient(ctx context.Context, r client.Reader, c *authv1alpha1.M2MClient) (resolve.Result, error) {
	var policies authv1alpha1.ScopePolicyList
	// Read-only (resolve never writes to a policy, and the result copies what it keeps): a
	// cache need not deep-copy every policy for every client reconciled.
	if err := r.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return resolve.Result{}, fmt.Errorf("listing ScopePolicies: %w", err)
	}
	var ns corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: c.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		return resolve.Result{}, fmt.Errorf("reading namespace %s: %w", c.Namespace, err)
	}
	bindings, err := listBindings(ctx, r)
	if err != nil {
		return resolve.Result{}, err
	}
	return resolve.Client(c, ns.Labels, resolve.Holders(policies.Items, bindings)), nil
}

// reconcileCABundle loads the token server's CA, copied into the credential Secret so pods can
// verify the token server. Until the TLS controller has issued it, the credential Secret waits;
// the record still follows the spec and the grants.
func (r *M2MClientReconciler) reconcileCABundle(ctx context.Context, s *clientScope) error {
	if !r.CABundle {
		return nil
	}
	bundle, err := tlscontroller.CABundle(ctx, r.Client, r.SystemNamespace)
	if apierrors.IsNotFound(err) {
		s.waitingForCA = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the token server CA: %w", err)
	}
	s.caBundle = bundle
	return nil
}

// reconcileClientKeys reads a PrivateKeyJWT client's JWKS (inline, or from the Secret or
// ConfigMap key that jwksFrom names), checks it and re-encodes its public keys for the record.
// A missing or unusable JWKS is not an error to retry: it is reported in CredentialsReady and
// the record carries no key, so every assertion is refused (fail closed) until it is fixed; a
// watch on the referenced object brings the fix.
func (r *M2MClientReconciler) reconcileClientKeys(ctx context.Context, s *clientScope) error {
	c := s.client
	if c.Spec.EffectiveMethod() != authv1alpha1.AuthPrivateKeyJWT || c.Spec.Authentication == nil {
		return nil
	}
	doc := []byte(c.Spec.Authentication.JWKS)
	s.jwksSource = "spec.authentication.jwks"
	if ref, ok := jwksRefOf(c); ok {
		s.jwksSource = fmt.Sprintf("%s %s/%s key %q (spec.authentication.jwksFrom)", ref.kind, c.Namespace, ref.name, ref.key)
		var err error
		doc, err = r.readJWKSFrom(ctx, c, ref)
		var notFound *jwksNotFoundError
		if errors.As(err, &notFound) {
			s.jwksErr = err
			return nil
		}
		if err != nil {
			return err
		}
	}
	keys, err := credential.ParseClientJWKS(doc)
	if err == nil {
		s.jwks, err = credential.PublicJWKS(keys)
	}
	s.jwksErr = err
	return nil
}

// reconcileServiceAccount checks that the ServiceAccount of a ServiceAccount-method client
// exists (from a metadata-only cache of ServiceAccounts, watched so that creating it heals the
// client at once).
func (r *M2MClientReconciler) reconcileServiceAccount(ctx context.Context, s *clientScope) error {
	if s.client.Spec.EffectiveMethod() != authv1alpha1.AuthServiceAccount {
		return nil
	}
	sa := &metav1.PartialObjectMetadata{}
	sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	err := r.Get(ctx, client.ObjectKey{Namespace: s.client.Namespace, Name: s.client.Spec.Authentication.ServiceAccountName}, sa)
	if apierrors.IsNotFound(err) {
		s.serviceAccountMissing = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading ServiceAccount %s/%s: %w", s.client.Namespace, s.client.Spec.Authentication.ServiceAccountName, err)
	}
	return nil
}

// serviceAccountKey is "<namespace>/<serviceAccountName>" of a ServiceAccount-method client.
func serviceAccountKey(c *authv1alpha1.M2MClient) (string, bool) {
	if c.Spec.EffectiveMethod() != authv1alpha1.AuthServiceAccount || c.Spec.Authentication.ServiceAccountName == "" {
		return "", false
	}
	return c.Namespace + "/" + c.Spec.Authentication.ServiceAccountName, true
}

// reconcileDelete removes both Secrets itself (no garbage collector is assumed), then the
// finalizer.
func (r *M2MClientReconciler) reconcileDelete(ctx context.Context, c *authv1alpha1.M2MClient) error {
	if !controllerutil.ContainsFinalizer(c, authv1alpha1.Finalizer) {
		return nil
	}
	rec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.CredentialsNamespace, Name: recordName(c)}}
	if err := r.Delete(ctx, rec); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting credential record: %w", err)
	}
	var cred corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: secretNameOf(c)}, &cred)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading credential Secret: %w", err)
	case metav1.IsControlledBy(&cred, c):
		if err := r.Delete(ctx, &cred); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting credential Secret: %w", err)
		}
	}
	err = patchFinalizers(ctx, r.Client, c, func(o client.Object) bool {
		return controllerutil.RemoveFinalizer(o, authv1alpha1.Finalizer)
	})
	if err = client.IgnoreNotFound(err); err != nil {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// patchFinalizers applies mutate to the object's finalizers and, when it changed them, writes
// metadata.finalizers alone: a JSON merge patch guarded by the resourceVersion. Never a full
// Update: that would re-encode the user's spec through this controller's Go types (1h becomes
// 1h0m0s), take ownership of its fields from the GitOps tool that applied them, and drop any
// field a newer CRD added that these types lack.
func patchFinalizers(ctx context.Context, c client.Client, o client.Object, mutate func(client.Object) bool) error {
	base, ok := o.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("cannot copy %T", o)
	}
	if !mutate(o) {
		return nil
	}
	return c.Patch(ctx, o, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// SetupWithManager wires the watches: the client itself (spec, labels, annotations — not
// status, so status writes don't loop), its credential Secret, its record, the labelled Secret
// or ConfigMap its jwksFrom references, every ScopePolicy and Namespace change that can alter
// its grants.
func (r *M2MClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.M2MClient{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			predicate.LabelChangedPredicate{},
			predicate.AnnotationChangedPredicate{},
			deletionPredicate{},
		))).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.recordToClient),
			builder.WithPredicates(predicate.NewPredicateFuncs(r.isRecord))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.allClients),
			builder.WithPredicates(predicate.NewPredicateFuncs(r.isCABundle))).
		WatchesRawSource(source.Kind(r.JWKSCache, client.Object(&corev1.Secret{}), r.jwksSourceHandler("Secret"))).
		WatchesRawSource(source.Kind(r.JWKSCache, client.Object(&corev1.ConfigMap{}), r.jwksSourceHandler("ConfigMap"))).
		Watches(&authv1alpha1.ScopePolicy{}, r.policyHandler()).
		Watches(&authv1alpha1.AudienceBinding{}, bindingHandler(r.enqueueForAudience)).
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.serviceAccountToClients), builder.OnlyMetadata).
		Watches(&corev1.Namespace{}, r.namespaceHandler(),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("m2mclient").
		Complete(r)
}

// deletionPredicate passes updates that set a deletionTimestamp.
type deletionPredicate struct{ predicate.Funcs }

func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

var (
	errConflict     = errors.New("credential Secret name is taken")
	errWaitingForCA = errors.New("waiting for the token server CA")
)
