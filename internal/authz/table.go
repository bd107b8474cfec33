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
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// Table is the compiled route table: the routes of every audience's holding policy. It is
// immutable once built; a policy change builds a new one and swaps it in whole.
type Table struct {
	audiences map[string]*audienceRoutes
}

// audienceRoutes are one audience's routes, in the policy's order (first match wins).
type audienceRoutes struct {
	audience    string
	routes      []route
	allowOthers bool
	// bindingRequired: the policy's tokenBinding is Required, only DPoP-bound tokens with
	// their proof pass.
	bindingRequired bool

	// label and counters are the audience's metric series, set by metrics.attach before the
	// table is put in force.
	label    string
	counters [numOutcomes]prometheus.Counter
}

type route struct {
	prefix  string
	methods []string // nil: every method
	scopes  []string
}

// Compile builds the table from every ScopePolicy and AudienceBinding. Only the policy that
// holds an audience (resolve.Holders: bound to its namespace, the oldest there) contributes its
// routes, so a policy squatting on another namespace's audience cannot add or loosen a rule.
func Compile(policies []authv1alpha1.ScopePolicy, bindings []authv1alpha1.AudienceBinding) *Table {
	holders := resolve.Holders(policies, resolve.NewBindings(bindings))
	t := &Table{audiences: make(map[string]*audienceRoutes, len(holders))}
	for aud, p := range holders {
		t.audiences[aud] = compilePolicy(aud, p)
	}
	return t
}

func compilePolicy(aud string, p *authv1alpha1.ScopePolicy) *audienceRoutes {
	ar := &audienceRoutes{
		audience:    aud,
		routes:      make([]route, 0, len(p.Spec.Routes)),
		allowOthers: p.Spec.UnmatchedRoutes == authv1alpha1.UnmatchedRoutesAllowAuthenticated,
		// Required binding: the token server issues only bound tokens for the audience, so a
		// Bearer one is a stolen or forged one.
		bindingRequired: p.Spec.TokenBinding == authv1alpha1.TokenBindingRequired,
	}
	for _, r := range p.Spec.Routes {
		cr := route{prefix: r.PathPrefix}
		for _, m := range r.Methods {
			cr.methods = append(cr.methods, string(m))
		}
		for _, s := range r.Scopes {
			cr.scopes = append(cr.scopes, string(s))
		}
		ar.routes = append(ar.routes, cr)
	}
	return ar
}

// sortedAudiences returns the table's audiences in order.
func (t *Table) sortedAudiences() []string {
	return slices.Sorted(maps.Keys(t.audiences))
}

// Audiences returns the number of audiences in the table.
func (t *Table) Audiences() int { return len(t.audiences) }

// lookup returns the audience's routes, or nil when no policy holds it.
func (t *Table) lookup(aud string) *audienceRoutes {
	if t == nil {
		return nil
	}
	return t.audiences[aud]
}

// match returns the scopes the first matching route requires; ok is false when no route
// matches (the caller then applies allowOthers).
func (ar *audienceRoutes) match(method, p string) (scopes []string, ok bool) {
	for i := range ar.routes {
		r := &ar.routes[i]
		if r.methods != nil && !slices.Contains(r.methods, method) {
			continue
		}
		if prefixMatches(r.prefix, p) {
			return r.scopes, true
		}
	}
	return nil, false
}

// prefixMatches matches whole path segments: /invoices matches /invoices and /invoices/42, not
// /invoices-archive; a prefix ending in "/" matches everything below it.
func prefixMatches(prefix, p string) bool {
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || strings.HasSuffix(prefix, "/") || p[len(prefix)] == '/'
}

// canonicalPath returns the request path of a request URI (the query dropped), or ok false when
// it is not canonical: a path with "." or ".." segments, repeated slashes or bad escapes could
// be matched here as one route and served by the API as another, so it is refused rather than
// guessed at. Percent-escapes are decoded before matching, so /a%2Fb is matched as /a/b.
func canonicalPath(uri string) (string, bool) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	if uri == "" || uri[0] != '/' {
		return "", false
	}
	if strings.IndexByte(uri, '%') >= 0 {
		var err error
		if uri, err = url.PathUnescape(uri); err != nil {
			return "", false
		}
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] < 0x20 || uri[i] == 0x7f {
			return "", false
		}
	}
	clean := path.Clean(uri)
	if clean != uri && clean+"/" != uri {
		return "", false
	}
	return uri, true
}
