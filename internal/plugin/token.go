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

// token CLIENT: a token as that client, for debugging. The credentials are the client's own:
// the client secret of its credential Secret, a ServiceAccount token through TokenRequest, or
// an assertion signed with --key-file. Nothing secret is printed but the access token itself.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/clientassertion"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// maxTokenResponse bounds the token endpoint's answer.
	maxTokenResponse = 1 << 20
	// assertionTTL is the lifetime of the ServiceAccount token or assertion sent.
	assertionTTL = 10 * time.Minute
)

type tokenFlags struct {
	audience, scope, tokenURL, issuer, caFile, keyFile string
	raw                                                bool
}

func (r *root) tokenCommand() *cobra.Command {
	f := &tokenFlags{}
	cmd := &cobra.Command{
		Use:   "token CLIENT",
		Short: "Fetch an access token as the M2MClient (its client secret, a ServiceAccount token, or --key-file) and print it decoded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, ep, err := r.fetchToken(cmd.Context(), args[0], f)
			if err != nil {
				return err
			}
			if f.raw {
				fprintf(r.streams.Out, "%s\n", tok)
				return nil
			}
			d, _ := decodeAndVerify(cmd.Context(), tok, ep.issuer, ep.http, time.Now())
			if d == nil {
				return errors.New("the token endpoint answered a token that does not decode")
			}
			if ok, err := r.printStructured(d); ok {
				return err
			}
			printDecoded(r.streams.Out, d)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.audience, "audience", "", "the audience to ask for (default: the credential Secret's audience key)")
	cmd.Flags().StringVar(&f.scope, "scope", "", "space-separated scopes to ask for (default: every scope granted for the audience)")
	cmd.Flags().StringVar(&f.tokenURL, "token-url", "", "the token endpoint (default: the credential Secret's token_url)")
	cmd.Flags().StringVar(&f.issuer, "issuer", "", "the token server's issuer (default: the credential Secret's issuer)")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to trust for the token server (default: the credential Secret's ca.crt)")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "PrivateKeyJWT clients: the private key (PEM, PKCS#8) to sign the client assertion with")
	cmd.Flags().BoolVar(&f.raw, "raw", false, "print only the access token")
	return cmd
}

// endpoint is where and how to reach the token server.
type endpoint struct {
	tokenURL, issuer, clientID string
	http                       *http.Client
}

// fetchToken authenticates as the client by its method and returns the access token.
func (r *root) fetchToken(ctx context.Context, name string, f *tokenFlags) (string, *endpoint, error) {
	c, err := r.client()
	if err != nil {
		return "", nil, err
	}
	ns, err := r.namespace()
	if err != nil {
		return "", nil, err
	}
	m := &authv1alpha1.M2MClient{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		return "", nil, describeAPIError(fmt.Sprintf("reading M2MClient %s/%s", ns, name), err)
	}
	method := m.Spec.EffectiveMethod()
	sec, secErr := credentialSecret(ctx, c, m)
	if secErr != nil && method == authv1alpha1.AuthClientSecret {
		return "", nil, fmt.Errorf("%w: a ClientSecret client's token needs its client secret (get on secrets in namespace %s)", secErr, ns)
	}
	ep, err := endpointFor(m, sec, f)
	if err != nil {
		return "", nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	aud := f.audience
	if aud == "" && sec != nil {
		aud = string(sec.Data[authv1alpha1.CredentialKeyAudience])
	}
	if aud != "" {
		form.Set("audience", aud)
	}
	if f.scope != "" {
		form.Set("scope", f.scope)
	}
	req, err := r.authenticate(ctx, c, m, sec, ep, f, form)
	if err != nil {
		return "", nil, err
	}
	tok, err := postToken(ctx, ep, req, form)
	return tok, ep, err
}

// credentialSecret reads the client's credential Secret (status.secretName, else the spec's).
func credentialSecret(ctx context.Context, c client.Client, m *authv1alpha1.M2MClient) (*corev1.Secret, error) {
	name := m.Status.SecretName
	if name == "" {
		name = m.Spec.SecretName
	}
	if name == "" {
		name = m.Name + "-m2m"
	}
	sec := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: name}, sec); err != nil {
		return nil, describeAPIError(fmt.Sprintf("reading credential Secret %s/%s", m.Namespace, name), err)
	}
	return sec, nil
}

// endpointFor takes the token URL, issuer, CA and client id from the flags, else the Secret.
func endpointFor(m *authv1alpha1.M2MClient, sec *corev1.Secret, f *tokenFlags) (*endpoint, error) {
	key := func(k string) string {
		if sec == nil {
			return ""
		}
		return string(sec.Data[k])
	}
	ep := &endpoint{tokenURL: f.tokenURL, issuer: f.issuer, clientID: key(authv1alpha1.CredentialKeyClientID)}
	if ep.tokenURL == "" {
		ep.tokenURL = key(authv1alpha1.CredentialKeyTokenURL)
	}
	if ep.issuer == "" {
		ep.issuer = key(authv1alpha1.CredentialKeyIssuer)
	}
	if ep.clientID == "" {
		ep.clientID = m.Status.ClientID
	}
	switch {
	case ep.tokenURL == "":
		return nil, errors.New("no token endpoint: the credential Secret is unreadable or lacks token_url; pass --token-url")
	case ep.issuer == "":
		return nil, errors.New("no issuer: the credential Secret is unreadable or lacks issuer; pass --issuer")
	case ep.clientID == "":
		return nil, errors.New("the client has no client id yet (status.clientID is empty)")
	}
	var err error
	ep.http, err = httpClient([]byte(key(authv1alpha1.CredentialKeyCACert)), f.caFile)
	return ep, err
}

// httpClient trusts caPEM, or the PEM file caFile, or the system roots when both are empty.
func httpClient(caPEM []byte, caFile string) (*http.Client, error) {
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading --ca-file: %w", err)
		}
		caPEM = b
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// authenticate adds the client's credentials to form, or returns the Basic credentials.
func (r *root) authenticate(ctx context.Context, c client.Client, m *authv1alpha1.M2MClient, sec *corev1.Secret, ep *endpoint, f *tokenFlags, form url.Values) (*basicAuth, error) {
	switch m.Spec.EffectiveMethod() {
	case authv1alpha1.AuthServiceAccount:
		tok, err := serviceAccountToken(ctx, c, m, ep.issuer)
		if err != nil {
			return nil, err
		}
		form.Set("client_assertion_type", assertionType)
		form.Set("client_assertion", tok)
		form.Set("client_id", ep.clientID)
		return nil, nil
	case authv1alpha1.AuthPrivateKeyJWT:
		if f.keyFile == "" {
			return nil, errors.New("a PrivateKeyJWT client signs its assertion with its private key: pass --key-file")
		}
		a, err := clientassertion.SignFile(f.keyFile, ep.clientID, ep.issuer, time.Now(), 2*time.Minute)
		if err != nil {
			return nil, err
		}
		form.Set("client_assertion_type", assertionType)
		form.Set("client_assertion", a)
		return nil, nil
	}
	secret := string(sec.Data[authv1alpha1.CredentialKeyClientSecret])
	if secret == "" {
		return nil, fmt.Errorf("credential Secret %s/%s holds no client_secret yet", sec.Namespace, sec.Name)
	}
	return &basicAuth{id: ep.clientID, secret: secret}, nil
}

type basicAuth struct{ id, secret string }

// serviceAccountToken asks the API server for a token of the client's ServiceAccount with the
// token server's issuer as audience (what a pod's projected token holds).
func serviceAccountToken(ctx context.Context, c client.Client, m *authv1alpha1.M2MClient, issuer string) (string, error) {
	saName := ""
	if m.Spec.Authentication != nil {
		saName = m.Spec.Authentication.ServiceAccountName
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: saName}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{issuer}, ExpirationSeconds: ptr.To(int64(assertionTTL.Seconds())),
	}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", describeAPIError(fmt.Sprintf("requesting a token of ServiceAccount %s/%s (create on serviceaccounts/token)", m.Namespace, saName), err)
	}
	return tr.Status.Token, nil
}

// postToken sends the token request and returns the access token, or the endpoint's RFC 6749
// §5.2 error.
func postToken(ctx context.Context, ep *endpoint, basic *basicAuth, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("building the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		// RFC 6749 §2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(basic.id), url.QueryEscape(basic.secret))
	}
	resp, err := ep.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("calling the token endpoint %s: %w", ep.tokenURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return "", fmt.Errorf("reading the token response: %w", err)
	}
	var tr struct {
		AccessToken      string `json:"access_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("the token endpoint answered %s, not JSON", resp.Status)
	}
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return "", fmt.Errorf("the token endpoint refused: %s: %s (kubectl m2m explain says why a scope is not granted)", tr.Error, tr.ErrorDescription)
	}
	return tr.AccessToken, nil
}
