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

package verify

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/m2m-dev/m2m-operator/verify/verifytest"
)

func TestOptionValidation(t *testing.T) {
	iss := verifytest.NewIssuer(t)
	bad := map[string]Option{
		"HS256":             WithAllowedAlgorithms("HS256"),
		"none":              WithAllowedAlgorithms("none"),
		"empty alg list":    WithAllowedAlgorithms(),
		"negative leeway":   WithLeeway(-time.Second),
		"huge leeway":       WithLeeway(time.Hour),
		"nil clock":         WithClock(nil),
		"nil client":        WithHTTPClient(nil),
		"tiny max size":     WithMaxTokenSize(10),
		"negative cache":    WithCacheSize(-1),
		"negative cooldown": WithRefreshCooldown(-time.Second),
		"inverted interval": WithRefreshInterval(time.Hour, time.Minute),
	}
	for name, opt := range bad {
		if _, err := NewWithKeySource(iss.URL, iss.Audience, iss, opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewWithKeySource(iss.URL, "", iss); err == nil {
		t.Error("empty audience accepted without WithAnyAudience")
	}
	if _, err := NewWithKeySource("", "a", iss); err == nil {
		t.Error("empty issuer accepted")
	}
	if _, err := NewWithKeySource(iss.URL, "a", nil); err == nil {
		t.Error("nil key source accepted")
	}
}

func TestWithAnyAudience(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v, err := NewWithKeySource(iss.URL, "", iss, WithAnyAudience(), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	c := mustVerify(t, v, iss.Token(verifytest.Claim("aud", "some-other-api")))
	if len(c.Audience) != 1 || c.Audience[0] != "some-other-api" {
		t.Fatalf("Audience = %v", c.Audience)
	}
}

// nilSource is a broken KeySource that claims to have a nil key.
type nilSource struct{}

func (nilSource) Key(string) (*jose.JSONWebKey, bool) { return nil, true }

func TestKeySourceReturningNilKey(t *testing.T) {
	clock := newFakeClock()
	iss := newIssuer(t, clock)
	v, err := NewWithKeySource(iss.URL, iss.Audience, nilSource{}, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), iss.Token())
	wantKind(t, err, ErrUnknownKey)
}
