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
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

const (
	// maxAuditSpare bounds the batch buffer kept for reuse: a burst that grew it past this is
	// not kept alive afterwards.
	maxAuditSpare = 1 << 20
	// auditRefusalRate and auditRefusalBurst bound the refusal lines per replica (a second, and
	// at once). Refusals cost the caller nothing, so a flood of them must not grow the batches
	// every issuance waits for, nor hold in-flight slots behind a slow sink: past the budget a
	// refusal is answered without a line, counted in audit_refusals_dropped_total and in the
	// next refusal line's droppedBefore.
	auditRefusalRate  = 100
	auditRefusalBurst = 200
	// Bounds of the request values a refusal line repeats (attacker input: JSON-escaped and cut,
	// with "…" marking the cut).
	maxAuditGrantType = 64
	maxAuditAudience  = 256
	maxAuditScope     = 512
)

// auditLog writes one JSON line per issued token and per refused token request (docs/audit.md:
// the schema), never a secret, an assertion, a hash or a token. It writes directly rather than
// through the process logger because that logger samples repeated messages, and an audit trail
// must not lose lines.
//
// Lines are written by group commit: a request whose line finds no write in progress writes
// it itself; one that finds a write in progress appends its line to the pending batch and waits
// until the write holding it has returned. A token is thus never answered before its audit line
// has reached the sink (a crash loses no line of a token a client received), and nothing is left
// buffered once the handlers have returned (shutdown has nothing to flush). A goroutine, started
// when lines are pending behind a write and gone when none are, writes each pending batch in one
// Write call; each waiting request wakes once, when its batch is written. Before, each request
// queued its own write(2) on the file's lock, and a holder descheduled in the syscall stalled
// every request behind it (the convoy that made the tail at a fixed load, see
// docs/performance.md). Lines never interleave: a batch is whole lines, written by one Write.
//
// A sink that blocks holds the requests whose lines wait for it, as it did when each wrote its
// own line (they show in audit_write_duration_seconds); a sink that fails loses its batch, and
// every line of it is counted in audit_lines_failed_total and the failure logged.
type auditLog struct {
	w   io.Writer
	log logr.Logger
	// failed counts the lines of batches whose Write failed; writeDuration observes each Write.
	failed        prometheus.Counter
	writeDuration prometheus.Observer
	// refusals budgets the refusal lines; dropped counts those left out, droppedSince those
	// left out since the last refusal line written.
	refusals     *rate.Limiter
	dropped      prometheus.Counter
	droppedSince atomic.Int64

	mu sync.Mutex
	// pending holds the lines no write has taken yet, to be written as batch; spare is the
	// buffer of the last batch, kept for reuse.
	pending, spare []byte
	pendingLines   int
	// batch is closed once the pending lines are written.
	batch chan struct{}
	// writing is true while a write is in progress (a request's own, or the writer goroutine's).
	writing bool
}

func newAuditLog(w io.Writer, log logr.Logger, m *metrics) *auditLog {
	return &auditLog{
		w: w, log: log, failed: m.auditFailed, writeDuration: m.auditWrite,
		refusals: rate.NewLimiter(auditRefusalRate, auditRefusalBurst), dropped: m.auditRefusalsDropped,
	}
}

// off reports that there is no audit trail to write.
func (a *auditLog) off() bool { return a.w == nil || a.w == io.Discard }

// issued writes the audit line of one token and returns when it has been written; buf is
// scratch space owned by the caller.
func (a *auditLog) issued(buf []byte, now time.Time, remote string, c *Client, aud *audience, scope, jti []byte, exp int64) []byte {
	if a.off() {
		return buf
	}
	b := append(buf[:0], `{"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"info","logger":"tokenserver.audit","msg":"token issued","event":"issued","remoteAddr":`...)
	b = appendJSONString(b, remote)
	b = appendJSONString(append(b, `,"clientID":`...), c.id)
	b = appendJSONString(append(b, `,"namespace":`...), c.namespace)
	b = appendJSONString(append(b, `,"name":`...), c.name)
	b = appendJSONString(append(b, `,"audience":`...), aud.name)
	b = append(append(append(b, `,"scope":"`...), scope...), '"')
	b = append(append(append(b, `,"jti":"`...), jti...), '"')
	b = strconv.AppendInt(append(b, `,"exp":`...), exp, 10)
	b = append(b, "}\n"...)
	a.commit(b)
	return b
}

// refusedRequest is what a refusal line tells of the request: the client only when the server
// knows it (authenticated, or the presented id is a known client's: its id, from the record,
// never the presented bytes), and the parameters asked, cut to their bounds.
type refusedRequest struct {
	remote        string
	reason        string
	client        *Client
	authenticated bool
	// req is the parsed request, nil when the refusal came before the form was read.
	req *tokenRequest
}

// refused writes the audit line of one refused token request, within the refusal budget, and
// returns when it has been written (or at once when the budget is spent); buf is scratch space
// owned by the caller.
func (a *auditLog) refused(buf []byte, now time.Time, f refusedRequest) []byte {
	if a.off() {
		return buf
	}
	if !a.refusals.AllowN(now, 1) {
		a.dropped.Inc()
		a.droppedSince.Add(1)
		return buf
	}
	b := append(buf[:0], `{"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"info","logger":"tokenserver.audit","msg":"token refused","event":"refused","remoteAddr":`...)
	b = appendJSONString(b, f.remote)
	b = appendJSONString(append(b, `,"reason":`...), f.reason)
	if c := f.client; c != nil {
		b = appendJSONString(append(b, `,"clientID":`...), c.id)
		b = appendJSONString(append(b, `,"namespace":`...), c.namespace)
		b = appendJSONString(append(b, `,"name":`...), c.name)
		b = strconv.AppendBool(append(b, `,"authenticated":`...), f.authenticated)
	}
	if req := f.req; req != nil {
		b = appendClipped(b, `,"grantType":`, req.grantType, maxAuditGrantType)
		aud := req.audience
		if len(aud) == 0 {
			aud = req.resource
		}
		b = appendClipped(b, `,"audience":`, aud, maxAuditAudience)
		b = appendClipped(b, `,"scope":`, req.scope, maxAuditScope)
	}
	if n := a.droppedSince.Swap(0); n > 0 {
		b = strconv.AppendInt(append(b, `,"droppedBefore":`...), n, 10)
	}
	b = append(b, "}\n"...)
	a.commit(b)
	return b
}

// appendClipped appends key and v as a JSON string cut to at most limit bytes of v (then
// ending in "…"); nothing when v is empty.
func appendClipped(b []byte, key string, v []byte, limit int) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, key...)
	if len(v) <= limit {
		return appendJSONString(b, string(v))
	}
	return appendJSONString(b, string(v[:limit])+"…")
}

// commit writes line, or appends it to the pending batch if a write is in progress, and
// returns once it is written. With no write in progress the request writes its own line (no
// hand-off: the common case at low load allocates nothing); lines that arrived meanwhile are
// left to a writer goroutine, so that no request waits for more than its own batch.
func (a *auditLog) commit(line []byte) {
	a.mu.Lock()
	if !a.writing {
		a.writing = true
		a.mu.Unlock()
		a.write(line, 1)
		a.mu.Lock()
		if a.pendingLines > 0 {
			go a.writeBatches() // a.writing stays true: the goroutine owns the writes now
		} else {
			a.writing = false
		}
		a.mu.Unlock()
		return
	}
	a.pending = append(a.pending, line...)
	a.pendingLines++
	if a.batch == nil {
		a.batch = make(chan struct{})
	}
	done := a.batch
	a.mu.Unlock()
	<-done
}

// writeBatches writes the pending batches, one Write call each, until none is pending.
func (a *auditLog) writeBatches() {
	for {
		a.mu.Lock()
		if a.pendingLines == 0 {
			a.writing = false
			a.mu.Unlock()
			return
		}
		lines, batch, b := a.pending, a.batch, a.pendingLines
		a.pending, a.spare, a.pendingLines, a.batch = a.spare[:0], nil, 0, nil
		a.mu.Unlock()

		a.write(lines, b)
		close(batch)

		a.mu.Lock()
		if cap(lines) <= maxAuditSpare {
			a.spare = lines[:0]
		}
		a.mu.Unlock()
	}
}

// write writes one batch of n lines, timing it and counting its lines if it fails.
func (a *auditLog) write(lines []byte, n int) {
	start := time.Now()
	_, err := a.w.Write(lines)
	a.writeDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		a.failed.Add(float64(n))
		a.log.Error(err, "writing the audit log failed: these token lines are lost", "lines", n)
	}
}
