package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// manualClock moves only when the test sets it.
type manualClock struct {
	mu   sync.Mutex
	cond *sync.Cond
	now  time.Time
}

func newManualClock() *manualClock {
	c := &manualClock{now: time.Unix(1_000_000, 0)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) SleepUntil(_ context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.now.Before(t) {
		c.cond.Wait()
	}
	return nil
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
	c.cond.Broadcast()
}

// testCreds returns n clients whose ids hold a ':' and secrets a '+': both must be
// form-encoded before Basic (RFC 6749 §2.3.1) to arrive intact.
func testCreds(n int) []credential {
	creds := make([]credential, n)
	for i := range creds {
		creds[i] = credential{ID: fmt.Sprintf("client:%d", i), Secret: fmt.Sprintf("s3+cret %d", i)}
	}
	return creds
}

func openConfig(srvURL string, rate float64, warmup, duration time.Duration) config {
	return config{URL: srvURL, Rate: rate, Warmup: warmup, Duration: duration, Auth: "basic",
		Output: "json", MaxInFlight: 64, Timeout: 10 * time.Second}
}

func newTestClient(t *testing.T, cfg config) *http.Client {
	t.Helper()
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientOf returns the client id and secret of r, from Basic or from the form.
func clientOf(r *http.Request) (string, string) {
	if id, secret, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		return id, secret
	}
	return r.PostFormValue("client_id"), r.PostFormValue("client_secret")
}

func TestPercentile(t *testing.T) {
	s := make([]time.Duration, 1000)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	rec := recorder{status: map[int]int{}, samples: s}
	got := rec.report(config{Duration: time.Second}, 1, time.Time{}).Latency
	want := latency{Method: got.Method, Samples: 1000, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if got != want {
		t.Errorf("1..1000 ms: got %+v, want %+v", got, want)
	}
	ten := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, w := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 99.9: 10, 100: 10, 10: 1, 11: 2} {
		if g := percentile(ten, p); g != w {
			t.Errorf("p%g of 1..10 = %d, want %d", p, g, w)
		}
	}
	// 99.9% of 41,000 is 40,959 exactly, but the float product is a hair above it.
	big := make([]time.Duration, 41000)
	for i := range big {
		big[i] = time.Duration(i + 1)
	}
	if g := percentile(big, 99.9); g != 40959 {
		t.Errorf("p99.9 of 1..41000 = %d, want 40959", g)
	}
	if g := percentile([]time.Duration{7}, 50); g != 7 {
		t.Errorf("p50 of one sample = %d, want 7", g)
	}
	if g := percentile(nil, 99); g != 0 {
		t.Errorf("p99 of nothing = %d, want 0", g)
	}
}

// Each request uses the next client in turn, across the warm-up, with either authentication;
// the warm-up requests reach the server but not the report.
func TestRoundRobin(t *testing.T) {
	for _, auth := range []string{"basic", "post"} {
		t.Run(auth, func(t *testing.T) {
			var mu sync.Mutex
			var ids []string
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, secret := clientOf(r)
				if r.PostFormValue("grant_type") != "client_credentials" || r.PostFormValue("scope") != "a:read b:write" ||
					secret != "s3+cret "+strings.TrimPrefix(id, "client:") {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				fmt.Fprint(w, `{"access_token":"x","token_type":"Bearer"}`)
			}))
			conns := 0
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					mu.Lock()
					conns++
					mu.Unlock()
				}
			}
			srv.Start()
			defer srv.Close()
			cfg := openConfig(srv.URL, 1000, 3*time.Millisecond, 9*time.Millisecond)
			cfg.Auth, cfg.Form, cfg.MaxInFlight = auth, "scope=a%3Aread+b%3Awrite", 1 // one at a time: arrival order is send order
			rep := newRunner(cfg, testCreds(5), newTestClient(t, cfg), realClock{}).run(context.Background())

			var want []string
			for i := range 12 {
				want = append(want, fmt.Sprintf("client:%d", i%5))
			}
			if !slices.Equal(ids, want) {
				t.Errorf("client ids in arrival order = %v, want %v", ids, want)
			}
			if rep.Sent != 9 || rep.OK != 9 || rep.Latency.Samples != 9 {
				t.Errorf("sent %d ok %d samples %d, want 9 (12 minus 3 warm-up): %+v", rep.Sent, rep.OK, rep.Latency.Samples, rep)
			}
			if conns != 1 {
				t.Errorf("%d connections for 12 sequential requests, want 1 (reused)", conns)
			}
		})
	}
}

// The server stalls the first request while the schedule moves on 4 ms: the requests due
// during the stall wait for the only slot, and their latencies include that wait, counted from
// their intended times (release - i ms), not from when they could finally be sent (0).
func TestLatencyFromIntendedTime(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived); <-release })
	}))
	defer srv.Close()
	clk := newManualClock()
	t0 := clk.Now()
	cfg := openConfig(srv.URL, 1000, 0, 5*time.Millisecond) // due at t0 + 0..4 ms
	cfg.MaxInFlight = 1
	r := newRunner(cfg, testCreds(3), newTestClient(t, cfg), clk)
	done := make(chan report)
	go func() { done <- r.run(context.Background()) }()

	<-arrived
	clk.Set(t0.Add(4 * time.Millisecond))
	close(release)
	rep := <-done

	r.rec.mu.Lock()
	got := slices.Sorted(slices.Values(r.rec.samples))
	r.rec.mu.Unlock()
	want := []time.Duration{0, 1 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("latencies = %v, want %v (release time minus each intended time)", got, want)
	}
	// Requests 1 and 2 started 3 and 2 ms late; 3 (1 ms) and 4 (0) are within lateAfter.
	if rep.Late != 2 || rep.MaxSendLagMS != 3 || rep.Latency.Max != 4 || rep.Latency.P50 != 2 {
		t.Errorf("late %d, max lag %g ms, max %g ms, p50 %g ms; want 2, 3, 4, 2", rep.Late, rep.MaxSendLagMS, rep.Latency.Max, rep.Latency.P50)
	}
	if rep.AchievedRPS != 1000 {
		t.Errorf("achieved %g req/s, want 1000 (5 requests in the 5 ms duration)", rep.AchievedRPS)
	}
}

// 200s, other statuses and transport errors each land in their own count, and only the 200s
// in the latencies; the error message holds no secret.
func TestStatusesAndErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch id, _ := clientOf(r); id {
		case "client:1":
			w.WriteHeader(http.StatusTooManyRequests)
		case "client:2":
			w.WriteHeader(http.StatusUnauthorized)
		case "client:3": // no answer at all: the connection is cut
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	defer srv.Close()
	cfg := openConfig(srv.URL, 1000, 0, 12*time.Millisecond)
	rep := newRunner(cfg, testCreds(4), newTestClient(t, cfg), realClock{}).run(context.Background())

	want := map[int]int{http.StatusTooManyRequests: 3, http.StatusUnauthorized: 3}
	if rep.Sent != 12 || rep.OK != 3 || rep.Errors != 3 || rep.Latency.Samples != 3 || !maps.Equal(rep.Non200, want) {
		t.Errorf("sent %d ok %d errors %d samples %d non-200 %v; want 12, 3, 3, 3, %v", rep.Sent, rep.OK, rep.Errors, rep.Latency.Samples, rep.Non200, want)
	}
	if rep.FirstError == "" || strings.Contains(rep.FirstError, "cret") {
		t.Errorf("first error %q: want a message without the secret", rep.FirstError)
	}
	var out bytes.Buffer
	if err := writeReport(&out, "json", rep); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Non200 map[string]int `json:"non_200"`
		Errors int            `json:"errors"`
	}
	if err := json.Unmarshal(out.Bytes(), &parsed); err != nil || parsed.Non200["429"] != 3 || parsed.Errors != 3 {
		t.Errorf("JSON %s: parsed %+v, %v", out.String(), parsed, err)
	}
}

// The closed loop keeps its workers busy for the duration and reports what they got.
func TestClosedLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	cfg := openConfig(srv.URL, 0, 5*time.Millisecond, 20*time.Millisecond)
	cfg.Closed = 3
	rep := newRunner(cfg, testCreds(5), newTestClient(t, cfg), realClock{}).run(context.Background())
	if rep.Mode != "closed" || rep.Workers != 3 || rep.Sent == 0 || rep.OK != rep.Sent || rep.Latency.Samples != rep.Sent {
		t.Errorf("closed loop report %+v: want mode closed, 3 workers, every request ok and sampled", rep)
	}
}

func TestParseCredentials(t *testing.T) {
	creds, err := parseCredentials(strings.NewReader("# id secret\nalpha a-secret\n\n  beta\tb-secret  \n"))
	want := []credential{{"alpha", "a-secret"}, {"beta", "b-secret"}}
	if err != nil || !slices.Equal(creds, want) {
		t.Errorf("got %v, %v; want %v", creds, err, want)
	}
	for name, tc := range map[string]struct{ in, want string }{
		"one field":    {"alpha a-pw\nbeta\n", "line 2: want 2 fields"},
		"three fields": {"alpha a-pw\n\nbeta b-pw extra-pw\n", "line 3: want 2 fields"},
		"empty":        {"# nothing\n\n", "no credentials"},
	} {
		_, err := parseCredentials(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "-pw") {
			t.Errorf("%s: error %v, want one containing %q and no secret", name, err, tc.want)
		}
	}
	if _, err := loadCredentials("-", strings.NewReader("alpha\n")); err == nil || !strings.Contains(err.Error(), "stdin: line 1") {
		t.Errorf("stdin: error %v, want one naming stdin and line 1", err)
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"-url", "http://x/oauth2/token", "-credentials", "-"}
	if c, err := parseFlags(append(base, "-rate", "500", "-auth", "post", "-form", "scope=a"), &bytes.Buffer{}); err != nil || c.Rate != 500 || c.Auth != "post" {
		t.Errorf("valid flags: %+v, %v", c, err)
	}
	for _, bad := range [][]string{
		{},                                // neither -rate nor -closed
		{"-rate", "10", "-closed", "2"},   // both
		{"-rate", "-5"},                   // negative
		{"-rate", "10", "-auth", "jwt"},   // unknown auth
		{"-rate", "10", "-o", "yaml"},     // unknown output
		{"-rate", "10", "-form", "a=%zz"}, // malformed form
		{"-rate", "10", "-duration", "0s"},
	} {
		if _, err := parseFlags(append(slices.Clone(base), bad...), &bytes.Buffer{}); err == nil {
			t.Errorf("flags %v: want an error", bad)
		}
	}
	if _, err := parseFlags([]string{"-rate", "10", "-credentials", "-"}, &bytes.Buffer{}); err == nil {
		t.Error("no -url: want an error")
	}
}
