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

// Unauthenticated slow bodies: a request body is read, under its own deadline, before the
// request takes one of the scarce in-flight slots.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// slowLength is the Content-Length the slow clients claim and never send.
const slowLength = 60000

// dribblers are clients that each send the headers of a token request claiming a 60,000-byte
// body, then one body byte at a time, and start again once answered, until stopped.
type dribblers struct {
	addr     string
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	answers  map[int]int // status (0: no answer, the connection failed) → count
	answered atomic.Int64
	// firstAnswer counts the clients answered at least once.
	firstAnswer atomic.Int64
}

func startDribblers(addr string, n int, every time.Duration) *dribblers {
	d := &dribblers{addr: addr, stop: make(chan struct{}), answers: map[int]int{}}
	for i := 0; i < n; i++ {
		d.wg.Go(func() { d.run(every) })
	}
	return d
}

func (d *dribblers) run(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for first := true; ; first = false {
		code, stopped := d.once(tick)
		if stopped {
			return
		}
		d.record(code)
		if first {
			d.firstAnswer.Add(1)
		}
	}
}

// once sends one slow request and returns its status, or reports that the clients stopped.
func (d *dribblers) once(tick *time.Ticker) (int, bool) {
	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		select {
		case <-d.stop:
			return 0, true
		case <-tick.C:
			return 0, false
		}
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\ng", TokenPath, d.addr, slowLength)
	answer := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		answer <- resp.StatusCode
	}()
	for {
		select {
		case <-d.stop:
			_ = conn.Close()
			<-answer
			return 0, true
		case code := <-answer:
			return code, false
		case <-tick.C:
			_, _ = conn.Write([]byte("r"))
		}
	}
}

func (d *dribblers) record(code int) {
	d.answered.Add(1)
	d.mu.Lock()
	d.answers[code]++
	d.mu.Unlock()
}

func (d *dribblers) close() {
	close(d.stop)
	d.wg.Wait()
}

func (d *dribblers) statuses() map[int]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[int]int, len(d.answers))
	for k, v := range d.answers {
		out[k] = v
	}
	return out
}

// serveOnLoopback serves ts on a real listener until the test ends, and returns its address.
// before runs first, once the listener is open (to stop clients before the server).
func serveOnLoopback(t *testing.T, ts *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestSlowBodiesNeverStarveTokenRequests: 1,000 connections send headers claiming a
// 60,000-byte body and then dribble it a byte at a time, against a server with 4 in-flight
// slots. Every legitimate token request meanwhile gets its token, and every slow request is
// answered 400 invalid_request once its body deadline passes.
func TestSlowBodiesNeverStarveTokenRequests(t *testing.T) {
	const slow = 1000
	ts := newTestServer(t, func(o *Options) { o.MaxInFlight, o.BodyReadTimeout = 4, time.Second })
	id, secret := ts.addClient(t)
	var entered atomic.Int64
	inner := ts.handler
	ts.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == slowLength {
			entered.Add(1)
		}
		inner.ServeHTTP(w, r)
	})
	addr := serveOnLoopback(t, ts)
	d := startDribblers(addr, slow, 300*time.Millisecond)
	t.Cleanup(d.close) // before the server stops (cleanups run last-in first-out)
	g := NewWithT(t)
	g.Eventually(entered.Load).WithTimeout(30 * time.Second).Should(BeNumerically(">=", slow))

	client := &http.Client{Timeout: 10 * time.Second}
	form := grant().Encode()
	deadline := time.Now().Add(60 * time.Second)
	legit := 0
	for ; d.firstAnswer.Load() < slow || legit < 50; legit++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d legitimate requests only %d of %d slow clients were answered", legit, d.firstAnswer.Load(), slow)
		}
		code, body := postForm(client, "http://"+addr+TokenPath, form, id, secret)
		if code != http.StatusOK {
			t.Fatalf("legitimate request %d under the slow-body attack: %d %s (slow clients answered so far: %v)", legit, code, body, d.statuses())
		}
	}
	got := d.statuses()
	if got[http.StatusBadRequest] < slow || len(got) != 1 {
		t.Fatalf("slow clients' answers by status: %v, want only 400s", got)
	}
	t.Logf("%d legitimate requests served while %d slow clients were answered %v", legit, slow, got)
}

// postForm posts a form with Basic credentials and returns the status and body.
func postForm(c *http.Client, u, form, id, secret string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// deadlineBody sends some bytes, then fails as a connection past its read deadline does.
type deadlineBody struct{ r *strings.Reader }

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.r.Len() == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return b.r.Read(p)
}
func (b *deadlineBody) Close() error { return nil }

// TestPartialBodyIsABadRequest: a body cut short by its deadline is 400 invalid_request, and
// the buffer it was read into grew with the bytes received, not to the claimed length.
func TestPartialBodyIsABadRequest(t *testing.T) {
	ts := newTestServer(t)
	r := tokenReq(grant(), "", "")
	r.Body = &deadlineBody{r: strings.NewReader("grant_type=client_credentials")}
	r.ContentLength = slowLength
	w := ts.do(r)
	if tr := decodeResponse(t, w.Body); w.Code != http.StatusBadRequest || tr.Error != errInvalidRequest {
		t.Fatalf("status %d error %q, want 400 invalid_request", w.Code, tr.Error)
	}
	st := &reqState{body: make([]byte, 0, 1024)}
	r.Body = &deadlineBody{r: strings.NewReader("grant_type=client_credentials")}
	if err := readBody(r, st, DefaultMaxBodyBytes); err != errReadBody {
		t.Fatalf("readBody: %v, want errReadBody", err)
	}
	if cap(st.body) > 2048 {
		t.Fatalf("a claimed Content-Length of %d grew the buffer to %d bytes for %d received", slowLength, cap(st.body), len("grant_type=client_credentials"))
	}
}
