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
	"crypto/ecdsa"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/m2m-dev/m2m-operator/hack/bench/baseline"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

// discardWriter is a reusable ResponseWriter that keeps only the status. Like the
// ResponseWriter of a real connection it accepts read deadlines (http.ResponseController), so
// that the benchmark measures the server's work and not the error a writer without deadlines
// answers.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) SetReadDeadline(time.Time) error { return nil }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// rewindBody is a request body that can be read again.
type rewindBody struct {
	b   []byte
	off int
}

func (r *rewindBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}
func (r *rewindBody) Close() error { return nil }

// benchRequest serves the same token request b.N times through handler.
func benchRequest(b *testing.B, handler http.Handler, auth string) {
	benchRequestWith(b, handler, auth, nil)
}

// benchRequestWith is benchRequest with a fresh DPoP proof per request, when proof is set
// (signed with the timer stopped: the client's cost, not the server's).
func benchRequestWith(b *testing.B, handler http.Handler, auth string, proof func() string) {
	body := &rewindBody{b: []byte("grant_type=client_credentials")}
	r, _ := http.NewRequest(http.MethodPost, TokenPath, body)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", auth)
	r.ContentLength = int64(len(body.b))
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if proof != nil {
			b.StopTimer()
			r.Header["Dpop"] = []string{proof()}
			b.StartTimer()
		}
		body.off = 0
		clear(w.h)
		w.code = 200
		handler.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

func benchServer(b *testing.B, alg string, logger logr.Logger, mut ...func(*Options)) (*testServer, string) {
	ts := newTestServer(b, append([]func(*Options){func(o *Options) { o.Logger = logger; o.Clock = time.Now }}, mut...)...)
	if err := ts.SetKeys(activeKeySet(b, alg, time.Now())); err != nil {
		b.Fatal(err)
	}
	id, secret := ts.addClient(b)
	return ts, basicAuth(id, secret)
}

// BenchmarkTokenHandler is the whole token endpoint in process (no network): parse,
// authenticate, authorise, sign, write; audit log discarded or written as JSON by zap.
func BenchmarkTokenHandler(b *testing.B) {
	for _, alg := range []string{signingkey.ES256, signingkey.EdDSA, signingkey.RS256} {
		b.Run(alg, func(b *testing.B) {
			ts, auth := benchServer(b, alg, logr.Discard())
			benchRequest(b, ts.Handler(), auth)
		})
	}
	b.Run("ES256/audit-to-file", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "audit.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		ts, auth := benchServer(b, signingkey.ES256, logr.Discard(), func(o *Options) { o.AuditLog = f })
		benchRequest(b, ts.Handler(), auth)
	})
	// A DPoP-bound token: the proof's ES256 verification and thumbprint come on top of the
	// signature.
	b.Run("ES256/DPoP", func(b *testing.B) {
		ts, auth := benchServer(b, signingkey.ES256, logr.Discard())
		s := newProofSigner(b)
		benchRequestWith(b, ts.Handler(), auth, func() string { return proof(b, s, "POST", testTokenURL, "", time.Now()) })
	})
}

// BenchmarkBaselineHandler is the minimal handler the token server is compared with.
func BenchmarkBaselineHandler(b *testing.B) {
	set := activeKeySet(b, signingkey.ES256, time.Now())
	priv, err := set.Keys[0].PrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	h := baseline.New("m2mc_bench", "m2ms_secret", priv.(*ecdsa.PrivateKey), set.Keys[0].KID)
	benchRequest(b, h, basicAuth("m2mc_bench", "m2ms_secret"))
}

// BenchmarkSign compares signing the same RFC 9068 token by hand (cached header, hand-built
// payload, raw R||S) with go-jose's JWT builder.
func BenchmarkSign(b *testing.B) {
	set := activeKeySet(b, signingkey.ES256, time.Now())
	k := &set.Keys[0]
	priv, err := k.PrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("by-hand", func(b *testing.B) {
		ts, _ := benchServer(b, signingkey.ES256, logr.Discard())
		if err := ts.SetKeys(set); err != nil {
			b.Fatal(err)
		}
		rec, _ := newRecord(b)
		c, err := ts.Index().compile(rec)
		if err != nil {
			b.Fatal(err)
		}
		st := &reqState{}
		sig := ts.keys.Load().active
		scope := []byte("invoices:read invoices:write")
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			clear(w.h)
			if err := ts.writeToken(w, st, sig, c, c.audiences[0], scope, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-jose", func(b *testing.B) {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: k.KID}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			b.Fatal(err)
		}
		type claims struct {
			jwt.Claims
			ClientID  string `json:"client_id"`
			Scope     string `json:"scope"`
			Namespace string `json:"namespace"`
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			now := time.Now()
			c := claims{Claims: jwt.Claims{Issuer: testIssuer, Subject: "m2mc_x", Audience: jwt.Audience{audBilling},
				Expiry: jwt.NewNumericDate(now.Add(15 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: "jti"},
				ClientID: "m2mc_x", Scope: "invoices:read invoices:write", Namespace: "payments"}
			if _, err := jwt.Signed(signer).Claims(c).Serialize(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchForm serves the same form request b.N times through handler (auth may be empty).
func benchForm(b *testing.B, handler http.Handler, form, auth string) {
	body := &rewindBody{b: []byte(form)}
	r, _ := http.NewRequest(http.MethodPost, TokenPath, body)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.ContentLength = int64(len(body.b))
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body.off = 0
		clear(w.h)
		w.code = 200
		handler.ServeHTTP(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkServiceAccountToken compares, on one token server fed by a real API server
// (envtest), a token request authenticated by a projected ServiceAccount token (after the
// first use: signature checked and TokenReview answered once, then cached) with one
// authenticated by a client secret. The goal: ServiceAccount ≤ 2× ClientSecret.
func BenchmarkServiceAccountToken(b *testing.B) {
	f := newSAFixture(b)
	f.serviceAccount(b, f.ns, "robot")
	f.bind(b, f.ns, "robot")
	rec, secret := newRecord(b)
	f.putRecord(b, rec)
	NewWithT(b).Eventually(func() bool { return f.Index().Lookup(rec.ClientID) }).WithTimeout(5 * time.Second).Should(BeTrue())
	tok := f.token(b, f.ns, "robot", f.url)
	form := assertionForm(tok).Encode()
	if code, _ := f.exchange(b, tok); code != 200 {
		b.Fatalf("first use: %d", code)
	}
	b.Run("ClientSecret", func(b *testing.B) {
		benchForm(b, f.Handler(), "grant_type=client_credentials", basicAuth(rec.ClientID, secret))
	})
	b.Run("ServiceAccount", func(b *testing.B) {
		benchForm(b, f.Handler(), form, "")
	})
}

// BenchmarkPrivateKeyJWTToken is a token request authenticated by a fresh private_key_jwt
// assertion (a new jti each time, signed before the timer starts): parse the assertion, check
// its signature against the client's key and its claims, remember its jti, then issue.
func BenchmarkPrivateKeyJWTToken(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256} {
		b.Run(string(alg), func(b *testing.B) {
			ts, _ := benchServer(b, signingkey.ES256, logr.Discard())
			key := newClientKey(b, alg, "k1")
			id := ts.addKeyClient(b, key)
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = []byte(assertionForm(key.sign(b, assertionClaimsFor(id, time.Now()))).Encode())
			}
			body := &rewindBody{}
			r, _ := http.NewRequest(http.MethodPost, TokenPath, body)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := &discardWriter{h: http.Header{}}
			h := ts.Handler()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body.b, body.off = bodies[i], 0
				r.ContentLength = int64(len(body.b))
				clear(w.h)
				w.code = 200
				h.ServeHTTP(w, r)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
