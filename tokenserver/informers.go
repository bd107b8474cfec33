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

package tokenserver

import (
	"context"
	"fmt"
	"runtime/debug"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// StartInformers starts what feeds the server: a reflector on credential records (Secrets of
// the record type with the client-id label) that loads them straight into the index, and
// informers on the signing-key Secret (by name) and, with Options.TLSSecret, the serving
// certificate Secret (by name), all in the credentials namespace only. Nothing else is listed,
// watched or cached. It returns at once; readiness follows their sync.
func (s *Server) StartInformers(ctx context.Context, cs kubernetes.Interface) error {
	keys := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(s.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.SigningKeySecret).String()
		}))
	keyReg, err := s.watch(keys.Core().V1().Secrets().Informer(), s.onKeys, s.onKeysDeleted)
	if err != nil {
		return fmt.Errorf("watching signing keys: %w", err)
	}
	if err := s.watchTLS(ctx, cs); err != nil {
		return fmt.Errorf("watching the TLS Secret: %w", err)
	}
	s.bindCluster(kubeAPI{cs: cs})
	records := s.startRecordReflector(ctx, cs)
	keys.Start(ctx.Done())
	go func() {
		s.markWhenSynced(ctx, records.synced.Load, &s.clientsSynced, "credential records")
		// The first list of every record is the largest allocation the server ever makes and
		// is garbage once loaded: hand it back to the OS now rather than over minutes.
		debug.FreeOSMemory()
	}()
	go s.markWhenSynced(ctx, keyReg.HasSynced, &s.keysSynced, "signing keys")
	return nil
}

type syncFlag interface{ Store(bool) }

func (s *Server) markWhenSynced(ctx context.Context, synced cache.InformerSynced, flag syncFlag, what string) {
	if cache.WaitForCacheSync(ctx.Done(), synced) {
		flag.Store(true)
		s.log.Info("informer synced", "watching", what)
	}
}

func (s *Server) watch(inf cache.SharedIndexInformer, upsert func(*corev1.Secret), remove func(*corev1.Secret)) (cache.ResourceEventHandlerRegistration, error) {
	if err := inf.SetTransform(stripSecret); err != nil {
		return nil, err
	}
	return inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { withSecret(obj, upsert) },
		UpdateFunc: func(_, obj any) { withSecret(obj, upsert) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			withSecret(obj, remove)
		},
	})
}

func withSecret(obj any, f func(*corev1.Secret)) {
	if sec, ok := obj.(*corev1.Secret); ok {
		f(sec)
	}
}

// stripSecret drops what the server never reads, so that the informer's cache holds little
// beyond the record itself.
func stripSecret(obj any) (any, error) {
	if sec, ok := obj.(*corev1.Secret); ok {
		sec.ManagedFields = nil
		sec.Annotations = nil
	}
	return obj, nil
}

func sourceKey(sec *corev1.Secret) string { return sec.Namespace + "/" + sec.Name }

// onRecord loads or reloads one credential record. A broken record makes its client unknown;
// the reason is logged (never record content) and counted.
func (s *Server) onRecord(sec *corev1.Secret) {
	key := sourceKey(sec)
	labelID := sec.Labels[authv1alpha1.LabelClientID]
	rec, err := credential.DecodeRecord(sec.Data[credential.RecordKey])
	if err == nil && rec.ClientID != labelID {
		err = fmt.Errorf("the record's client id does not match its %s label", authv1alpha1.LabelClientID)
	}
	if err == nil {
		err = s.index.Put(key, rec)
	} else {
		s.index.PutBroken(key, labelID, err)
	}
	if err != nil {
		s.log.Error(err, "skipping a broken credential record: its client is refused until the record is fixed", "secret", key, "clientID", labelID)
	}
}

func (s *Server) onRecordDeleted(sec *corev1.Secret) { s.index.Remove(sourceKey(sec)) }

// onKeys loads the signing-key Secret. A version that cannot be loaded is logged and counted,
// and the keys loaded before stay in use: they are still the installation's own keys.
func (s *Server) onKeys(sec *corev1.Secret) {
	set, err := signingkey.Decode(sec.Data[signingkey.DataKey])
	if err == nil {
		err = s.SetKeys(set)
	}
	if err != nil {
		s.metrics.keyLoadErrors.Inc()
		s.log.Error(err, "cannot load the signing-key Secret; keeping the keys loaded before", "secret", sourceKey(sec))
		return
	}
	active := ""
	if ks := s.keys.Load(); ks.active != nil {
		active = ks.active.kid
	}
	s.log.Info("signing keys loaded", "active", active, "published", len(set.Keys))
}

// onKeysDeleted keeps signing and publishing with the keys loaded before: they are still the
// installation's own keys, the controller recreates the Secret within seconds, and refusing
// every client meanwhile would turn one deleted object into an outage. The deletion is logged
// and counted so that it is seen; the new Secret replaces the keys when it arrives.
func (s *Server) onKeysDeleted(sec *corev1.Secret) {
	s.metrics.keySecretDeleted.Inc()
	s.log.Error(nil, "the signing-key Secret was deleted; signing with the keys loaded before until it is recreated", "secret", sourceKey(sec))
}

// watchTLS starts an informer on the TLS Secret alone, when one is configured. Readiness
// waits for a certificate to be loaded (see notReady), not for this informer's sync.
func (s *Server) watchTLS(ctx context.Context, cs kubernetes.Interface) error {
	if s.opts.TLSSecret == "" {
		return nil
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace(s.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.TLSSecret).String()
		}))
	if _, err := s.watch(f.Core().V1().Secrets().Informer(), s.onTLS, s.onTLSDeleted); err != nil {
		return err
	}
	f.Start(ctx.Done())
	return nil
}

// onTLS loads the serving certificate. One that cannot be loaded is logged (never its content)
// and the certificate loaded before stays in use.
func (s *Server) onTLS(sec *corev1.Secret) {
	if err := s.tls.Update(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]); err != nil {
		s.log.Error(err, "cannot load the TLS Secret; keeping the certificate loaded before", "secret", sourceKey(sec))
		return
	}
	leaf := s.tls.Leaf()
	s.log.Info("TLS certificate loaded", "secret", sourceKey(sec), "serial", leaf.SerialNumber.String(), "notAfter", leaf.NotAfter)
}

// onTLSDeleted keeps serving the loaded certificate: it stays valid until it expires, and a
// deleted Secret is most likely about to be recreated.
func (s *Server) onTLSDeleted(sec *corev1.Secret) {
	s.log.Error(nil, "the TLS Secret was deleted; serving the certificate loaded before", "secret", sourceKey(sec))
}
