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

package signingkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{Algorithm: ES256, RotationInterval: 720 * time.Hour, PublishAhead: time.Hour, RetainAfterRetire: 24*time.Hour + 5*time.Minute}
}

func mustAdvance(t *testing.T, cur *Set, now time.Time, p Policy) Result {
	t.Helper()
	r, err := Advance(cur, now, p, Generate)
	if err != nil {
		t.Fatalf("Advance: %v", err)
	}
	if err := r.Set.Validate(); err != nil {
		t.Fatalf("Advance produced an invalid set: %v", err)
	}
	return r
}

func kinds(r Result) string {
	var b []string
	for _, tr := range r.Transitions {
		b = append(b, string(tr.Kind))
	}
	return strings.Join(b, ",")
}

func TestAdvanceBootstrapsAnActiveKey(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0.Add(700*time.Millisecond), p)
	if !r.Changed || kinds(r) != "Bootstrapped" {
		t.Fatalf("got changed=%v transitions=%s, want a bootstrap", r.Changed, kinds(r))
	}
	active := r.Set.Find(StateActive)
	if active == nil || len(r.Set.Keys) != 1 {
		t.Fatalf("want exactly one active key, got %+v", r.Set.Keys)
	}
	if !active.ActivateAt.Equal(t0) || !active.CreatedAt.Equal(t0) {
		t.Errorf("times not truncated to the second: %v %v", active.CreatedAt, active.ActivateAt)
	}
	if want := t0.Add(719 * time.Hour); !r.NextTransition.Equal(want) {
		t.Errorf("NextTransition = %v, want %v", r.NextTransition, want)
	}
}

func TestAdvanceIsIdleBeforeTheSchedule(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	r2 := mustAdvance(t, r.Set, t0.Add(719*time.Hour-time.Second), p)
	if r2.Changed || len(r2.Transitions) != 0 {
		t.Fatalf("changed before the schedule: %s", kinds(r2))
	}
	if !r2.NextTransition.Equal(r.NextTransition) {
		t.Errorf("NextTransition moved: %v vs %v", r2.NextTransition, r.NextTransition)
	}
}

func TestAdvanceFullRotation(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	first := r.Set.Find(StateActive).KID

	// Publish ahead: the next key appears, activating exactly at the rotation time.
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	if kinds(r) != "Published" {
		t.Fatalf("transitions %s, want Published", kinds(r))
	}
	next := r.Set.Find(StateNext)
	if next == nil || !next.ActivateAt.Equal(t0.Add(720*time.Hour)) {
		t.Fatalf("next key %+v, want activation at %v", next, t0.Add(720*time.Hour))
	}
	if next.ActivateAt.Sub(next.CreatedAt) < p.PublishAhead {
		t.Errorf("next key published only %v ahead", next.ActivateAt.Sub(next.CreatedAt))
	}
	if r.Set.Find(StateActive).KID != first {
		t.Errorf("the active key changed before the next key's activation")
	}
	if !r.NextTransition.Equal(next.ActivateAt) {
		t.Errorf("NextTransition %v, want the activation %v", r.NextTransition, next.ActivateAt)
	}

	// Activation: next becomes active, the old key is retired and kept for the retention.
	secondKID := next.KID
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	if kinds(r) != "Retired,Activated" {
		t.Fatalf("transitions %s, want Retired,Activated", kinds(r))
	}
	if r.Set.Find(StateActive).KID != secondKID {
		t.Fatalf("the next key did not become active")
	}
	retired := r.Set.Find(StateRetired)
	if retired == nil || retired.KID != first {
		t.Fatalf("the old key was not retired: %+v", r.Set.Keys)
	}
	wantRemove := t0.Add(720*time.Hour + p.RetainAfterRetire)
	if !retired.RemoveAt.Equal(wantRemove) || !r.NextTransition.Equal(wantRemove) {
		t.Errorf("RemoveAt %v NextTransition %v, want %v", retired.RemoveAt, r.NextTransition, wantRemove)
	}

	// Removal: once every token it signed has expired.
	r2 := mustAdvance(t, r.Set, wantRemove.Add(-time.Second), p)
	if r2.Changed {
		t.Fatalf("retired key removed early: %s", kinds(r2))
	}
	r = mustAdvance(t, r.Set, wantRemove, p)
	if kinds(r) != "Removed" || len(r.Set.Keys) != 1 {
		t.Fatalf("transitions %s keys %d, want Removed and 1 key", kinds(r), len(r.Set.Keys))
	}
}

// TestAdvanceInvariantsOverManyRotations follows NextTransition through many rotations and
// checks every promise of the state machine at each step.
func TestAdvanceInvariantsOverManyRotations(t *testing.T) {
	p := testPolicy()
	p.RotationInterval = 3 * time.Hour // shorter than the retention: several retired keys at once
	r := mustAdvance(t, nil, t0, p)
	published := map[string]time.Time{}
	signedUntil := map[string]time.Time{}
	for step := 0; step < 60; step++ {
		now := r.NextTransition
		if !now.After(t0) {
			t.Fatalf("step %d: NextTransition %v does not move forward", step, now)
		}
		prevActive := r.Set.Find(StateActive).KID
		r = mustAdvance(t, r.Set, now, p)
		if len(r.Transitions) == 0 {
			t.Fatalf("step %d: nothing happened at NextTransition", step)
		}
		for _, k := range r.Set.Keys {
			if _, ok := published[k.KID]; !ok {
				published[k.KID] = now
			}
		}
		active := r.Set.Find(StateActive)
		if active.KID != prevActive {
			if ahead := now.Sub(published[active.KID]); ahead < p.PublishAhead {
				t.Fatalf("step %d: key %s signs after only %v published", step, active.KID, ahead)
			}
			signedUntil[prevActive] = now
		}
		for kid, until := range signedUntil {
			if r.Set.find(kid) == nil && now.Sub(until) < p.RetainAfterRetire {
				t.Fatalf("step %d: key %s removed %v after it last signed", step, kid, now.Sub(until))
			}
		}
	}
}

func (s *Set) find(kid string) *Key {
	for i := range s.Keys {
		if s.Keys[i].KID == kid {
			return &s.Keys[i]
		}
	}
	return nil
}

func TestAdvanceAfterALongOutage(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	r = mustAdvance(t, r.Set, r.NextTransition, p) // next published
	later := t0.Add(5000 * time.Hour)
	r = mustAdvance(t, r.Set, later, p)
	if kinds(r) != "Retired,Activated,Published" {
		t.Fatalf("transitions %s", kinds(r))
	}
	next := r.Set.Find(StateNext)
	if !next.ActivateAt.Equal(later.Add(p.PublishAhead)) {
		t.Errorf("an overdue rotation must still publish ahead: activation %v", next.ActivateAt)
	}
}

func TestAdvanceAlgorithmChangeRotatesEarly(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	p.Algorithm = EdDSA
	now := t0.Add(time.Hour)
	r = mustAdvance(t, r.Set, now, p)
	next := r.Set.Find(StateNext)
	if next == nil || next.Algorithm != EdDSA || !next.ActivateAt.Equal(now.Add(p.PublishAhead)) {
		t.Fatalf("want an EdDSA next key activating after publish-ahead, got %+v", next)
	}
	r = mustAdvance(t, r.Set, next.ActivateAt, p)
	if a := r.Set.Find(StateActive); a.Algorithm != EdDSA || r.Set.Find(StateNext) != nil {
		t.Fatalf("after activation: active %s, next %v", a.Algorithm, r.Set.Find(StateNext))
	}
}

func TestAdvancePromotesANextKeyWhenNoneIsActive(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	s := r.Set.Clone()
	s.Keys = []Key{*s.Find(StateNext)}
	r = mustAdvance(t, s, r.NextTransition.Add(time.Minute), p)
	if kinds(r) != "Activated" {
		t.Fatalf("transitions %s, want Activated", kinds(r))
	}
}

func TestAdvanceDoesNotModifyItsInput(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	before, _ := r.Set.Encode()
	_ = mustAdvance(t, r.Set, t0.Add(10000*time.Hour), p)
	after, _ := r.Set.Encode()
	if string(before) != string(after) {
		t.Fatal("Advance modified its input")
	}
}

func TestAdvanceRejectsAnInvalidSet(t *testing.T) {
	if _, err := Advance(&Set{Version: 99}, t0, testPolicy(), Generate); err == nil {
		t.Fatal("want an error for an invalid input set")
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := testPolicy()
	if err := ok.Validate(5 * time.Minute); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	for name, mut := range map[string]func(*Policy){
		"algorithm":           func(p *Policy) { p.Algorithm = "HS256" },
		"publish-ahead short": func(p *Policy) { p.PublishAhead = 5 * time.Minute },
		"interval short":      func(p *Policy) { p.RotationInterval = time.Hour },
		"no retention":        func(p *Policy) { p.RetainAfterRetire = 0 },
	} {
		p := testPolicy()
		mut(&p)
		if err := p.Validate(5 * time.Minute); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	p := testPolicy()
	r := mustAdvance(t, nil, t0, p)
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	r = mustAdvance(t, r.Set, r.NextTransition, p)
	b, err := r.Set.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	b2, _ := got.Encode()
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
}

func TestDecodeRejectsBrokenDocuments(t *testing.T) {
	k, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	k.State, k.CreatedAt, k.ActivateAt = StateActive, t0, t0
	good := &Set{Keys: []Key{k}}
	enc := func(mut func(*Set)) []byte {
		s := good.Clone()
		mut(s)
		b, _ := s.Encode()
		return b
	}
	if _, err := Decode(enc(func(*Set) {})); err != nil {
		t.Fatalf("good document refused: %v", err)
	}
	cases := map[string][]byte{
		"empty":         nil,
		"not json":      []byte("{"),
		"unknown field": []byte(`{"version":1,"keys":[],"extra":1}`),
		"trailing":      append(enc(func(*Set) {}), []byte("{}")...),
		"version":       []byte(`{"version":3,"keys":[]}`), // the next (2) is read; two ahead is not
		"two active": enc(func(s *Set) {
			k2 := s.Keys[0]
			k2.KID = "other"
			s.Keys = append(s.Keys, k2)
		}),
		"duplicate kid": enc(func(s *Set) {
			k2 := s.Keys[0]
			k2.State = StateNext
			s.Keys = append(s.Keys, k2)
		}),
		"bad state":       enc(func(s *Set) { s.Keys[0].State = "pending" }),
		"bad alg":         enc(func(s *Set) { s.Keys[0].Algorithm = "none" }),
		"retired no time": enc(func(s *Set) { s.Keys[0].State = StateRetired }),
		"no private key":  enc(func(s *Set) { s.Keys[0].PrivateKeyPEM = "" }),
		"no kid":          enc(func(s *Set) { s.Keys[0].KID = "" }),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestGenerateAndParseEachAlgorithm(t *testing.T) {
	for _, alg := range []string{ES256, RS256, EdDSA} {
		k, err := Generate(alg)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		signer, err := k.PrivateKey()
		if err != nil {
			t.Fatalf("%s: PrivateKey: %v", alg, err)
		}
		switch signer.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		default:
			t.Fatalf("%s: unexpected key type %T", alg, signer)
		}
		if !strings.Contains(k.PrivateKeyPEM, "BEGIN PRIVATE KEY") {
			t.Errorf("%s: not a PKCS#8 PEM block", alg)
		}
	}
}

func TestPrivateKeyRejectsMismatches(t *testing.T) {
	k, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	wrongAlg := k
	wrongAlg.Algorithm = EdDSA
	if _, err := wrongAlg.PrivateKey(); err == nil {
		t.Error("an ES256 key labelled EdDSA was accepted")
	}
	wrongKID := k
	wrongKID.KID = "not-the-thumbprint"
	if _, err := wrongKID.PrivateKey(); err == nil {
		t.Error("a kid that is not the thumbprint was accepted")
	}
	garbage := k
	garbage.PrivateKeyPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	if _, err := garbage.PrivateKey(); err == nil {
		t.Error("a garbage key was accepted")
	}
}
