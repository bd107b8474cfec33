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

// Command benchserver serves one of the two sides of hack/bench.sh on a loopback address:
//
//	-mode=tokenserver  the real token server handler (tokenserver.New + Serve), fed from a
//	                   static in-memory index of -clients clients instead of informers;
//	-mode=baseline     the minimal handler of hack/bench/baseline;
//	-mode=noop         a handler that reads the body and answers a constant: the floor of the
//	                   harness (what hey and loopback HTTP alone cost on this machine).
//
// It prints "CLIENT_ID=… CLIENT_SECRET=…" (one client's credentials; benchmark-only), writes
// every client's "client_id client_secret" line to -credentials-out when given (the input of
// hack/loadgen; benchmark-only secrets, generated at start and never logged), and serves until
// interrupted. The token server's audit log goes to -audit-out (default stderr, as `m2m
// tokenserver` does).
package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served only with -pprof, on a listener of its own
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/hack/bench/baseline"
	"github.com/m2m-dev/m2m-operator/internal/credential"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

func main() {
	mode := flag.String("mode", "tokenserver", "tokenserver, baseline or noop")
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	clients := flag.Int("clients", 10000, "clients in the token server's index")
	alg := flag.String("alg", signingkey.ES256, "signing algorithm")
	credsOut := flag.String("credentials-out", "", `file to write every client's "client_id client_secret" line to`)
	auditOut := flag.String("audit-out", "", "file of the token server's audit log (default stderr)")
	pprofAddr := flag.String("pprof", "", "listen address of net/http/pprof, with block and mutex profiling on (profiling runs only)")
	flag.Parse()
	if *pprofAddr != "" {
		servePprof(*pprofAddr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{mode: *mode, addr: *addr, clients: *clients, alg: *alg, credsOut: *credsOut, auditOut: *auditOut}); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		stop()
		os.Exit(1) //nolint:gocritic // stop() ran just above
	}
}

// config is what the flags ask for.
type config struct {
	mode, addr, alg, credsOut, auditOut string
	clients                             int
}

func run(ctx context.Context, cfg config) error {
	set, err := keys(cfg.alg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	switch cfg.mode {
	case "tokenserver":
		return serveTokenServer(ctx, ln, set, cfg)
	case "baseline":
		return serveBaseline(ctx, ln, set, cfg.credsOut)
	case "noop":
		return serveNoop(ctx, ln, cfg.credsOut)
	}
	return fmt.Errorf("unknown mode %q", cfg.mode)
}

// servePprof serves net/http/pprof on addr (its own listener, never the token port) and turns
// on block and mutex profiling, which cost time on the hot path: profiling runs only.
func servePprof(addr string) {
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	srv := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
	go func() { fmt.Fprintln(os.Stderr, "benchserver: pprof:", srv.ListenAndServe()) }()
}

// writeCredentials writes one "client_id client_secret" line per client to path (mode 0600).
func writeCredentials(path string, lines []string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the credentials file: %w", err)
	}
	return nil
}

func keys(alg string) (*signingkey.Set, error) {
	res, err := signingkey.Advance(nil, time.Now(), signingkey.Policy{Algorithm: alg, RotationInterval: 720 * time.Hour,
		PublishAhead: time.Hour, RetainAfterRetire: 25 * time.Hour}, signingkey.Generate)
	if err != nil {
		return nil, err
	}
	return res.Set, nil
}

// serveTokenServer runs the real server with its audit log as JSON on stderr, and limits high
// enough that one client can be driven at full speed.
func serveTokenServer(ctx context.Context, ln net.Listener, set *signingkey.Set, cfg config) error {
	var audit io.Writer = os.Stderr
	if cfg.auditOut != "" {
		f, err := os.OpenFile(cfg.auditOut, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening the audit file: %w", err)
		}
		defer f.Close()
		audit = f
	}
	s, err := tokenserver.New(tokenserver.Options{
		Issuer: "http://" + ln.Addr().String(), Addr: ln.Addr().String(),
		RateLimit: 1e9, RateBurst: 1e9, Logger: zap.New(zap.WriteTo(os.Stderr)), AuditLog: audit,
	})
	if err != nil {
		return err
	}
	if err := s.SetKeys(set); err != nil {
		return err
	}
	var id, secret string
	lines := make([]string, 0, cfg.clients)
	for i := 0; i < cfg.clients; i++ {
		rec, sec, err := record(i)
		if err != nil {
			return err
		}
		if err := s.Index().Put(rec.UID, rec); err != nil {
			return err
		}
		id, secret = rec.ClientID, sec
		lines = append(lines, id+" "+secret)
	}
	if err := writeCredentials(cfg.credsOut, lines); err != nil {
		return err
	}
	s.MarkSynced()
	fmt.Printf("CLIENT_ID=%s CLIENT_SECRET=%s\n", id, secret)
	return s.Serve(ctx, ln)
}

func record(i int) (*credential.Record, string, error) {
	secret, err := credential.NewSecret()
	if err != nil {
		return nil, "", err
	}
	uid := hex.EncodeToString([]byte(fmt.Sprintf("bench-client-%08d", i)))
	return &credential.Record{
		Version: credential.RecordVersion, ClientID: credential.ClientIDFor(uid), Namespace: "bench", Name: fmt.Sprintf("client-%d", i),
		UID: uid, Method: "ClientSecret", Secrets: []credential.SecretHash{{SHA256: credential.HashSecret(secret).String()}},
		Grants: []credential.AudienceGrant{{Audience: "bench.bench", Scopes: []string{"bench:read", "bench:write"}}},
	}, secret, nil
}

// serveNoop answers every request with a constant after draining the body: no parsing, no
// hashing, no signing. Its latency is the measurement floor of hey over loopback on this machine.
func serveNoop(ctx context.Context, ln net.Listener, credsOut string) error {
	if err := writeCredentials(credsOut, []string{"noop noop"}); err != nil {
		return err
	}
	body := []byte(`{"access_token":"noop","token_type":"Bearer","expires_in":300}`)
	mux := http.NewServeMux()
	mux.HandleFunc(tokenserver.TokenPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Println("CLIENT_ID=noop CLIENT_SECRET=noop")
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// serveBaseline serves the baseline for one client: its credentials file holds that one line
// (the baseline has no index to exercise).
func serveBaseline(ctx context.Context, ln net.Listener, set *signingkey.Set, credsOut string) error {
	priv, err := set.Keys[0].PrivateKey()
	if err != nil {
		return err
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("the baseline signs ES256 only")
	}
	secret, err := credential.NewSecret()
	if err != nil {
		return err
	}
	const id = "m2mc_baseline"
	if err := writeCredentials(credsOut, []string{id + " " + secret}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(tokenserver.TokenPath, baseline.New(id, secret, ec, set.Keys[0].KID))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("CLIENT_ID=%s CLIENT_SECRET=%s\n", id, secret)
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
