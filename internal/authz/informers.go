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

package authz

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
)

// Policies keeps a Decider's table in step with the cluster's ScopePolicies and
// AudienceBindings: every change to either recompiles the table from the informers' caches
// (memory, no API call) and swaps it in. Changes arriving while a compile runs are coalesced
// into one more compile.
type Policies struct {
	cache   cache.Cache
	decider *Decider
	log     logr.Logger
	changed chan struct{}
	synced  chan struct{}
}

// NewPolicies builds the informers (not started: see Run).
func NewPolicies(cfg *rest.Config, d *Decider, log logr.Logger) (*Policies, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "m2m-authz"
	c, err := cache.New(cfg, cache.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("creating the policy cache: %w", err)
	}
	return &Policies{cache: c, decider: d, log: log, changed: make(chan struct{}, 1), synced: make(chan struct{})}, nil
}

// Synced is closed once the first table compiled from synced caches is in force.
func (p *Policies) Synced() <-chan struct{} { return p.synced }

// Run watches until ctx ends.
func (p *Policies) Run(ctx context.Context) error {
	notify := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	for _, obj := range []client.Object{&authv1alpha1.ScopePolicy{}, &authv1alpha1.AudienceBinding{}} {
		inf, err := p.cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(notify); err != nil {
			return fmt.Errorf("event handler for %T: %w", obj, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- p.cache.Start(ctx) }()
	if !p.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("policy caches did not sync: %w", context.Cause(ctx))
	}
	if err := p.compile(ctx); err != nil {
		return err
	}
	close(p.synced)
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case <-p.changed:
			if err := p.compile(ctx); err != nil {
				p.log.Error(err, "compiling the route table; the previous one stays in force")
			}
		}
	}
}

func (p *Policies) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *Policies) compile(ctx context.Context) error {
	var policies authv1alpha1.ScopePolicyList
	if err := p.cache.List(ctx, &policies); err != nil {
		return fmt.Errorf("listing ScopePolicies from the cache: %w", err)
	}
	var bindings authv1alpha1.AudienceBindingList
	if err := p.cache.List(ctx, &bindings); err != nil {
		return fmt.Errorf("listing AudienceBindings from the cache: %w", err)
	}
	t := Compile(policies.Items, bindings.Items)
	p.decider.SetTable(t)
	p.log.V(1).Info("route table compiled", "audiences", t.Audiences())
	return nil
}
