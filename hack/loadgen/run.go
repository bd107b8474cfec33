package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// lateAfter is how long after its intended time a request may start before it counts as late:
// above the timer slop of an ordinary machine, below the latency goals (p99 <= 5 ms).
const lateAfter = time.Millisecond

// clock is the time source of the schedule and of the latencies; tests use a manual one.
type clock interface {
	Now() time.Time
	// SleepUntil returns once t has come, or with ctx's error when ctx is done first.
	SleepUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepared is one client's request body and Authorization header, built once.
type prepared struct {
	body  []byte
	authz string
}

// prepare builds each client's request. Basic credentials are form-encoded first (RFC 6749
// §2.3.1).
func prepare(creds []credential, auth, extra string) []prepared {
	out := make([]prepared, len(creds))
	for i, c := range creds {
		v := url.Values{"grant_type": {"client_credentials"}}
		if auth == "post" {
			v.Set("client_id", c.ID)
			v.Set("client_secret", c.Secret)
		} else {
			pair := url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret)
			out[i].authz = "Basic " + base64.StdEncoding.EncodeToString([]byte(pair))
		}
		body := v.Encode()
		if extra != "" {
			body += "&" + extra
		}
		out[i].body = []byte(body)
	}
	return out
}

// runner sends the load and records the answers.
type runner struct {
	cfg    config
	client *http.Client
	clock  clock
	reqs   []prepared
	rec    recorder
}

func newRunner(cfg config, creds []credential, client *http.Client, clk clock) *runner {
	return &runner{cfg: cfg, client: client, clock: clk, reqs: prepare(creds, cfg.Auth, cfg.Form),
		rec: recorder{status: map[int]int{}}}
}

// run sends the whole load (open or closed loop, as configured) and reports the measured part.
func (r *runner) run(ctx context.Context) report {
	start := r.clock.Now()
	if r.cfg.Closed > 0 {
		r.runClosed(ctx, start)
	} else {
		r.runOpen(ctx, start)
	}
	return r.rec.report(r.cfg, len(r.reqs), start.Add(r.cfg.Warmup))
}

// runOpen sends request i at start + i/rate, each in its own goroutine, client i mod n.
// When -max-inflight requests are out it waits for a slot, then sends the overdue requests
// at once with their original intended times: late, never dropped.
func (r *runner) runOpen(ctx context.Context, start time.Time) {
	rate := r.cfg.Rate
	total := int(math.Round(rate * (r.cfg.Warmup + r.cfg.Duration).Seconds()))
	warm := int(math.Round(rate * r.cfg.Warmup.Seconds()))
	slots := make(chan struct{}, r.cfg.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; i < total; i++ {
		// From the start time, not from the previous send, so that timer slop does not add up.
		intended := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if r.clock.SleepUntil(ctx, intended) != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		measured := i >= warm
		if measured {
			r.rec.dispatched(r.clock.Now().Sub(intended), len(slots))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r.send(i, intended, measured)
		}()
	}
}

// runClosed runs C workers, each sending its next request when the previous one is answered,
// until the end of the duration.
func (r *runner) runClosed(ctx context.Context, start time.Time) {
	warmEnd := start.Add(r.cfg.Warmup)
	end := warmEnd.Add(r.cfg.Duration)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.Closed {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := r.clock.Now()
				if !t.Before(end) {
					return
				}
				r.send(int(next.Add(1)-1), t, !t.Before(warmEnd))
			}
		})
	}
	wg.Wait()
}

// send makes request i with client i mod n; its latency runs from intended to the end of the
// body.
func (r *runner) send(i int, intended time.Time, measured bool) {
	status, err := r.do(r.reqs[i%len(r.reqs)])
	done := r.clock.Now()
	if measured {
		r.rec.add(status, err, done.Sub(intended), done)
	}
}

func (r *runner) do(p prepared) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, r.cfg.URL, bytes.NewReader(p.body))
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p.authz != "" {
		req.Header.Set("Authorization", p.authz)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read to the end, so that the connection goes back to the pool.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, nil
}

// recorder collects the measured requests. Every latency is kept: exact percentiles.
type recorder struct {
	mu          sync.Mutex
	sent, ok    int
	errors      int
	late        int
	status      map[int]int
	samples     []time.Duration // latencies of the 200 answers
	maxLag      time.Duration
	maxInFlight int
	lastDone    time.Time
	firstErr    string
}

// dispatched notes how late a measured request started and how many were then in flight.
func (rec *recorder) dispatched(lag time.Duration, inFlight int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if lag > lateAfter {
		rec.late++
	}
	rec.maxLag = max(rec.maxLag, lag)
	rec.maxInFlight = max(rec.maxInFlight, inFlight)
}

// add records one measured request's outcome.
func (rec *recorder) add(status int, err error, latency time.Duration, done time.Time) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.sent++
	if done.After(rec.lastDone) {
		rec.lastDone = done
	}
	switch {
	case err != nil:
		rec.errors++
		if rec.firstErr == "" {
			rec.firstErr = err.Error() // names the method and URL, never the body
		}
	case status == http.StatusOK:
		rec.ok++
		rec.samples = append(rec.samples, latency)
	default:
		rec.status[status]++
	}
}

// report is the result; its JSON form is what scripts parse.
type report struct {
	Mode         string      `json:"mode"` // "open" or "closed"
	TargetRPS    float64     `json:"target_rps,omitempty"`
	Workers      int         `json:"workers,omitempty"`
	DurationS    float64     `json:"duration_s"`
	WarmupS      float64     `json:"warmup_s"`
	Clients      int         `json:"clients"`
	Sent         int         `json:"sent"`
	OK           int         `json:"ok"`
	Non200       map[int]int `json:"non_200"` // status code -> count
	Errors       int         `json:"errors"`  // transport errors: no status
	FirstError   string      `json:"first_error,omitempty"`
	Late         int         `json:"late"` // open loop: sent more than 1 ms after the intended time
	MaxSendLagMS float64     `json:"max_send_lag_ms"`
	MaxInFlight  int         `json:"max_in_flight"`
	AchievedRPS  float64     `json:"achieved_rps"` // sent / max(duration, last answer - end of warm-up)
	Latency      latency     `json:"latency_ms"`
}

// latency is the distribution of the 200 answers' latencies, in milliseconds.
type latency struct {
	Method  string  `json:"method"`
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p99_9"`
	Max     float64 `json:"max"`
}

func (rec *recorder) report(cfg config, clients int, measureStart time.Time) report {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rep := report{Mode: "open", TargetRPS: cfg.Rate, DurationS: cfg.Duration.Seconds(),
		WarmupS: cfg.Warmup.Seconds(), Clients: clients, Sent: rec.sent, OK: rec.ok,
		Non200: rec.status, Errors: rec.errors, FirstError: rec.firstErr, Late: rec.late,
		MaxSendLagMS: ms(rec.maxLag), MaxInFlight: rec.maxInFlight}
	if cfg.Closed > 0 {
		rep.Mode, rep.Workers, rep.MaxInFlight = "closed", cfg.Closed, cfg.Closed
	}
	elapsed := max(cfg.Duration, rec.lastDone.Sub(measureStart))
	rep.AchievedRPS = float64(rec.sent) / elapsed.Seconds()
	s := slices.Clone(rec.samples)
	slices.Sort(s)
	rep.Latency = latency{Method: "exact (nearest rank over all samples)", Samples: len(s),
		P50: ms(percentile(s, 50)), P90: ms(percentile(s, 90)), P99: ms(percentile(s, 99)),
		P999: ms(percentile(s, 99.9)), Max: ms(percentile(s, 100))}
	return rep
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted: the smallest
// sample with at least p% of the samples at or below it; 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (99.9*41000/100 = 40959.000000000007) from adding a rank.
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
