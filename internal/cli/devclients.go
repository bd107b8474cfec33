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
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/controllers"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// How often `m2m dev` looks at the clients: often while it waits to print the sample clients'
// commands, then about as often as a kubelet refreshes a mounted Secret (it is faster).
const (
	reportPollFast  = 250 * time.Millisecond
	reportPollSlow  = time.Second
	reportPrintTime = 60 * time.Second
)

// clientReporter prints each client's command to get a token once its grants are settled, and
// mirrors every client's credential Secret into files, as a pod would see it mounted.
type clientReporter struct {
	c          client.Client
	addr       string
	kubeconfig string
	credDir    string    // "": write no files
	out        io.Writer // nil: print nothing
	say        func(string, ...any)

	printed map[string]bool
	written map[string]string // client key -> resourceVersion of the Secret last written
}

// run works until ctx ends (or, with nothing to write, once everything is printed).
func (r *clientReporter) run(ctx context.Context) {
	r.printed, r.written = map[string]bool{}, map[string]string{}
	printUntil := time.Now().Add(reportPrintTime)
	printing := r.out != nil
	for {
		pending := r.pass(ctx, printing)
		if printing && (pending == 0 && len(r.printed) > 0 || time.Now().After(printUntil)) {
			printing = false
			if pending > 0 {
				r.say("%d client(s) not settled after %s: kubectl describe m2mclient shows why", pending, reportPrintTime)
			}
		}
		if !printing && r.credDir == "" {
			return
		}
		wait := reportPollSlow
		if printing {
			wait = reportPollFast
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// pass looks at every client once and returns how many are still to be printed.
func (r *clientReporter) pass(ctx context.Context, printing bool) int {
	var list authv1alpha1.M2MClientList
	if err := r.c.List(ctx, &list); err != nil {
		return 1
	}
	pending := 0
	for i := range list.Items {
		m := &list.Items[i]
		sec, ok := r.secretOf(ctx, m)
		if ok && r.credDir != "" {
			r.writeCredentials(m, sec)
		}
		if !printing || r.printed[key(m)] {
			continue
		}
		if !ok || !r.settled(ctx, m, sec) {
			pending++
			continue
		}
		r.printed[key(m)] = true
		fmt.Fprintf(r.out, "m2m dev: token for %s (%s):\n%s\n", key(m), strings.Join(m.Status.GrantedScopes, " "), r.tryLine(m, sec))
	}
	return pending
}

// secretOf returns the client's credential Secret once the controller has written it.
func (r *clientReporter) secretOf(ctx context.Context, m *authv1alpha1.M2MClient) (*corev1.Secret, bool) {
	if m.Status.SecretName == "" {
		return nil, false
	}
	var sec corev1.Secret
	if err := r.c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, &sec); err != nil {
		return nil, false
	}
	if !metav1.IsControlledBy(&sec, m) || len(sec.Data[authv1alpha1.CredentialKeyClientID]) == 0 {
		return nil, false // a foreign Secret of that name (SecretNameConflict), or not written yet
	}
	return &sec, true
}

// settled reports whether the controller has caught up with the client: its status and Secret
// hold the scopes that resolving it against the policies now gives. Before, the samples'
// policy (applied after the clients) may not have been seen yet, and the scopes would be empty.
func (r *clientReporter) settled(ctx context.Context, m *authv1alpha1.M2MClient, sec *corev1.Secret) bool {
	if m.Status.ObservedGeneration != m.Generation {
		return false
	}
	if usesSecret(m) && len(sec.Data[authv1alpha1.CredentialKeyClientSecret]) == 0 {
		return false
	}
	res, err := controllers.ResolveClient(ctx, r.c, m)
	if err != nil {
		return false
	}
	return slices.Equal(m.Status.GrantedScopes, res.Granted) &&
		string(sec.Data[authv1alpha1.CredentialKeyScope]) == strings.Join(res.Granted, " ")
}

func usesSecret(m *authv1alpha1.M2MClient) bool {
	return m.Spec.Authentication == nil || m.Spec.Authentication.Method == "" ||
		m.Spec.Authentication.Method == authv1alpha1.AuthClientSecret
}

// tryLine is the command to get a token as the client: with its secret, its ServiceAccount's
// token, or an assertion signed by `m2m assertion`.
func (r *clientReporter) tryLine(m *authv1alpha1.M2MClient, sec *corev1.Secret) string {
	id, secret := string(sec.Data[authv1alpha1.CredentialKeyClientID]), string(sec.Data[authv1alpha1.CredentialKeyClientSecret])
	tokenURL := "http://" + r.addr + tokenserver.TokenPath
	assertion := "curl -s -d grant_type=client_credentials -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer --data-urlencode client_assertion=\"$ASSERTION\" " + tokenURL
	switch {
	case m.Spec.Authentication != nil && m.Spec.Authentication.Method == authv1alpha1.AuthServiceAccount:
		return fmt.Sprintf("ASSERTION=$(kubectl --kubeconfig %s -n %s create token %s --audience http://%s --duration 10m)\n%s",
			r.kubeconfig, m.Namespace, m.Spec.Authentication.ServiceAccountName, r.addr, assertion)
	case m.Spec.Authentication != nil && m.Spec.Authentication.Method == authv1alpha1.AuthPrivateKeyJWT:
		return fmt.Sprintf("# with the private key of a public key in its JWKS (README, \"No shared secrets\": m2m keygen):\nASSERTION=$(bin/m2m assertion --key <private.pem> --client-id %s --audience http://%s)\n%s",
			id, r.addr, assertion)
	}
	return fmt.Sprintf("curl -s -u '%s:%s' -d grant_type=client_credentials %s", id, secret, tokenURL)
}

// writeCredentials mirrors the Secret into <credDir>/<namespace>/<name>/<key>, one file per
// key, each replaced atomically, and removes the files of keys the Secret no longer has.
func (r *clientReporter) writeCredentials(m *authv1alpha1.M2MClient, sec *corev1.Secret) {
	k := key(m)
	if r.written[k] == sec.ResourceVersion {
		return
	}
	dir := filepath.Join(r.credDir, m.Namespace, m.Name)
	if err := syncFiles(dir, sec.Data); err != nil {
		r.say("writing the credential files of %s: %v", k, err)
		return
	}
	r.written[k] = sec.ResourceVersion
}

// syncFiles makes dir hold exactly one file per key of data.
func syncFiles(dir string, data map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, value := range data {
		if err := writeIfChanged(filepath.Join(dir, name), value); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if _, ok := data[e.Name()]; !ok && !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("removing %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// writeIfChanged replaces path by a file holding value, atomically (a reader never sees half a
// secret), unless it already holds it.
func writeIfChanged(path string, value []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, value) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(value); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return nil
}
