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
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/config"
	"github.com/m2m-dev/m2m-operator/controllers"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

type devFlags struct {
	addr        string
	metricsAddr string
	dir         string
	samples     bool
	samplesDir  string
	namespace   string
	// credentialsNamespace holds what the token server reads (see DevConfig).
	credentialsNamespace string
	// signingKeyAlgorithm is the controller's --signing-key-algorithm (see DevConfig).
	signingKeyAlgorithm string
}

// devFlagSet is the flag set of `m2m dev`.
func devFlagSet() (*flag.FlagSet, *devFlags, *zap.Options) {
	fs := newFlagSet("dev", "Runs the whole system locally: an embedded control plane (etcd + kube-apiserver), the CRDs,\nthe controller and the token server in this process, and the samples. Ctrl-C stops everything.")
	f := &devFlags{}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address of the token server (issuer http://<addr>)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:0", "listen address of the token server's metrics port (/metrics, /healthz, /readyz; port 0: a free port, printed)")
	fs.StringVar(&f.dir, "dir", ".dev", "directory for the kubeconfig")
	fs.BoolVar(&f.samples, "samples", true, "apply the samples")
	fs.StringVar(&f.samplesDir, "samples-dir", "", "apply YAML from this directory instead of the built-in samples")
	fs.StringVar(&f.namespace, "namespace", "m2m-system", "system namespace: the token server's CA and the controller's Lease")
	fs.StringVar(&f.credentialsNamespace, "credentials-namespace", DefaultCredentialsNamespace, "namespace of the credential records and signing keys, the only one the token server reads")
	fs.StringVar(&f.signingKeyAlgorithm, "signing-key-algorithm", signingkey.ES256, "algorithm the tokens are signed with: ES256, RS256 or EdDSA (as the controller's flag of that name)")
	return fs, f, logFlags(fs)
}

func runDev(ctx context.Context, args []string) error {
	fs, f, zopts := devFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zopts)))
	return Dev(ctx, f, os.Stdout)
}

// Dev runs the local environment until ctx is done. Whatever it started is stopped before it
// returns, including when ctx ends during start-up.
func Dev(ctx context.Context, f *devFlags, out io.Writer) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, "m2m dev: "+format+"\n", a...) }
	sys, err := StartDev(ctx, DevConfig{Addr: f.addr, MetricsAddr: f.metricsAddr, Dir: f.dir, Namespace: f.namespace,
		CredentialsNamespace: f.credentialsNamespace, SigningKeyAlgorithm: f.signingKeyAlgorithm, Say: say})
	if err != nil {
		return err
	}
	defer sys.Stop()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.samples {
		if err := applySamples(ctx, sys.Client, f.samplesDir, say); err != nil {
			return err
		}
		go printCurlLines(runCtx, sys.Client, sys.Addr, sys.Kubeconfig, out)
	}
	say("ready. Try: kubectl --kubeconfig %s get m2mclients,scopepolicies -A", sys.Kubeconfig)
	say("press Ctrl-C to stop")

	select {
	case <-ctx.Done():
		say("shutting down")
		return nil
	case err := <-sys.Err():
		return err
	}
}

func wrapErr(what string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func drain(errs <-chan error, n int) {
	timeout := time.After(15 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-errs:
		case <-timeout:
			return
		}
	}
}

func startController(ctx context.Context, cfg *rest.Config, c DevConfig, issuer string, errs chan<- error) error {
	fs := newFlagSet("controller", "")
	cf := bindControllerFlags(fs)
	if err := fs.Parse(devControllerArgs(c, issuer)); err != nil {
		return err
	}
	mgr, err := newControllerManager(cfg, cf)
	if err != nil {
		return err
	}
	go func() { errs <- wrapErr("controller", mgr.Start(ctx)) }()
	return nil
}

// devControllerArgs are the flags of the controller `m2m dev` runs.
func devControllerArgs(c DevConfig, issuer string) []string {
	args := []string{"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--namespace=" + c.Namespace, "--credentials-namespace=" + c.CredentialsNamespace, "--issuer=" + issuer}
	if c.SigningKeyAlgorithm != "" {
		args = append(args, "--signing-key-algorithm="+c.SigningKeyAlgorithm)
	}
	return args
}

// startControlPlane starts etcd and kube-apiserver with the CRDs installed. If ctx ends while
// they start, they are stopped before returning, so nothing is orphaned.
func startControlPlane(ctx context.Context, say func(string, ...any)) (*envtest.Environment, *rest.Config, error) {
	crds, err := embeddedCRDs()
	if err != nil {
		return nil, nil, err
	}
	assets, err := assetsDir()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds},
		Scheme:                scheme.New(),
	}
	say("starting etcd and kube-apiserver from %s", assets)
	type started struct {
		cfg *rest.Config
		err error
	}
	done := make(chan started, 1)
	go func() {
		cfg, err := env.Start()
		done <- started{cfg, err}
	}()
	select {
	case s := <-done:
		if s.err != nil {
			_ = env.Stop()
			return nil, nil, fmt.Errorf("starting the control plane: %w", s.err)
		}
		return env, s.cfg, nil
	case <-ctx.Done():
		s := <-done
		_ = env.Stop()
		if s.err != nil {
			return nil, nil, fmt.Errorf("starting the control plane: %w", s.err)
		}
		return nil, nil, ctx.Err()
	}
}

// assetsDir finds kube-apiserver and etcd: $KUBEBUILDER_ASSETS, else the cache that
// hack/setup-envtest.sh fills.
func assetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	d := filepath.Join(cache, "m2m-operator", "envtest", "1.37.2")
	if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run `make dev` (it builds the control plane once), or set KUBEBUILDER_ASSETS", d)
	}
	return d, nil
}

func embeddedCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(config.CRDs, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := config.CRDs.ReadFile(path)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		out = append(out, crd)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading embedded CRDs: %w", err)
	}
	return out, nil
}

func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "dev", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the dev user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("rendering kubeconfig: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("writing kubeconfig: %w", err)
	}
	abs, _ := filepath.Abs(path)
	return abs, nil
}

func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// applySamples creates every object of the samples (namespaces first), leaving existing ones.
func applySamples(ctx context.Context, c client.Client, dir string, say func(string, ...any)) error {
	var fsys fs.FS = config.Samples
	root := "samples"
	if dir != "" {
		fsys, root = os.DirFS(dir), "."
	}
	objs, err := readObjects(fsys, root)
	if err != nil {
		return err
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].GetKind() == "Namespace" && objs[j].GetKind() != "Namespace" })
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("applying %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		say("applied %s %s", strings.ToLower(o.GetKind()), key(o))
	}
	return nil
}

func key(o client.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// readObjects parses every YAML document of every *.yaml file under root.
func readObjects(fsys fs.FS, root string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := fs.WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", path, err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("parsing %s: %w", path, err)
			}
			if len(u.Object) == 0 || u.GetKind() == "" || u.GetKind() == "Kustomization" {
				continue // empty documents and kustomization.yaml are not objects
			}
			out = append(out, u)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading samples: %w", err)
	}
	return out, nil
}

// printCurlLines prints, for each sample client, the commands that fetch a token its way:
// client secret, ServiceAccount token, or private_key_jwt assertion.
func printCurlLines(ctx context.Context, c client.Client, addr, kubeconfig string, out io.Writer) {
	printed := map[string]bool{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		var list authv1alpha1.M2MClientList
		if err := c.List(ctx, &list); err == nil {
			pending := 0
			for i := range list.Items {
				m := &list.Items[i]
				k := key(m)
				if printed[k] {
					continue
				}
				line, ok := tryLine(ctx, c, m, addr, kubeconfig)
				if !ok {
					pending++
					continue
				}
				printed[k] = true
				fmt.Fprintf(out, "m2m dev: token for %s (%s):\n%s\n", k, strings.Join(m.Status.GrantedScopes, " "), line)
			}
			if pending == 0 && len(printed) > 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-tick.C:
		}
	}
}

// tryLine is the command to try a client, once its credential Secret holds its client id.
func tryLine(ctx context.Context, c client.Client, m *authv1alpha1.M2MClient, addr, kubeconfig string) (string, bool) {
	if m.Status.SecretName == "" {
		return "", false
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, &sec); err != nil {
		return "", false
	}
	id, secret := string(sec.Data[controllers.KeyClientID]), string(sec.Data[controllers.KeyClientSecret])
	if id == "" {
		return "", false
	}
	tokenURL := "http://" + addr + tokenserver.TokenPath
	assertion := "curl -s -d grant_type=client_credentials -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer --data-urlencode client_assertion=\"$ASSERTION\" " + tokenURL
	switch {
	case m.Spec.Authentication != nil && m.Spec.Authentication.Method == authv1alpha1.AuthServiceAccount:
		return fmt.Sprintf("ASSERTION=$(kubectl --kubeconfig %s -n %s create token %s --audience http://%s --duration 10m)\n%s",
			kubeconfig, m.Namespace, m.Spec.Authentication.ServiceAccountName, addr, assertion), true
	case m.Spec.Authentication != nil && m.Spec.Authentication.Method == authv1alpha1.AuthPrivateKeyJWT:
		return fmt.Sprintf("# sign an ES256 JWT with the private key of spec.authentication.jwks: iss=sub=%s, aud=http://%s, exp<=1h ahead, a fresh jti\nASSERTION=<that JWT>\n%s",
			id, addr, assertion), true
	case secret == "":
		return "", false
	}
	return fmt.Sprintf("curl -s -u '%s:%s' -d grant_type=client_credentials %s", id, secret, tokenURL), true
}
