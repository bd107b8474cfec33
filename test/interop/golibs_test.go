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

package interop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// metadata is what the suite reads from a discovery document.
type metadata struct {
	Issuer        string   `json:"issuer"`
	TokenEndpoint string   `json:"token_endpoint"`
	JWKSURI       string   `json:"jwks_uri"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
	AuthAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// goLibraries: discovery with go-oidc and RFC 8414; tokens with x/oauth2 (client_secret_basic,
// client_secret_post, private_key_jwt signed by jwx with ES256, RS256 and Ed25519 keys);
// RFC 9068 verification with go-oidc's default verifier, golang-jwt + keyfunc and jwx; RFC 6749
// §5.2 errors as x/oauth2 RetrieveErrors.
func goLibraries(t *testing.T, s *system) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, s.Issuer) // /.well-known/openid-configuration
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	var oidcMD, asMD metadata
	if err := provider.Claims(&oidcMD); err != nil {
		t.Fatal(err)
	}
	getJSON(t, s.asMetadata, &asMD)
	t.Run("discovery through both metadata documents", func(t *testing.T) {
		for name, md := range map[string]metadata{"openid-configuration": oidcMD, "oauth-authorization-server": asMD} {
			if md.Issuer != s.Issuer || md.TokenEndpoint != s.Issuer+"/oauth2/token" || md.JWKSURI != s.Issuer+"/.well-known/jwks.json" {
				t.Errorf("%s: %+v", name, md)
			}
			if len(md.SigningAlgs) == 0 || md.SigningAlgs[0] != s.alg || !slices.Contains(md.SigningAlgs, "RS256") {
				t.Errorf("%s: id_token_signing_alg_values_supported %v, want %s first and RS256", name, md.SigningAlgs, s.alg)
			}
			if !slices.Contains(md.AuthAlgs, "Ed25519") || !slices.Contains(md.AuthAlgs, "EdDSA") {
				t.Errorf("%s: token_endpoint_auth_signing_alg_values_supported %v lacks Ed25519 or EdDSA", name, md.AuthAlgs)
			}
			if len(md.ResponseTypes) == 0 || !slices.Equal(md.SubjectTypes, []string{"public"}) {
				t.Errorf("%s: response_types_supported %v, subject_types_supported %v", name, md.ResponseTypes, md.SubjectTypes)
			}
		}
		if provider.Endpoint().TokenURL != asMD.TokenEndpoint {
			t.Errorf("go-oidc token endpoint %s, RFC 8414 %s", provider.Endpoint().TokenURL, asMD.TokenEndpoint)
		}
	})

	tokens := map[string]string{}
	t.Run("x/oauth2 client_secret_basic and client_secret_post", func(t *testing.T) {
		for name, style := range map[string]oauth2.AuthStyle{"client_secret_basic": oauth2.AuthStyleInHeader, "client_secret_post": oauth2.AuthStyleInParams} {
			cfg := clientcredentials.Config{ClientID: s.basic.ClientID, ClientSecret: s.basic.ClientSecret,
				TokenURL: asMD.TokenEndpoint, Scopes: []string{scopeR}, AuthStyle: style}
			tok, err := cfg.Token(ctx)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tokens[name] = tok.AccessToken
		}
	})
	t.Run("x/oauth2 private_key_jwt signed by jwx (ES256, RS256, Ed25519 keys)", func(t *testing.T) {
		for _, k := range s.keys {
			tok, err := assertionConfig(asMD.TokenEndpoint, signAssertion(t, k, s.Issuer, time.Minute)).Token(ctx)
			if err != nil {
				t.Errorf("%s key: %v", k.Alg, err)
				continue
			}
			tokens["private_key_jwt "+k.Alg] = tok.AccessToken
		}
	})
	t.Run("an assertion that lives 1 hour (Authlib's exp = iat + 3600)", func(t *testing.T) {
		if _, err := assertionConfig(asMD.TokenEndpoint, signAssertion(t, s.keys[0], s.Issuer, time.Hour)).Token(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if tokens["client_secret_basic"] == "" {
		t.Fatal("no token issued: nothing to verify")
	}

	t.Run("RFC 9068 verification: go-oidc's default verifier (discovery's algorithms)", func(t *testing.T) {
		v := provider.Verifier(&oidc.Config{ClientID: audience})
		for name, raw := range tokens {
			tok, err := v.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("%s token: %v", name, err)
			}
			if tok.Subject == "" {
				t.Errorf("%s token: no sub", name)
			}
		}
	})
	t.Run("RFC 9068 verification: golang-jwt v5 + keyfunc v3", func(t *testing.T) {
		k, err := keyfunc.NewDefaultCtx(ctx, []string{asMD.JWKSURI})
		if err != nil {
			t.Fatal(err)
		}
		for name, raw := range tokens {
			tok, err := gojwt.Parse(raw, k.Keyfunc, gojwt.WithValidMethods([]string{s.alg}), gojwt.WithIssuer(s.Issuer),
				gojwt.WithAudience(audience), gojwt.WithExpirationRequired(), gojwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("%s token: %v", name, err)
			}
			if tok.Header["typ"] != "at+jwt" {
				t.Errorf("%s token: typ %v", name, tok.Header["typ"])
			}
		}
		if _, err := gojwt.Parse(tokens["client_secret_basic"], k.Keyfunc, gojwt.WithAudience("other.interop")); err == nil {
			t.Error("golang-jwt accepted a token for another audience")
		}
	})
	t.Run("RFC 9068 verification: jwx v3", func(t *testing.T) {
		set, err := jwk.Fetch(ctx, asMD.JWKSURI)
		if err != nil {
			t.Fatal(err)
		}
		for name, raw := range tokens {
			if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithIssuer(s.Issuer), jwt.WithAudience(audience), jwt.WithValidate(true)); err != nil {
				t.Fatalf("%s token: %v", name, err)
			}
			msg, err := jws.Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			hdr := msg.Signatures()[0].ProtectedHeaders()
			typ, _ := hdr.Type()
			alg, _ := hdr.Algorithm()
			if typ != "at+jwt" || alg.String() != s.alg {
				t.Errorf("%s token: typ %q alg %q", name, typ, alg)
			}
		}
		if _, err := jwt.Parse([]byte(tokens["client_secret_basic"]), jwt.WithKeySet(set), jwt.WithAudience("other.interop"), jwt.WithValidate(true)); err == nil {
			t.Error("jwx accepted a token for another audience")
		}
	})

	t.Run("RFC 6749 §5.2 errors as x/oauth2 RetrieveErrors", func(t *testing.T) {
		basic := func(id, secret string, style oauth2.AuthStyle, scopes []string, params url.Values) error {
			cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: asMD.TokenEndpoint, Scopes: scopes, AuthStyle: style, EndpointParams: params}
			_, err := cfg.Token(ctx)
			return err
		}
		stranger := s.keys[0]
		stranger.priv = newPrivateKey(t, stranger.Alg) // same kid, a key the client does not have
		for _, c := range []struct {
			name      string
			err       error
			code      string
			status    int
			challenge bool
		}{
			{"wrong secret, client_secret_basic", basic(s.basic.ClientID, s.basic.ClientSecret+"x", oauth2.AuthStyleInHeader, nil, nil), "invalid_client", 401, true},
			{"wrong secret, client_secret_post", basic(s.basic.ClientID, s.basic.ClientSecret+"x", oauth2.AuthStyleInParams, nil, nil), "invalid_client", 400, false},
			{"assertion signed by another key", func() error {
				_, err := assertionConfig(asMD.TokenEndpoint, signAssertion(t, stranger, s.Issuer, time.Minute)).Token(ctx)
				return err
			}(), "invalid_client", 400, false},
			{"a scope not granted", basic(s.basic.ClientID, s.basic.ClientSecret, oauth2.AuthStyleInHeader, []string{"things:delete"}, nil), "invalid_scope", 400, false},
			{"an audience not granted", basic(s.basic.ClientID, s.basic.ClientSecret, oauth2.AuthStyleInHeader, nil, url.Values{"audience": {"other.interop"}}), "invalid_target", 400, false},
			{"a client granted nothing", basic(s.nothing.ClientID, s.nothing.ClientSecret, oauth2.AuthStyleInParams, nil, nil), "invalid_scope", 400, false},
			{"a client granted nothing naming an audience", basic(s.nothing.ClientID, s.nothing.ClientSecret, oauth2.AuthStyleInParams, nil, url.Values{"resource": {audience}}), "invalid_target", 400, false},
		} {
			var re *oauth2.RetrieveError
			if !errors.As(c.err, &re) {
				t.Errorf("%s: %v is not a RetrieveError", c.name, c.err)
				continue
			}
			challenge := re.Response.Header.Get("WWW-Authenticate") != ""
			if re.ErrorCode != c.code || re.Response.StatusCode != c.status || challenge != c.challenge {
				t.Errorf("%s: %s %d (WWW-Authenticate %v), want %s %d (%v)", c.name, re.ErrorCode, re.Response.StatusCode, challenge, c.code, c.status, c.challenge)
			}
		}
	})
}

// assertionConfig is an x/oauth2 client credentials configuration that authenticates with a
// client assertion (x/oauth2 has no private_key_jwt of its own: the assertion goes in the body).
func assertionConfig(tokenURL, assertion string) *clientcredentials.Config {
	return &clientcredentials.Config{TokenURL: tokenURL, Scopes: []string{scopeR}, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion}}}
}

// signAssertion signs an RFC 7523 client assertion with jwx: iss = sub = the client id, aud the
// issuer, a fresh jti, exp lifetime ahead. Ed25519 keys sign with RFC 9864's "Ed25519".
func signAssertion(t *testing.T, k keyClient, issuer string, lifetime time.Duration) string {
	t.Helper()
	key, err := jwk.Import(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, k.KID); err != nil {
		t.Fatal(err)
	}
	alg := map[string]jwa.SignatureAlgorithm{"ES256": jwa.ES256(), "RS256": jwa.RS256(), "Ed25519": jwa.EdDSAEd25519()}[k.Alg]
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(k.ClientID).Subject(k.ClientID).Audience([]string{issuer}).
		IssuedAt(now).Expiration(now.Add(lifetime)).JwtID(randomID()).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatalf("jwx signing with %s: %v", alg, err)
	}
	return string(signed)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
