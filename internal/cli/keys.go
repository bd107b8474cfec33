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

package cli

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/clientassertion"

	jose "github.com/go-jose/go-jose/v4"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// Files written by `m2m keygen`.
const (
	privateKeyFile = "private.pem"
	publicJWKSFile = "jwks.json"
)

type keygenFlags struct {
	out string
	alg string
}

// keygenFlagSet is the flag set of `m2m keygen`.
func keygenFlagSet() (*flag.FlagSet, *keygenFlags) {
	fs := newFlagSet("keygen", "Generates a key pair for a PrivateKeyJWT client: <out>/private.pem (PKCS#8, mode 0600; keep it\nwith the client) and <out>/jwks.json (the public JWKS to declare in the M2MClient, or in a\nConfigMap named by spec.authentication.jwksFrom). The kid is the key's RFC 7638 thumbprint.")
	f := &keygenFlags{}
	fs.StringVar(&f.out, "out", "", "directory to write private.pem and jwks.json into (created; existing files are not overwritten)")
	fs.StringVar(&f.alg, "alg", signingkey.ES256, "key algorithm: ES256 (EC P-256), EdDSA (Ed25519) or RS256 (RSA 2048)")
	return fs, f
}

func runKeygen(_ context.Context, args []string) error {
	fs, f := keygenFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.out == "" {
		return errors.New("--out is required")
	}
	return keygen(f.out, f.alg, os.Stdout)
}

// keygen writes a new private key and its public JWKS into dir.
func keygen(dir, alg string, out io.Writer) error {
	k, err := signingkey.Generate(alg)
	if err != nil {
		return err
	}
	priv, err := k.PrivateKey()
	if err != nil {
		return err
	}
	jwks, err := publicJWKS(priv.Public(), k.KID, alg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := writeNew(filepath.Join(dir, privateKeyFile), []byte(k.PrivateKeyPEM), 0o600); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, publicJWKSFile), jwks, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: private key (keep it secret)\n%s: public JWKS, kid %s\n",
		filepath.Join(dir, privateKeyFile), filepath.Join(dir, publicJWKSFile), k.KID)
	return nil
}

// publicJWKS is the JWKS document of one public key.
func publicJWKS(pub crypto.PublicKey, kid, alg string) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding the public JWKS: %w", err)
	}
	return append(b, '\n'), nil
}

// writeNew writes a file that must not exist yet: a key is never overwritten by accident.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

type assertionFlags struct {
	key         string
	credentials string
	clientID    string
	audience    string
	ttl         time.Duration
}

// assertionFlagSet is the flag set of `m2m assertion`.
func assertionFlagSet() (*flag.FlagSet, *assertionFlags) {
	fs := newFlagSet("assertion", "Prints an RFC 7523 client assertion for a PrivateKeyJWT client, to send as client_assertion:\na JWT signed with the private key (ES256, EdDSA or RS256 by its type; kid = its thumbprint),\niss = sub = the client id, aud = the token server's issuer, a fresh jti, exp = now + --ttl.")
	f := &assertionFlags{}
	fs.StringVar(&f.key, "key", "", "the private key (PEM, PKCS#8), e.g. written by m2m keygen")
	fs.StringVar(&f.credentials, "credentials", "", "a credential directory (a mounted credential Secret, or what m2m dev writes): client_id and issuer are read from it")
	fs.StringVar(&f.clientID, "client-id", "", "the client id (instead of --credentials)")
	fs.StringVar(&f.audience, "audience", "", "the token server's issuer (instead of --credentials)")
	fs.DurationVar(&f.ttl, "ttl", 2*time.Minute, "lifetime of the assertion (keep it short: a copy can be replayed to another replica until it expires)")
	return fs, f
}

func runAssertion(_ context.Context, args []string) error {
	fs, f := assertionFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := buildAssertion(f, time.Now())
	if err != nil {
		return err
	}
	fmt.Println(a)
	return nil
}

// buildAssertion signs the assertion the flags describe.
func buildAssertion(f *assertionFlags, now time.Time) (string, error) {
	if f.key == "" {
		return "", errors.New("--key is required")
	}
	id, aud := f.clientID, f.audience
	if f.credentials != "" {
		var err error
		if id == "" {
			if id, err = readCredential(f.credentials, authv1alpha1.CredentialKeyClientID); err != nil {
				return "", err
			}
		}
		if aud == "" {
			if aud, err = readCredential(f.credentials, "issuer"); err != nil {
				return "", err
			}
		}
	}
	if id == "" || aud == "" {
		return "", errors.New("the client id and audience are needed: --credentials, or --client-id and --audience")
	}
	return clientassertion.SignFile(f.key, id, aud, now, f.ttl)
}

func readCredential(dir, key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		return "", fmt.Errorf("reading credential %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}
