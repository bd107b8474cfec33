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
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/config"
	"github.com/m2m-dev/m2m-operator/internal/controlplane"
	"github.com/m2m-dev/m2m-operator/internal/scheme"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
)

type devFlags struct {
	addr        string
	metricsAddr string
	dir         string
	samples     bool
	samplesDir  string
	// credentialsDir receives every client's credential files (see DevConfig).
	credentialsDir string
	namespace      string
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
	fs.StringVar(&f.dir, "dir", ".dev", "directory for the kubeconfig and the credential files")
	fs.BoolVar(&f.samples, "samples", true, "apply the samples")
	fs.StringVar(&f.samplesDir, "samples-dir", "", "apply YAML from this directory instead of the built-in samples")
	fs.StringVar(&f.credentialsDir, "credentials-dir", "", "where every client's credential Secret is written as files, <namespace>/<name>/<key>, kept up to date like a mounted Secret (default <dir>/credentials)")
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
	sys, err := StartDev(ctx, DevConfig{
		Addr: f.addr, MetricsAddr: f.metricsAddr, Dir: f.dir, Namespace: f.namespace,
		CredentialsNamespace: f.credentialsNamespace, Samples: f.samples, SamplesDir: f.samplesDir,
		CredentialsDir: credentialsDir(f), SigningKeyAlgorithm: f.signingKeyAlgorithm, Out: out, Say: say,
	})
	if err != nil {
		return err
	}
	defer sys.Stop()
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

// credentialsDir is --credentials-dir, by default <dir>/credentials.
func credentialsDir(f *devFlags) string {
	if f.credentialsDir != "" {
		return f.credentialsDir
	}
	return filepath.Join(f.dir, "credentials")
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
	mgr, err := newDevControllerManager(cfg, c, issuer)
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

// newDevControllerManager is the controller `m2m dev` runs.
func newDevControllerManager(cfg *rest.Config, c DevConfig, issuer string) (ctrl.Manager, error) {
	fs := newFlagSet("controller", "")
	cf := bindControllerFlags(fs)
	if err := fs.Parse(devControllerArgs(c, issuer)); err != nil {
		return nil, err
	}
	cf.manyPerProcess = true // the tests start several systems in one process
	return newControllerManager(cfg, cf)
}

// startControlPlane starts etcd and kube-apiserver with the CRDs installed. If ctx ends while
// they start, they are stopped before returning, so nothing is orphaned.
func startControlPlane(ctx context.Context, say func(string, ...any)) (*envtest.Environment, *rest.Config, error) {
	crds, err := embeddedCRDs()
	if err != nil {
		return nil, nil, err
	}
	// Checked before envtest runs: it would retry a missing binary five times, with stack traces.
	assets, err := controlplane.Dir()
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
