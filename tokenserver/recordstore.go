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
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
)

// recordStore is where the reflector on credential records delivers: straight into the index.
// An informer would also keep every record Secret in its own cache, which the token server
// never reads: at 10,000 clients that copy (and the garbage it keeps alive) is most of the
// heap. The store remembers only which Secrets it has seen, so a relist can drop the rest.
type recordStore struct {
	s      *Server
	mu     sync.Mutex
	seen   map[string]struct{}
	synced atomic.Bool
}

var _ cache.ReflectorStore = (*recordStore)(nil)

func newRecordStore(s *Server) *recordStore {
	return &recordStore{s: s, seen: map[string]struct{}{}}
}

// Add loads a record.
func (rs *recordStore) Add(obj any) error {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.seen[sourceKey(sec)] = struct{}{}
	rs.s.onRecord(sec)
	return nil
}

// Update reloads a record.
func (rs *recordStore) Update(obj any) error { return rs.Add(obj) }

// Delete forgets a record.
func (rs *recordStore) Delete(obj any) error {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.seen, sourceKey(sec))
	rs.s.onRecordDeleted(sec)
	return nil
}

// Replace loads a full list (the first list, and every relist after a broken watch) and drops
// the records that are no longer in it.
func (rs *recordStore) Replace(list []any, _ string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	next := make(map[string]struct{}, len(list))
	for _, obj := range list {
		if sec, ok := obj.(*corev1.Secret); ok {
			key := sourceKey(sec)
			next[key] = struct{}{}
			rs.s.onRecord(sec)
		}
	}
	for key := range rs.seen {
		if _, ok := next[key]; !ok {
			rs.s.index.Remove(key)
		}
	}
	rs.seen = next
	rs.synced.Store(true)
	return nil
}

// Resync has nothing to do: there is no resync period.
func (rs *recordStore) Resync() error { return nil }

// startRecordReflector lists and watches the record Secrets of the credentials namespace into the
// index until ctx ends; the reflector relists with backoff after any watch failure.
func (s *Server) startRecordReflector(ctx context.Context, cs kubernetes.Interface) *recordStore {
	tweak := func(o *metav1.ListOptions) {
		o.LabelSelector = authv1alpha1.LabelClientID
		o.FieldSelector = fields.OneTermEqualSelector("type", authv1alpha1.SecretTypeCredentialRecord).String()
	}
	secrets := cs.CoreV1().Secrets(s.opts.Namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return secrets.Watch(ctx, o)
		},
	}
	store := newRecordStore(s)
	r := cache.NewReflectorWithOptions(lw, &corev1.Secret{}, store, cache.ReflectorOptions{Name: "credential records"})
	go r.RunWithContext(ctx)
	return store
}
