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
	"hash/maphash"

	"golang.org/x/time/rate"
)

// failureSlots is the size of the failure table: with 10,000 clients about 2-3 ids share a
// slot, and a slot costs about 100 bytes.
const failureSlots = 4096

// failureTable holds the authentication-failure budgets: a fixed number of rate limiters, the
// one of an id chosen by a hash of the id keyed with a random per-process seed. Known and
// unknown ids are treated alike, so an answer (401, or 429 once the slot's budget is spent)
// never tells whether an id exists, and no id, however many are invented, costs memory. Ids
// that share a slot share its budget; that only matters to callers that fail, since the
// budget is consulted only after a failed check (a caller with the right credentials is never
// slowed down), and the seed keeps anyone from choosing ids that share a slot with a victim.
type failureTable struct {
	seed  maphash.Seed
	slots [failureSlots]*rate.Limiter
}

func newFailureTable(r rate.Limit, burst int) *failureTable {
	ft := &failureTable{seed: maphash.MakeSeed()}
	for i := range ft.slots {
		ft.slots[i] = rate.NewLimiter(r, burst)
	}
	return ft
}

// slot is the index of the presented id's limiter.
func (ft *failureTable) slot(presented string) int {
	return int(maphash.String(ft.seed, presented) % failureSlots)
}

// limiter returns the failure budget of the presented id.
func (ft *failureTable) limiter(presented string) *rate.Limiter {
	return ft.slots[ft.slot(presented)]
}
