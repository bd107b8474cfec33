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
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

// recordingWriter keeps every Write call; the first one blocks until release is closed.
type recordingWriter struct {
	mu      sync.Mutex
	writes  [][]byte
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	r.once.Do(func() {
		close(r.entered)
		<-r.release
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// pendingAuditLines is how many lines wait for the next audit write.
func pendingAuditLines(s *Server) int {
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.audit.pendingLines
}

// waitPendingAuditLines waits until n lines wait for the next audit write.
func waitPendingAuditLines(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pendingAuditLines(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines pending, want %d", pendingAuditLines(s), n)
		}
		time.Sleep(time.Millisecond) // polling a condition, as Eventually does
	}
}

// TestAuditGroupCommit: lines that arrive while a write is in progress share the next write
// (one Write call for all of them, whole lines), and each request answers only once its line
// is written.
func TestAuditGroupCommit(t *testing.T) {
	const waiting = 8
	audit := &recordingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	ts := newTestServer(t, func(o *Options) { o.AuditLog = audit })
	id, secret := ts.addClient(t)
	codes := make(chan int, waiting+1)
	go func() { codes <- ts.do(tokenReq(grant(), id, secret)).Code }()
	<-audit.entered
	for i := 0; i < waiting; i++ {
		go func() { codes <- ts.do(tokenReq(grant(), id, secret)).Code }()
	}
	waitPendingAuditLines(t, ts.Server, waiting)
	select {
	case c := <-codes:
		t.Fatalf("a request answered (%d) before its audit line was written", c)
	default:
	}
	close(audit.release)
	for i := 0; i < waiting+1; i++ {
		if c := <-codes; c != 200 {
			t.Fatalf("status %d, want 200", c)
		}
	}
	audit.mu.Lock()
	defer audit.mu.Unlock()
	if len(audit.writes) != 2 {
		t.Fatalf("%d writes, want 2 (the first line, then the %d lines that waited for it)", len(audit.writes), waiting)
	}
	lines := strings.Split(strings.TrimSuffix(string(audit.writes[1]), "\n"), "\n")
	if len(lines) != waiting {
		t.Fatalf("second write holds %d lines, want %d", len(lines), waiting)
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["msg"] != "token issued" {
			t.Fatalf("not a whole audit line: %q (%v)", l, err)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestAuditWriteFailureCounted: a line the sink refuses is never lost silently: it is counted
// in audit_lines_failed_total and the failure is logged.
func TestAuditWriteFailureCounted(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{})
	ts := newTestServer(t, func(o *Options) { o.AuditLog, o.Logger = failingWriter{}, logger })
	id, secret := ts.addClient(t)
	for i := 0; i < 3; i++ {
		ts.issue(t, grant(), id, secret)
	}
	body := ts.probe("/metrics").Body.String()
	for _, want := range []string{"m2m_tokenserver_audit_lines_failed_total 3\n", "m2m_tokenserver_audit_write_duration_seconds_count 3\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(strings.Join(logs, "\n"), "writing the audit log failed"); n != 3 {
		t.Fatalf("%d failure logs, want 3: %q", n, logs)
	}
}
