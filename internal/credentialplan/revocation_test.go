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

package credentialplan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

func TestDecideRevocation(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 400e6, time.UTC)
	next := now.Unix() + 1 // the next whole second
	day := 24 * time.Hour
	grants := []credential.AudienceGrant{{Audience: "a.x", Scopes: []string{"r", "w"}}, {Audience: "b.x", Scopes: []string{"r"}}}
	rec := func(mut func(*credential.Record)) *credential.Record {
		r := &credential.Record{Grants: grants}
		if mut != nil {
			mut(r)
		}
		return r
	}
	type want struct {
		tokens    int64
		audiences []credential.AudienceNotBefore
		handled   string
		revokedAt int64
	}
	tests := []struct {
		name string
		in   RevocationInput
		want want
	}{
		{"nothing", RevocationInput{Previous: rec(nil), Grants: grants}, want{}},
		{"new client", RevocationInput{Grants: grants}, want{}},
		{"annotation new value", RevocationInput{Requested: "1", Previous: rec(nil), Grants: grants},
			want{tokens: next, handled: "1", revokedAt: next}},
		{"annotation already handled: the time is stable", RevocationInput{Requested: "1", Handled: "1", RevokedAt: time.Unix(next-60, 0), Previous: rec(nil), Grants: grants},
			want{tokens: next - 60, handled: "1", revokedAt: next - 60}},
		{"annotation removed: nothing new", RevocationInput{Handled: "1", RevokedAt: time.Unix(next-60, 0), Previous: rec(nil), Grants: grants},
			want{tokens: next - 60, handled: "1", revokedAt: next - 60}},
		{"a long value is kept as its hash", RevocationInput{Requested: strings.Repeat("x", 200), Previous: rec(nil), Grants: grants},
			want{tokens: next, handled: HandledValue(strings.Repeat("x", 200)), revokedAt: next}},
		{"disabled", RevocationInput{Disabled: true, Previous: rec(nil), Grants: grants}, want{tokens: next}},
		{"enabled again", RevocationInput{Previous: rec(func(r *credential.Record) { r.Disabled = true; r.TokensNotBefore = next - 99 }), Grants: grants}, want{tokens: next}},
		{"kept while disabled", RevocationInput{Disabled: true, Previous: rec(func(r *credential.Record) { r.Disabled = true; r.TokensNotBefore = next - 99 }), Grants: grants}, want{tokens: next - 99}},
		{"grant removed", RevocationInput{Previous: rec(nil), Grants: grants[:1]},
			want{audiences: []credential.AudienceNotBefore{{Audience: "b.x", NotBefore: next}}}},
		{"scope removed", RevocationInput{Previous: rec(nil), Grants: []credential.AudienceGrant{{Audience: "a.x", Scopes: []string{"r"}}, grants[1]}},
			want{audiences: []credential.AudienceNotBefore{{Audience: "a.x", NotBefore: next}}}},
		{"scope added: nothing", RevocationInput{Previous: rec(nil), Grants: []credential.AudienceGrant{grants[0], {Audience: "b.x", Scopes: []string{"r", "w"}}}}, want{}},
		{"audience time carried, and the grant back", RevocationInput{Previous: rec(func(r *credential.Record) {
			r.AudienceNotBefore = []credential.AudienceNotBefore{{Audience: "c.x", NotBefore: next - 5}}
		}), Grants: grants}, want{audiences: []credential.AudienceNotBefore{{Audience: "c.x", NotBefore: next - 5}}}},
		{"expired times are dropped", RevocationInput{Previous: rec(func(r *credential.Record) {
			r.TokensNotBefore = now.Add(-day - time.Minute).Unix()
			r.AudienceNotBefore = []credential.AudienceNotBefore{{Audience: "c.x", NotBefore: now.Add(-day - time.Minute).Unix()}}
		}), Handled: "1", RevokedAt: now.Add(-day - time.Minute), Grants: grants}, want{handled: "1", revokedAt: now.Add(-day - time.Minute).Unix()}},
		{"an audience time under the client's is dropped", RevocationInput{Requested: "2", Handled: "1", Previous: rec(func(r *credential.Record) {
			r.AudienceNotBefore = []credential.AudienceNotBefore{{Audience: "c.x", NotBefore: next - 5}}
		}), Grants: grants}, want{tokens: next, handled: "2", revokedAt: next}},
	}
	for _, tt := range tests {
		tt.in.Now, tt.in.Retention = now, day
		d := DecideRevocation(tt.in)
		var revokedAt int64
		if !d.RevokedAt.IsZero() {
			revokedAt = d.RevokedAt.Unix()
		}
		got := want{d.TokensNotBefore, d.AudienceNotBefore, d.Handled, revokedAt}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestDecideRevocationBoundsTheAudiences(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	prev := &credential.Record{}
	for i := range credential.MaxRevokedAudiences + 1 {
		prev.Grants = append(prev.Grants, credential.AudienceGrant{Audience: fmt.Sprintf("a%d.x", i), Scopes: []string{"r"}})
	}
	d := DecideRevocation(RevocationInput{Now: now, Retention: time.Hour, Previous: prev})
	if len(d.AudienceNotBefore) != 0 || d.TokensNotBefore != now.Unix()+1 {
		t.Fatalf("too many audiences were not folded into the client's time: %+v", d)
	}
	if !d.Expires.Equal(time.Unix(now.Unix()+1, 0).Add(time.Hour)) {
		t.Fatalf("expires %v", d.Expires)
	}
}
