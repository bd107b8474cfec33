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

package plugin

// decode TOKEN: header and claims, the signature verified against the issuer's JWKS (found
// through its RFC 8414 metadata by the verify module, as an API would), expiry in words.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/m2m-dev/m2m-operator/verify"
)

// maxTokenInput bounds what decode reads from stdin.
const maxTokenInput = 64 << 10

// decoded is what `decode -o json|yaml` prints (and `token` without --raw).
type decoded struct {
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
	// Verified: the signature verified against the issuer's JWKS, and typ, iss and the times
	// passed the checks an API makes (the audience is not checked: any audience is shown).
	Verified     bool   `json:"verified"`
	Verification string `json:"verification"`
	Expiry       string `json:"expiry,omitempty"`
}

func (r *root) decodeCommand() *cobra.Command {
	var issuer, caFile string
	cmd := &cobra.Command{
		Use:   "decode TOKEN|-",
		Short: "Print an access token's header and claims, verified against the issuer's JWKS, and its expiry in words",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := readTokenArg(args[0], r.streams.In)
			if err != nil {
				return err
			}
			hc, err := httpClient(nil, caFile)
			if err != nil {
				return err
			}
			d, verr := decodeAndVerify(cmd.Context(), tok, issuer, hc, time.Now())
			if d == nil {
				return verr
			}
			if ok, err := r.printStructured(d); ok {
				if err != nil {
					return err
				}
				return verr
			}
			printDecoded(r.streams.Out, d)
			return verr
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "the issuer whose JWKS must have signed the token (default: the token's iss claim)")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "PEM CA bundle to trust for the issuer's metadata and JWKS (the ca.crt of a credential Secret)")
	return cmd
}

// readTokenArg returns the token argument, or the first line of in for "-".
func readTokenArg(arg string, in io.Reader) (string, error) {
	if arg != "-" {
		return strings.TrimSpace(arg), nil
	}
	if in == nil {
		in = os.Stdin
	}
	line, err := bufio.NewReader(io.LimitReader(in, maxTokenInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", errors.New("no token on stdin")
	}
	return tok, nil
}

// parseCompact decodes the header and claims of a JWS compact serialization, unverified.
func parseCompact(tok string) (header, claims map[string]any, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a JWS compact token: %d dot-separated parts, want 3", len(parts))
	}
	if header, err = decodeSegment(parts[0]); err != nil {
		return nil, nil, fmt.Errorf("decoding the header: %w", err)
	}
	if claims, err = decodeSegment(parts[1]); err != nil {
		return nil, nil, fmt.Errorf("decoding the claims: %w", err)
	}
	return header, claims, nil
}

func decodeSegment(seg string) (map[string]any, error) {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("not base64url: %w", err)
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if out == nil { // "null" decodes without an error
		return nil, errors.New("not a JSON object: null")
	}
	return out, nil
}

// decodeAndVerify decodes the token and verifies it with the verify module against issuer
// (default: its iss). It returns the decoded token (nil when it does not even decode) and,
// when verification fails, an error that says why.
func decodeAndVerify(ctx context.Context, tok, issuer string, hc *http.Client, now time.Time) (*decoded, error) {
	header, claims, err := parseCompact(tok)
	if err != nil {
		return nil, err
	}
	d := &decoded{Header: header, Claims: claims, Expiry: expiryWords(claims, now)}
	if issuer == "" {
		issuer, _ = claims["iss"].(string)
	}
	if issuer == "" {
		d.Verification = "not verified: the token has no iss claim and --issuer is not set"
		return d, errors.New(d.Verification)
	}
	v, err := verify.New(ctx, issuer, "", verify.WithAnyAudience(), verify.WithHTTPClient(hc))
	if err != nil {
		d.Verification = fmt.Sprintf("not verified: the JWKS of issuer %s could not be fetched: %v", issuer, err)
		return d, errors.New(d.Verification)
	}
	_, err = v.Verify(ctx, tok)
	switch {
	case err == nil:
		d.Verified = true
		d.Verification = fmt.Sprintf("signature verified against the JWKS of issuer %s", issuer)
		return d, nil
	case errors.Is(err, verify.ErrExpired), errors.Is(err, verify.ErrNotYetValid):
		// verify checks the times after the signature: the signature is good.
		d.Verification = fmt.Sprintf("signature verified against the JWKS of issuer %s, but %v", issuer, err)
		return d, errors.New(d.Verification)
	}
	d.Verification = fmt.Sprintf("NOT verified against the JWKS of issuer %s: %v", issuer, err)
	return d, fmt.Errorf("the token does not verify: %w", err)
}

// expiryWords says when exp is, relative to now.
func expiryWords(claims map[string]any, now time.Time) string {
	exp, ok := claimTime(claims, "exp")
	if !ok {
		return "no exp claim"
	}
	left := exp.Sub(now).Round(time.Second)
	at := exp.UTC().Format(time.RFC3339)
	if left > 0 {
		return fmt.Sprintf("expires in %s (at %s)", left, at)
	}
	return fmt.Sprintf("expired %s ago (at %s)", -left, at)
}

func claimTime(claims map[string]any, name string) (time.Time, bool) {
	n, ok := claims[name].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	secs, err := n.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

func printDecoded(w io.Writer, d *decoded) {
	fprintf(w, "header:\n")
	printMap(w, d.Header, nil)
	fprintf(w, "claims:\n")
	printMap(w, d.Claims, func(name string) string {
		if t, ok := claimTime(d.Claims, name); ok && (name == "exp" || name == "iat" || name == "nbf") {
			return " (" + t.UTC().Format(time.RFC3339) + ")"
		}
		return ""
	})
	fprintf(w, "expiry: %s\n", d.Expiry)
	fprintf(w, "signature: %s\n", d.Verification)
}

func printMap(w io.Writer, m map[string]any, note func(string) string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var val string
		if s, ok := m[k].(string); ok {
			val = s
		} else {
			b, _ := json.Marshal(m[k])
			val = string(b)
		}
		extra := ""
		if note != nil {
			extra = note(k)
		}
		fprintf(w, "  %s: %s%s\n", k, val, extra)
	}
}
