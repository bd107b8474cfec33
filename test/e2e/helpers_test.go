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

package e2e

// What a user or a pod does, as small helpers: apply YAML files, wait for an object to be
// ready, mount a Secret as files, fetch tokens with x/oauth2, call an API.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// fieldManager is the server-side apply field manager, as `kubectl apply --server-side` uses.
const fieldManager = client.FieldOwner("kubectl")

// applyFiles server-side applies every object of every file, in order, like
// `kubectl apply --server-side -f file...`. Paths are relative to the repository root.
func applyFiles(ctx context.Context, paths ...string) {
	applyFilesAs(ctx, k8s, paths...)
}

// applyFilesAs is applyFiles with the rights of c (a tenant's impersonating client, say).
func applyFilesAs(ctx context.Context, c client.Client, paths ...string) {
	for _, p := range paths {
		objs, err := readYAML(filepath.Join(testenv.RepoRoot(), p))
		Expect(err).NotTo(HaveOccurred())
		for _, u := range objs {
			Expect(c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldManager, client.ForceOwnership)).
				To(Succeed(), "applying %s %s/%s from %s", u.GetKind(), u.GetNamespace(), u.GetName(), p)
		}
	}
}

// sampleFiles lists config/samples/*.yaml in name order (namespaces first, by their 00- prefix).
func sampleFiles() []string {
	matches, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(matches).NotTo(BeEmpty())
	out := make([]string, 0, len(matches))
	for _, m := range matches { // Glob sorts
		out = append(out, filepath.Join("config", "samples", filepath.Base(m)))
	}
	return out
}

// readYAML parses every document of a YAML file into objects.
func readYAML(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// readyClient waits until the M2MClient is Ready for its current generation and returns it.
func readyClient(ctx context.Context, namespace, name string) *authv1alpha1.M2MClient {
	m := &authv1alpha1.M2MClient{}
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m)).To(Succeed())
		g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
		g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionReady)).
			To(BeTrue(), "conditions: %+v", m.Status.Conditions)
	}).WithContext(ctx).Should(Succeed())
	return m
}

// credentialSecret reads the client's credential Secret.
func credentialSecret(ctx context.Context, m *authv1alpha1.M2MClient) *corev1.Secret {
	sec := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, sec)).To(Succeed())
	return sec
}

// volume stands in for the kubelet: it projects a Secret's keys as files in a directory, and
// swaps a new projection in atomically (a symlink rename, as the kubelet's ..data link does), so a
// reader sees either the old files or the new ones.
type volume struct {
	dir string
	seq int
}

func newVolume(dir string) *volume { return &volume{dir: dir} }

// sync projects sec into the volume.
func (v *volume) sync(sec *corev1.Secret) {
	v.seq++
	data := filepath.Join(v.dir, fmt.Sprintf("..data-%d", v.seq))
	Expect(os.Mkdir(data, 0o700)).To(Succeed())
	for k, val := range sec.Data {
		Expect(os.WriteFile(filepath.Join(data, k), val, 0o600)).To(Succeed())
	}
	tmp := filepath.Join(v.dir, "..data.tmp")
	Expect(os.Symlink(filepath.Base(data), tmp)).To(Succeed())
	Expect(os.Rename(tmp, filepath.Join(v.dir, "..data"))).To(Succeed())
}

// mountedCredentials is what a pod reads from the mounted credential Secret.
type mountedCredentials struct {
	ClientID, ClientSecret, TokenURL, Issuer, Scope, Audience string
}

// readMounted reads the credential files, as a pod does before each token request, so that it
// picks up a rotated secret as soon as the kubelet has updated the volume.
func readMounted(dir string) (mountedCredentials, error) {
	read := func(key string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, "..data", key))
		if err != nil {
			return "", fmt.Errorf("reading mounted key %s: %w", key, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	var c mountedCredentials
	for key, dst := range map[string]*string{authv1alpha1.CredentialKeyClientID: &c.ClientID, authv1alpha1.CredentialKeyClientSecret: &c.ClientSecret,
		authv1alpha1.CredentialKeyTokenURL: &c.TokenURL, authv1alpha1.CredentialKeyIssuer: &c.Issuer,
		authv1alpha1.CredentialKeyScope: &c.Scope, authv1alpha1.CredentialKeyAudience: &c.Audience} {
		v, err := read(key)
		if err != nil {
			return c, err
		}
		*dst = v
	}
	return c, nil
}

// oauthConfig is the x/oauth2 client credentials configuration for mounted credentials.
func oauthConfig(c mountedCredentials, scopes ...string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:       c.ClientID,
		ClientSecret:   c.ClientSecret,
		TokenURL:       c.TokenURL,
		Scopes:         scopes,
		AuthStyle:      oauth2.AuthStyleInHeader,
		EndpointParams: url.Values{"audience": {c.Audience}},
	}
}

// podTokenSource fetches a new token on every call, with the credentials read from the volume
// at that moment. onFetch sees the outcome and the secret used (compared, never printed).
type podTokenSource struct {
	ctx     context.Context
	dir     string
	onFetch func(secret string, err error)
}

// Token implements oauth2.TokenSource.
func (p *podTokenSource) Token() (*oauth2.Token, error) {
	c, err := readMounted(p.dir)
	if err != nil {
		return nil, err
	}
	tok, err := oauthConfig(c).Token(p.ctx)
	if p.onFetch != nil {
		p.onFetch(c.ClientSecret, err)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching a token: %w", err)
	}
	return tok, nil
}

// apiClient calls an API with a cached token, refreshed early, and starts over with a fresh
// token when the API answers 401: the behaviour the issue asks of a well-behaved client.
type apiClient struct {
	base  oauth2.TokenSource
	early time.Duration
	http  *http.Client

	mu sync.Mutex
	ts oauth2.TokenSource
}

func newAPIClient(base oauth2.TokenSource, early time.Duration) *apiClient {
	c := &apiClient{base: base, early: early, http: &http.Client{Timeout: 10 * time.Second}}
	c.reset()
	return c
}

// reset drops the cached token.
func (c *apiClient) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ts = oauth2.ReuseTokenSourceWithExpiry(nil, c.base, c.early)
}

func (c *apiClient) source() oauth2.TokenSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ts
}

// call sends one request and returns the final status: on a 401 it refetches its token once and
// retries.
func (c *apiClient) call(ctx context.Context, method, url string) (int, error) {
	status, err := c.once(ctx, method, url)
	if err == nil && status == http.StatusUnauthorized {
		c.reset()
		status, err = c.once(ctx, method, url)
	}
	return status, err
}

func (c *apiClient) once(ctx context.Context, method, url string) (int, error) {
	tok, err := c.source().Token()
	if err != nil {
		return 0, err
	}
	return doRequest(ctx, c.http, method, url, "Bearer "+tok.AccessToken)
}

// doRequest sends a request with an optional Authorization header and returns the status.
func doRequest(ctx context.Context, hc *http.Client, method, url, authorization string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// oauthErrorCode returns the RFC 6749 error code of a failed token request, or "".
func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}
