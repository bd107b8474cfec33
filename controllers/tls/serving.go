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
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// Event reasons on the serving Secret.
const (
	ReasonCertificateIssued    = "CertificateIssued"
	ReasonCertificateRenewed   = "CertificateRenewed"
	ReasonCertificateReissued  = "CertificateReissued"
	ReasonCertificateWrongType = "CertificateSecretWrongType"
)

// finding is why the serving certificate must be replaced; warn marks damage, as opposed to
// the normal course of things (renewal, a new CA, new names).
type finding struct {
	why  string
	warn bool
}

// dnsNames are the names the serving certificate must hold.
func (r *Reconciler) dnsNames() []string {
	return DNSNames(r.Options.ServiceName, r.Namespaces.System, r.Options.ClusterDomain)
}

// ensureServing issues, renews or repairs the serving Secret and keeps its ca.crt equal to the
// CA bundle. It returns when the serving certificate is due for renewal.
func (r *Reconciler) ensureServing(ctx context.Context, a *authority, now time.Time) (time.Time, error) {
	secret, err := r.load(ctx, r.servingKey())
	if err != nil {
		return time.Time{}, err
	}
	if secret == nil {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespaces.Credentials, Name: ServingSecretName}, Type: corev1.SecretTypeTLS}
		return r.issueServing(ctx, secret, a, now, finding{})
	}
	if secret.Type != corev1.SecretTypeTLS {
		// The type of a Secret is immutable, and deleting a Secret someone else put there is not
		// this controller's call: say so and wait for the Secret to change.
		r.event(secret, corev1.EventTypeWarning, ReasonCertificateWrongType, "Validate", "the Secret has type %q, not %q: delete it so that it can be recreated", secret.Type, corev1.SecretTypeTLS)
		return time.Time{}, reconcile.TerminalError(fmt.Errorf("serving Secret %s has type %q, want %q", r.servingKey(), secret.Type, corev1.SecretTypeTLS))
	}
	leaf, f := r.checkServing(secret, a, now)
	if f.why != "" {
		return r.issueServing(ctx, secret, a, now, f)
	}
	bundle := a.bundlePEM()
	if !bytes.Equal(secret.Data[CACertKey], bundle) || !labelled(secret) {
		secret.Data[CACertKey] = bundle
		if err := r.write(ctx, secret); err != nil {
			return time.Time{}, err
		}
		log.FromContext(ctx).Info("updated the CA bundle of the serving Secret", "secret", ServingSecretName)
	}
	return certs.RenewalTime(leaf, renewBefore(leaf)), nil
}

// checkServing returns the serving certificate, or why it must be replaced.
func (r *Reconciler) checkServing(secret *corev1.Secret, a *authority, now time.Time) (*x509.Certificate, finding) {
	pair, err := certs.ParseKeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, finding{why: fmt.Sprintf("the key pair is unusable: %v", err), warn: true}
	}
	leaf, want := pair.Cert, r.dnsNames()
	if !sameNames(leaf.DNSNames, want) {
		return nil, finding{why: fmt.Sprintf("the DNS names changed to %v", want)}
	}
	// A certificate issued a moment "in the future" (clock skew between controller replicas) is
	// judged at its own start, so that it is not replaced over and over.
	at := now
	if leaf.NotBefore.After(at) {
		at = leaf.NotBefore
	}
	if err := certs.VerifyServing(leaf, a.bundle, want, at); err != nil {
		return nil, finding{why: fmt.Sprintf("it does not verify against the CA bundle: %v", err)}
	}
	if certs.NeedsRenewal(leaf, now, renewBefore(leaf)) {
		return nil, finding{why: "renewal is due"}
	}
	return leaf, finding{}
}

func sameNames(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// issueServing signs a new serving certificate with the current CA and writes it.
func (r *Reconciler) issueServing(ctx context.Context, secret *corev1.Secret, a *authority, now time.Time, f finding) (time.Time, error) {
	pair, err := certs.NewServing(a.signer, r.dnsNames(), now, r.Options.ServingValidity)
	if err != nil {
		return time.Time{}, fmt.Errorf("issuing the serving certificate: %w", err)
	}
	secret.Data = map[string][]byte{
		corev1.TLSCertKey:       pair.CertPEM,
		corev1.TLSPrivateKeyKey: pair.KeyPEM,
		CACertKey:               a.bundlePEM(),
	}
	if err := r.write(ctx, secret); err != nil {
		return time.Time{}, err
	}
	r.reportServing(ctx, secret, pair.Cert, f)
	return certs.RenewalTime(pair.Cert, renewBefore(pair.Cert)), nil
}

func (r *Reconciler) reportServing(ctx context.Context, secret *corev1.Secret, leaf *x509.Certificate, f finding) {
	logger := log.FromContext(ctx).WithValues("secret", ServingSecretName, "serial", serial(leaf), "notAfter", leaf.NotAfter, "dnsNames", leaf.DNSNames)
	until := leaf.NotAfter.Format(time.RFC3339)
	switch {
	case f.why == "":
		logger.Info("issued the token server's serving certificate")
		r.event(secret, corev1.EventTypeNormal, ReasonCertificateIssued, "Issue", "issued serving certificate %s, valid until %s", serial(leaf), until)
	case f.warn:
		logger.Info("reissued the token server's serving certificate", "reason", f.why)
		r.event(secret, corev1.EventTypeWarning, ReasonCertificateReissued, "Reissue", "reissued serving certificate %s, valid until %s, because %s", serial(leaf), until, f.why)
	default:
		logger.Info("renewed the token server's serving certificate", "reason", f.why)
		r.event(secret, corev1.EventTypeNormal, ReasonCertificateRenewed, "Renew", "renewed serving certificate %s, valid until %s, because %s", serial(leaf), until, f.why)
	}
}
