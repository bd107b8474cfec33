// Command loadgen is an HTTP load generator for the token endpoint (POST /oauth2/token,
// grant_type=client_credentials), made to measure tail latency at a fixed offered load.
//
// Usage:
//
//	go run ./hack/loadgen -url http://127.0.0.1:8080/oauth2/token -credentials creds.txt \
//	    (-rate 2000 | -closed 32) [-duration 30s] [-warmup 5s] [-auth basic|post] \
//	    [-form 'scope=invoices:read&audience=billing'] [-o text|json] \
//	    [-max-inflight 4096] [-timeout 10s] [-cacert ca.pem]
//
// The credentials file ("-" reads stdin) holds one "client_id client_secret" per line; blank
// lines and lines starting with '#' are skipped. Each request uses the next client in turn
// (round robin), so a file of 1,000 or more distinct clients exercises the server's client index
// rather than one hot entry.
//
// -rate N is an open loop: request i is due at start + i/N whatever happened to the earlier
// ones, and its latency is measured from that intended time, so a stall of the server shows in
// the latency of every request that was due during it (no coordinated omission). Each request
// runs in its own goroutine, at most -max-inflight at once; when that cap is reached the
// schedule waits and the requests due meanwhile go out late, all at once when a slot frees.
// None is dropped: they are counted as "late" (sent more than 1 ms after their intended time)
// and their latency still starts at their intended time.
//
// -closed C runs C workers that each send the next request as soon as the previous answer is
// read: it reports the maximum throughput, and its latencies are service times.
//
// Requests due in the first -warmup are sent but left out of every figure. Latency percentiles
// are exact (nearest rank over all sorted samples) and cover the 200 answers only; other
// answers are counted by status code and transport errors separately. -o json prints one JSON
// object (type report) for scripts. Secrets are never printed.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is what the flags ask for.
type config struct {
	URL         string
	CredsPath   string
	Rate        float64
	Closed      int
	Duration    time.Duration
	Warmup      time.Duration
	Auth        string
	Form        string
	Output      string
	MaxInFlight int
	Timeout     time.Duration
	CACert      string
}

// credential is one client's id and secret.
type credential struct{ ID, Secret string }

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	creds, err := loadCredentials(cfg.CredsPath, stdin)
	if err != nil {
		return err
	}
	if n := distinctIDs(creds); n < 1000 {
		fmt.Fprintf(stderr, "loadgen: warning: only %d distinct clients; 1,000 or more exercise the client index\n", n)
	}
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	// Ctrl-C stops the schedule; requests already sent finish and are reported.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := newRunner(cfg, creds, client, realClock{}).run(ctx)
	return writeReport(stdout, cfg.Output, rep)
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "", "token endpoint URL (required)")
	fs.StringVar(&c.CredsPath, "credentials", "", `file of "client_id client_secret" lines, or - for stdin (required)`)
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: requests per second")
	fs.IntVar(&c.Closed, "closed", 0, "closed loop: number of workers")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up before the measured duration (not reported)")
	fs.StringVar(&c.Auth, "auth", "basic", "client authentication: basic (client_secret_basic) or post (client_secret_post)")
	fs.StringVar(&c.Form, "form", "", "extra form parameters, e.g. scope=a:read&audience=api")
	fs.StringVar(&c.Output, "o", "text", "output: text or json")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 4096, "open loop: most requests in flight at once")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&c.CACert, "cacert", "", "PEM file of CA certificates to trust for https")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case c.URL == "":
		return c, errors.New("-url is required")
	case c.CredsPath == "":
		return c, errors.New("-credentials is required")
	case (c.Rate > 0) == (c.Closed > 0):
		return c, errors.New("give exactly one of -rate N (open loop) and -closed C (closed loop), positive")
	case c.Rate < 0 || c.Closed < 0:
		return c, errors.New("-rate and -closed must be positive")
	case c.Duration <= 0 || c.Warmup < 0:
		return c, errors.New("-duration must be positive and -warmup not negative")
	case c.Auth != "basic" && c.Auth != "post":
		return c, fmt.Errorf("-auth %q: want basic or post", c.Auth)
	case c.Output != "text" && c.Output != "json":
		return c, fmt.Errorf("-o %q: want text or json", c.Output)
	case c.MaxInFlight < 1:
		return c, errors.New("-max-inflight must be at least 1")
	}
	if _, err := url.ParseQuery(c.Form); err != nil {
		return c, fmt.Errorf("-form: %w", err)
	}
	return c, nil
}

// loadCredentials reads the credentials from path, or from stdin when path is "-".
func loadCredentials(path string, stdin io.Reader) ([]credential, error) {
	if path == "-" {
		creds, err := parseCredentials(stdin)
		if err != nil {
			return nil, fmt.Errorf("credentials from stdin: %w", err)
		}
		return creds, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	creds, err := parseCredentials(f)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	return creds, nil
}

// parseCredentials reads "client_id client_secret" lines. Errors name the line but never
// quote it: it may hold a secret.
func parseCredentials(r io.Reader) ([]credential, error) {
	var creds []credential
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want 2 fields \"client_id client_secret\", got %d", n, len(f))
		}
		creds = append(creds, credential{ID: f[0], Secret: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(creds) == 0 {
		return nil, errors.New("no credentials (want lines \"client_id client_secret\")")
	}
	return creds, nil
}

func distinctIDs(creds []credential) int {
	seen := make(map[string]struct{}, len(creds))
	for _, c := range creds {
		seen[c.ID] = struct{}{}
	}
	return len(seen)
}

// newClient returns a client whose idle pool holds as many connections as the load keeps in
// flight, so that connections are reused instead of redialled.
func newClient(cfg config) (*http.Client, error) {
	pool := cfg.MaxInFlight
	if cfg.Closed > 0 {
		pool = cfg.Closed
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = pool
	tr.MaxIdleConnsPerHost = pool
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("-cacert: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s: no PEM certificate", cfg.CACert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout}, nil
}

// writeReport prints rep as text or as one JSON object.
func writeReport(w io.Writer, format string, rep report) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if rep.Mode == "open" {
		fmt.Fprintf(w, "open loop, %g req/s for %gs after %gs warm-up, %d clients\n", rep.TargetRPS, rep.DurationS, rep.WarmupS, rep.Clients)
	} else {
		fmt.Fprintf(w, "closed loop, %d workers for %gs after %gs warm-up, %d clients\n", rep.Workers, rep.DurationS, rep.WarmupS, rep.Clients)
	}
	fmt.Fprintf(w, "sent %d  ok %d  errors %d  achieved %.1f req/s\n", rep.Sent, rep.OK, rep.Errors, rep.AchievedRPS)
	fmt.Fprintf(w, "late %d  max send lag %.3f ms  max in flight %d\n", rep.Late, rep.MaxSendLagMS, rep.MaxInFlight)
	for _, code := range slices.Sorted(maps.Keys(rep.Non200)) {
		fmt.Fprintf(w, "status %d: %d\n", code, rep.Non200[code])
	}
	if rep.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", rep.FirstError)
	}
	l := rep.Latency
	fmt.Fprintf(w, "latency ms (%s, %d samples): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
		l.Method, l.Samples, l.P50, l.P90, l.P99, l.P999, l.Max)
	return nil
}
