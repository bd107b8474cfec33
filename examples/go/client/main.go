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

// Command client calls the billing API with an access token from the token server, as a
// workload with a mounted credential Secret does. It reads the credentials from a directory
// that holds the Secret's keys as files: in a pod, the Secret's mount; with `make dev`,
// .dev/credentials/<namespace>/<name> (m2m dev keeps it up to date like a mount).
//
//	go run ./examples/go/client                     # as payments/billing-worker, against make dev
//	go run ./examples/go/client -credentials /var/run/secrets/m2m -api https://billing.billing.svc
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	dir := flag.String("credentials", envOr("M2M_CREDENTIALS", ".dev/credentials/payments/billing-worker"), "directory holding the credential Secret's keys as files")
	api := flag.String("api", envOr("BILLING_API", "http://127.0.0.1:8081"), "base URL of the billing API")
	flag.Parse()
	if err := run(context.Background(), *dir, *api+"/invoices", os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir, target string, out io.Writer) error {
	hc, err := tokenServerClient(dir)
	if err != nil {
		return err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc) // used for the token requests
	// Cached and refreshed before expiry; every refresh reads the files again.
	ts := oauth2.ReuseTokenSource(nil, &fileTokenSource{ctx: ctx, dir: dir})
	resp, err := get(ctx, ts, target)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		// The API refused a token that was valid when cached: drop it and retry once.
		resp.Body.Close()
		ts = oauth2.ReuseTokenSource(nil, &fileTokenSource{ctx: ctx, dir: dir})
		resp, err = get(ctx, ts, target)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(out, "%s %s\n%s", resp.Status, target, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return nil
}

func get(ctx context.Context, ts oauth2.TokenSource, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	// The API is plain HTTP here; give oauth2.Transport a Base that trusts its CA if it is HTTPS.
	return (&http.Client{Transport: &oauth2.Transport{Source: ts}}).Do(req)
}

// fileTokenSource gets each token with the credentials as they are on disk now, so that a
// rotated secret is used as soon as the mount (or m2m dev) has the new one: never keep the
// secret read at start-up.
type fileTokenSource struct {
	ctx context.Context
	dir string
}

func (s *fileTokenSource) Token() (*oauth2.Token, error) {
	var v [4]string
	for i, key := range []string{"client_id", "client_secret", "token_url", "audience"} {
		var err error
		if v[i], err = readKey(s.dir, key); err != nil {
			return nil, err
		}
	}
	cfg := clientcredentials.Config{
		ClientID: v[0], ClientSecret: v[1], TokenURL: v[2],
		AuthStyle:      oauth2.AuthStyleInHeader, // client_secret_basic
		EndpointParams: url.Values{"audience": {v[3]}},
	}
	return cfg.Token(s.ctx)
}

func readKey(dir, key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		return "", fmt.Errorf("reading credential %s: %w", key, err) // names the file, never its content
	}
	return strings.TrimSpace(string(b)), nil
}

// tokenServerClient trusts the token server's CA when the Secret carries one (in a cluster);
// m2m dev serves plain HTTP on loopback and writes no ca.crt.
func tokenServerClient(dir string) (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if errors.Is(err, fs.ErrNotExist) {
		return http.DefaultClient, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ca.crt: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("ca.crt holds no certificate")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
