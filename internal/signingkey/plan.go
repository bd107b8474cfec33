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
	"errors"
	"fmt"
	"time"
)

// Policy is the rotation schedule.
type Policy struct {
	// Algorithm of new keys. A change takes effect through an early, ordinary rotation.
	Algorithm string
	// RotationInterval is how long a key stays active.
	RotationInterval time.Duration
	// PublishAhead is how long a next key is published before it signs. It must be longer than
	// the JWKS cache max-age so that every verifier has the key before it sees a token from it.
	PublishAhead time.Duration
	// RetainAfterRetire is how long a retired key stays published: the maximum token TTL plus a
	// leeway for clock skew and for token servers that see the rotation late.
	RetainAfterRetire time.Duration
}

// Validate checks the policy against the JWKS cache max-age of the token servers.
func (p Policy) Validate(jwksMaxAge time.Duration) error {
	if !SupportedAlgorithm(p.Algorithm) {
		return fmt.Errorf("signing-key algorithm %q is not supported (ES256, RS256, EdDSA)", p.Algorithm)
	}
	if p.PublishAhead <= jwksMaxAge {
		return fmt.Errorf("signing-key publish-ahead %s must be longer than the JWKS max-age %s", p.PublishAhead, jwksMaxAge)
	}
	if p.RotationInterval <= p.PublishAhead {
		return fmt.Errorf("signing-key rotation interval %s must be longer than the publish-ahead %s", p.RotationInterval, p.PublishAhead)
	}
	if p.RetainAfterRetire <= 0 {
		return errors.New("signing-key retention after retirement must be positive")
	}
	return nil
}

// TransitionKind names one step of a key's life.
type TransitionKind string

const (
	// Bootstrapped means a first key was created active at once, because there was none to sign.
	Bootstrapped TransitionKind = "Bootstrapped"
	// Published means a next key was created and published ahead of its activation.
	Published TransitionKind = "Published"
	// Activated means a next key became the active key.
	Activated TransitionKind = "Activated"
	// Retired means the previous active key stopped signing; it stays published.
	Retired TransitionKind = "Retired"
	// Removed means a retired key left the key set.
	Removed TransitionKind = "Removed"
)

// Transition records one change Advance made.
type Transition struct {
	Kind      TransitionKind
	KID       string
	Algorithm string
}

// Result is the outcome of Advance.
type Result struct {
	// Set is the new key set (a copy; the input is never modified).
	Set *Set
	// Changed reports whether Set differs from the input.
	Changed bool
	// Transitions lists what changed, in order.
	Transitions []Transition
	// NextTransition is when the set must be advanced again.
	NextTransition time.Time
}

// Advance moves the key set to where it must be at now: it removes expired retired keys,
// promotes a due next key (retiring the previous active one), bootstraps an active key when there
// is none, and publishes a next key when a rotation is due. It never modifies cur (which may be
// nil: no Secret yet) and is deterministic apart from gen.
func Advance(cur *Set, now time.Time, p Policy, gen Generator) (Result, error) {
	if cur != nil {
		if err := cur.Validate(); err != nil {
			return Result{}, err
		}
	}
	now = truncate(now)
	set := cur.Clone()
	if set == nil {
		set = &Set{Version: FormatVersion}
	}
	a := advancer{set: set, now: now, policy: p, gen: gen}
	for _, step := range []func() error{a.removeExpired, a.promoteDue, a.bootstrap, a.publishNext} {
		if err := step(); err != nil {
			return Result{}, err
		}
	}
	return Result{
		Set:            set,
		Changed:        cur == nil || len(a.transitions) > 0,
		Transitions:    a.transitions,
		NextTransition: nextTransition(set, p),
	}, nil
}

type advancer struct {
	set         *Set
	now         time.Time
	policy      Policy
	gen         Generator
	transitions []Transition
}

func (a *advancer) record(kind TransitionKind, k *Key) {
	a.transitions = append(a.transitions, Transition{Kind: kind, KID: k.KID, Algorithm: k.Algorithm})
}

// removeExpired drops retired keys whose removal time has come.
func (a *advancer) removeExpired() error {
	kept := a.set.Keys[:0]
	for i := range a.set.Keys {
		k := a.set.Keys[i]
		if k.State == StateRetired && !k.RemoveAt.After(a.now) {
			a.record(Removed, &k)
			continue
		}
		kept = append(kept, k)
	}
	a.set.Keys = kept
	return nil
}

// promoteDue makes a due next key active, or any next key when there is no active key at all.
func (a *advancer) promoteDue() error {
	next := a.set.Find(StateNext)
	if next == nil {
		return nil
	}
	active := a.set.Find(StateActive)
	if active != nil && next.ActivateAt.After(a.now) {
		return nil
	}
	if active != nil {
		retireAt := a.now
		removeAt := a.now.Add(a.policy.RetainAfterRetire)
		active.State, active.RetireAt, active.RemoveAt = StateRetired, &retireAt, &removeAt
		a.record(Retired, active)
	}
	next.State = StateActive
	if next.ActivateAt.After(a.now) {
		next.ActivateAt = a.now
	}
	a.record(Activated, next)
	return nil
}

// bootstrap creates an active key at once when there is none: nothing can sign otherwise.
func (a *advancer) bootstrap() error {
	if a.set.Find(StateActive) != nil {
		return nil
	}
	k, err := a.newKey(StateActive, a.now)
	if err != nil {
		return err
	}
	a.set.Keys = append(a.set.Keys, k)
	a.record(Bootstrapped, &k)
	return nil
}

// publishNext creates the next key once the active key's rotation is within publish-ahead, or at
// once when the configured algorithm changed.
func (a *advancer) publishNext() error {
	if a.set.Find(StateNext) != nil {
		return nil
	}
	active := a.set.Find(StateActive)
	due := active.ActivateAt.Add(a.policy.RotationInterval)
	algChanged := active.Algorithm != a.policy.Algorithm
	if !algChanged && a.now.Before(due.Add(-a.policy.PublishAhead)) {
		return nil
	}
	activateAt := a.now.Add(a.policy.PublishAhead)
	if !algChanged && due.After(activateAt) {
		activateAt = due
	}
	k, err := a.newKey(StateNext, activateAt)
	if err != nil {
		return err
	}
	a.set.Keys = append(a.set.Keys, k)
	a.record(Published, &k)
	return nil
}

func (a *advancer) newKey(state State, activateAt time.Time) (Key, error) {
	k, err := a.gen(a.policy.Algorithm)
	if err != nil {
		return Key{}, fmt.Errorf("generating a %s signing key: %w", a.policy.Algorithm, err)
	}
	k.State, k.CreatedAt, k.ActivateAt = state, a.now, truncate(activateAt)
	k.RetireAt, k.RemoveAt = nil, nil
	return k, nil
}

// nextTransition is the earliest time at which Advance would change the set.
func nextTransition(s *Set, p Policy) time.Time {
	var t time.Time
	earliest := func(c time.Time) {
		if t.IsZero() || c.Before(t) {
			t = c
		}
	}
	hasNext := false
	for i := range s.Keys {
		k := &s.Keys[i]
		switch k.State {
		case StateNext:
			hasNext = true
			earliest(k.ActivateAt)
		case StateRetired:
			earliest(*k.RemoveAt)
		}
	}
	if active := s.Find(StateActive); active != nil && !hasNext {
		earliest(active.ActivateAt.Add(p.RotationInterval - p.PublishAhead))
	}
	return t
}
