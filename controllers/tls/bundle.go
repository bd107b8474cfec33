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
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// CABundle returns the PEM CA bundle clients should trust to verify the token server: ca.crt of
// the CA Secret in systemNamespace, re-encoded so that nothing but certificates is ever copied
// out of that Secret. The error wraps the reader's, so apierrors.IsNotFound tells a CA that has
// not been issued yet.
func CABundle(ctx context.Context, reader client.Reader, systemNamespace string) ([]byte, error) {
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: systemNamespace, Name: CASecretName}
	if err := reader.Get(ctx, key, secret); err != nil {
		return nil, fmt.Errorf("reading the CA Secret %s: %w", key, err)
	}
	bundle, err := certs.ParseCertificates(secret.Data[CACertKey])
	if err != nil {
		return nil, fmt.Errorf("the CA Secret %s has no valid %s: %w", key, CACertKey, err)
	}
	return certs.EncodeCertificates(bundle...), nil
}
