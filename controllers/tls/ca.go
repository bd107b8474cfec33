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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/m2m-dev/m2m-operator/internal/certs"
)

// Event reasons on the CA Secret.
const (
	ReasonCAIssued    = "CAIssued"
	ReasonCARenewed   = "CARenewed"
	ReasonCARecreated = "CARecreated"
)

// caCommonName names every CA this controller issues.
const caCommonName = "m2m-operator token server CA"

// authority is the decoded CA Secret: the CA that signs now, and the bundle clients trust.
type authority struct {
	// signer is the current CA with its key; it is bundle[0].
	signer *certs.KeyPair
	// bundle is the signer followed by older CAs that have not expired: certificates they signed
	// stay trusted while clients pick up the new CA.
	bundle []*x509.Certificate
}

func (a *authority) bundlePEM() []byte { return certs.EncodeCertificates(a.bundle...) }

// nextChange is when the CA Secret changes next by itself: the signer's renewal, or the expiry
// of an older CA that then leaves the bundle.
func (a *authority) nextChange() time.Time {
	next := certs.RenewalTime(a.signer.Cert, renewBefore(a.signer.Cert))
	for _, c := range a.bundle[1:] {
		next = earliest(next, c.NotAfter)
	}
	return next
}

// decodeAuthority parses the CA Secret. Its errors say what is wrong without quoting content.
func decodeAuthority(secret *corev1.Secret, now time.Time) (*authority, error) {
	bundle, err := certs.ParseCertificates(secret.Data[CACertKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CACertKey, err)
	}
	pair, err := certs.ParseKeyPair(certs.EncodeCertificates(bundle[0]), secret.Data[CAKeyKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyKey, err)
	}
	if !pair.Cert.IsCA || pair.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("the first certificate of " + CACertKey + " is not a CA")
	}
	if !now.Before(pair.Cert.NotAfter) {
		return nil, fmt.Errorf("the CA expired at %s", pair.Cert.NotAfter.Format(time.RFC3339))
	}
	return &authority{signer: pair, bundle: bundle}, nil
}

// newAuthority issues a new CA, followed in the bundle by the still valid CAs of previous. The CA
// is name-constrained to the token server's DNS names: every client trusts it (ca.crt of every
// credential Secret), so its key must not be able to vouch for any other host.
func (r *Reconciler) newAuthority(now time.Time, previous []*x509.Certificate) (*authority, error) {
	ca, err := certs.NewConstrainedCA(caCommonName, r.dnsNames(), now, r.Options.CAValidity)
	if err != nil {
		return nil, fmt.Errorf("issuing a CA: %w", err)
	}
	return &authority{signer: ca, bundle: append([]*x509.Certificate{ca.Cert}, unexpired(previous, now)...)}, nil
}

// unexpired returns the certificates of cs that are still valid at now.
func unexpired(cs []*x509.Certificate, now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range cs {
		if now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out
}

// ensureCA returns the current authority, issuing, renewing, repairing or pruning the CA Secret
// as needed.
func (r *Reconciler) ensureCA(ctx context.Context, now time.Time) (*authority, error) {
	secret, err := r.load(ctx, r.caKey())
	if err != nil {
		return nil, err
	}
	if secret == nil {
		return r.issueCA(ctx, now)
	}
	a, err := decodeAuthority(secret, now)
	if err != nil {
		return r.recreateCA(ctx, secret, now, err)
	}
	if why := r.caRenewal(a.signer.Cert, now); why != "" {
		return r.renewCA(ctx, secret, a, now, why)
	}
	pruned := &authority{signer: a.signer, bundle: append(a.bundle[:1:1], unexpired(a.bundle[1:], now)...)}
	if len(pruned.bundle) != len(a.bundle) || !labelled(secret) {
		if err := r.writeCA(ctx, secret, pruned); err != nil {
			return nil, err
		}
	}
	return pruned, nil
}

// caRenewal says why the signing CA must be replaced, or "" when it is fine: renewal is due, or
// its name constraints are not those of the token server's names now (a CA issued before CAs
// were constrained, or for another Service name).
func (r *Reconciler) caRenewal(ca *x509.Certificate, now time.Time) string {
	switch {
	case certs.NeedsRenewal(ca, now, renewBefore(ca)):
		return "renewal is due"
	case !certs.ConstrainedTo(ca, r.dnsNames()):
		return fmt.Sprintf("it is not name-constrained to %v", r.dnsNames())
	}
	return ""
}

func (r *Reconciler) issueCA(ctx context.Context, now time.Time) (*authority, error) {
	a, err := r.newAuthority(now, nil)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespaces.System, Name: CASecretName}, Type: corev1.SecretTypeOpaque}
	if err := r.writeCA(ctx, secret, a); err != nil {
		return nil, err
	}
	log.FromContext(ctx).Info("issued the token server CA", "secret", CASecretName, "serial", serial(a.signer.Cert), "notAfter", a.signer.Cert.NotAfter)
	r.event(secret, corev1.EventTypeNormal, ReasonCAIssued, "Issue", "issued CA %s, valid until %s", serial(a.signer.Cert), a.signer.Cert.NotAfter.Format(time.RFC3339))
	return a, nil
}

// recreateCA replaces a CA Secret that cannot be used. Trust in the old CA cannot be kept (its key
// is unusable), so the serving certificate is reissued right after.
func (r *Reconciler) recreateCA(ctx context.Context, secret *corev1.Secret, now time.Time, problem error) (*authority, error) {
	a, err := r.newAuthority(now, nil)
	if err != nil {
		return nil, err
	}
	if err := r.writeCA(ctx, secret, a); err != nil {
		return nil, err
	}
	log.FromContext(ctx).Error(problem, "the token server CA was unusable and has been replaced: clients must pick up the new ca.crt", "secret", CASecretName, "serial", serial(a.signer.Cert))
	r.event(secret, corev1.EventTypeWarning, ReasonCARecreated, "Recreate", "the CA was unusable (%v) and has been replaced by CA %s; clients must pick up the new %s", problem, serial(a.signer.Cert), CACertKey)
	return a, nil
}

// renewCA puts a new CA in front of the bundle, because of why. The old CA stays in the bundle
// until it expires, and the serving certificate it signed stays in use until its own renewal, so
// clients have that long to pick up the new bundle.
func (r *Reconciler) renewCA(ctx context.Context, secret *corev1.Secret, old *authority, now time.Time, why string) (*authority, error) {
	a, err := r.newAuthority(now, old.bundle)
	if err != nil {
		return nil, err
	}
	if err := r.writeCA(ctx, secret, a); err != nil {
		return nil, err
	}
	log.FromContext(ctx).Info("renewed the token server CA", "secret", CASecretName, "reason", why, "serial", serial(a.signer.Cert), "previous", serial(old.signer.Cert), "notAfter", a.signer.Cert.NotAfter)
	r.event(secret, corev1.EventTypeNormal, ReasonCARenewed, "Renew", "renewed CA %s because %s (previous %s stays trusted until %s)", serial(a.signer.Cert), why, serial(old.signer.Cert), old.signer.Cert.NotAfter.Format(time.RFC3339))
	return a, nil
}

func (r *Reconciler) writeCA(ctx context.Context, secret *corev1.Secret, a *authority) error {
	secret.Data = map[string][]byte{CACertKey: a.bundlePEM(), CAKeyKey: a.signer.KeyPEM}
	return r.write(ctx, secret)
}

// serial formats a certificate's serial number for logs and Events.
func serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }
