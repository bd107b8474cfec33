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
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// CAConfigMapName is the ConfigMap in the system namespace that publishes the CA bundle (key
// CACertKey, certificates only), like kube-root-ca.crt: what a component that verifies the
// token server but must not read the CA Secret (m2m authz fetching the JWKS) mounts.
const CAConfigMapName = "m2m-tokenserver-ca"

// The ConfigMap is written in the system namespace only: a Role there (generated from this
// marker), not a cluster-wide right to write ConfigMaps. The namespace is config/rbac's
// placeholder "system", which config/system sets (as it does for every file there); a Role
// already in m2m-system would make kustomize stop prefixing the token server's RoleBinding subject.
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=get;create;update

func (r *Reconciler) caConfigMapKey() types.NamespacedName {
	return types.NamespacedName{Namespace: r.Namespaces.System, Name: CAConfigMapName}
}

// publishCA makes the CA ConfigMap hold exactly a's bundle: recreated when deleted, rewritten
// when edited, updated on every change of the bundle (issue, renewal, an old CA leaving it). It
// is built from the parsed certificates, so nothing but certificates ever reaches it.
func (r *Reconciler) publishCA(ctx context.Context, a *authority) error {
	cm, err := r.loadConfigMap(ctx, r.caConfigMapKey())
	if err != nil {
		return err
	}
	bundle := string(a.bundlePEM())
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespaces.System, Name: CAConfigMapName}}
	} else if publishes(cm, bundle) {
		return nil
	}
	cm.Data = map[string]string{CACertKey: bundle}
	cm.BinaryData = nil
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[authv1alpha1.LabelManagedBy] = authv1alpha1.ManagedByValue
	if cm.ResourceVersion == "" {
		err = r.Client.Create(ctx, cm)
	} else {
		err = r.Client.Update(ctx, cm)
	}
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return errRetry
	case err != nil:
		return fmt.Errorf("writing ConfigMap %s: %w", r.caConfigMapKey(), err)
	}
	return nil
}

// publishes reports whether cm is labelled and holds bundle and nothing else.
func publishes(cm *corev1.ConfigMap, bundle string) bool {
	return cm.Labels[authv1alpha1.LabelManagedBy] == authv1alpha1.ManagedByValue &&
		len(cm.Data) == 1 && cm.Data[CACertKey] == bundle && len(cm.BinaryData) == 0
}

// loadConfigMap returns the ConfigMap key, or nil when it does not exist; like load, it reads
// past the label-filtered cache for one whose managed-by label was removed.
func (r *Reconciler) loadConfigMap(ctx context.Context, key types.NamespacedName) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, key, cm)
	if apierrors.IsNotFound(err) {
		err = r.reader().Get(ctx, key, cm)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s: %w", key, err)
	}
	return cm, nil
}
