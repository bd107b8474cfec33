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
	"fmt"
	"io"
	"net"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/m2m-dev/m2m-operator/internal/scheme"
	"github.com/m2m-dev/m2m-operator/internal/signingkey"
	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// DefaultCredentialsNamespace is the credentials namespace of `m2m dev` and of the install.
const DefaultCredentialsNamespace = tokenserver.DefaultNamespace

// DevConfig configures StartDev: the part of `m2m dev` that starts the system, shared with the
// end-to-end tests so that they run exactly what a developer runs.
type DevConfig struct {
	// Addr is the token server's listen address; port 0 picks a free port (the issuer then
	// names the port chosen).
	Addr string
	// MetricsAddr is the listen address of the token server's metrics port (/healthz,
	// /readyz, /metrics); empty means a free loopback port.
	MetricsAddr string
	// Dir receives the kubeconfig.
	Dir string
	// Namespace is the system namespace.
	Namespace string
	// CredentialsNamespace holds the credential records and signing keys, the only namespace
	// the token server reads. Default DefaultCredentialsNamespace.
	CredentialsNamespace string
	// Samples applies the built-in samples (or the YAML of SamplesDir) once the system is up,
	// each object with the annotation `kubectl apply` writes, as `m2m dev` does.
	Samples bool
	// SamplesDir replaces the built-in samples by the YAML files of this directory.
	SamplesDir string
	// Out, when set with Samples, receives for each client the command to get a token, once
	// its grants are settled (`m2m dev: token for <ns>/<name> (<scopes>):`).
	Out io.Writer
	// CredentialsDir, when set, receives every client's credential Secret as files,
	// <namespace>/<name>/<key>, kept up to date until Stop (as a kubelet updates a mounted
	// Secret), so that clients can run on the laptop as they would in a pod.
	CredentialsDir string
	// SigningKeyAlgorithm is the algorithm of the signing keys (the controller's
	// --signing-key-algorithm): ES256 (the default when empty), RS256 or EdDSA.
	SigningKeyAlgorithm string
	// AuditLog receives the token server's audit lines; nil means its default (stderr).
	AuditLog io.Writer
	// Say reports progress; nil is silent.
	Say func(format string, a ...any)
}

// DevSystem is a running local system: control plane, CRDs, controller and token server.
type DevSystem struct {
	// Kubeconfig is the path of an admin kubeconfig for the control plane.
	Kubeconfig string
	// Config is the admin rest config of the control plane.
	Config *rest.Config
	// Client is an admin client with the project's scheme.
	Client client.Client
	// Issuer is the token server's issuer URL (http://<addr>).
	Issuer string
	// Addr is the address the token server listens on.
	Addr string
	// MetricsURL is the base URL of the token server's metrics port (/healthz, /readyz,
	// /metrics).
	MetricsURL string

	env     *envtest.Environment
	cancel  context.CancelFunc
	errs    chan error
	running int // goroutines that will send on errs
	say     func(format string, a ...any)
	// reported is closed when the client reporter has stopped (nil: none started).
	reported chan struct{}
}

// StartDev starts the control plane with the CRDs, the system and credentials namespaces, the
// controller and the token server, all in this process. The caller must call Stop. If anything fails, whatever was
// started is stopped before StartDev returns.
func StartDev(ctx context.Context, c DevConfig) (*DevSystem, error) {
	say := c.Say
	if say == nil {
		say = func(string, ...any) {}
	}
	if c.SigningKeyAlgorithm != "" && !signingkey.SupportedAlgorithm(c.SigningKeyAlgorithm) {
		return nil, fmt.Errorf("--signing-key-algorithm %q is not supported (ES256, RS256, EdDSA)", c.SigningKeyAlgorithm)
	}
	env, cfg, err := startControlPlane(ctx, say)
	if err != nil {
		return nil, err
	}
	d := &DevSystem{Config: cfg, env: env, errs: make(chan error, 2), say: say, cancel: func() {}}
	if err := d.start(ctx, c); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// start runs everything after the control plane; on error, Stop cleans up.
func (d *DevSystem) start(ctx context.Context, c DevConfig) error {
	var err error
	if d.Kubeconfig, err = writeKubeconfig(d.env, c.Dir); err != nil {
		return err
	}
	d.say("control plane up; kubeconfig: %s", d.Kubeconfig)
	if d.Client, err = client.New(d.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	if c.CredentialsNamespace == "" {
		c.CredentialsNamespace = DefaultCredentialsNamespace
	}
	for _, ns := range []string{c.Namespace, c.CredentialsNamespace} {
		if err := ensureNamespace(ctx, d.Client, ns); err != nil {
			return err
		}
	}
	// Listen before anything is started: the issuer must name the port actually bound.
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Addr, err)
	}
	metricsLn, err := listenMetrics(c.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return err
	}
	d.Addr = devAddr(c.Addr, ln)
	d.Issuer = "http://" + d.Addr
	d.MetricsURL = "http://" + metricsLn.Addr().String()
	// The components live until Stop, not until ctx (which may only bound the start-up).
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	if err := startController(runCtx, d.Config, c, d.Issuer, d.errs); err != nil {
		_ = ln.Close()
		_ = metricsLn.Close()
		return err
	}
	opts := devTokenServerOptions(c, d.Issuer)
	d.running = 2
	go func() { d.errs <- wrapErr("token server", tokenserver.RunOn(runCtx, d.Config, opts, ln, metricsLn)) }()
	d.say("token server: %s (metadata %s/.well-known/oauth-authorization-server)", d.Issuer, d.Issuer)
	d.say("token server metrics and probes: %s/metrics, /healthz, /readyz", d.MetricsURL)
	return d.startClients(ctx, runCtx, c)
}

// startClients applies the samples, then reports the clients: their commands to get a token and
// their credential files.
func (d *DevSystem) startClients(ctx, runCtx context.Context, c DevConfig) error {
	if c.Samples {
		if err := applySamples(ctx, d.Client, c.SamplesDir, d.say); err != nil {
			return err
		}
	}
	r := &clientReporter{c: d.Client, addr: d.Addr, kubeconfig: d.Kubeconfig, credDir: c.CredentialsDir, say: d.say}
	if c.Samples {
		r.out = c.Out
	}
	if r.out == nil && r.credDir == "" {
		return nil
	}
	if r.credDir != "" {
		abs, err := filepath.Abs(r.credDir)
		if err != nil {
			return fmt.Errorf("credentials directory: %w", err)
		}
		r.credDir = abs
		d.say("credential files of every client (kept up to date, as in a pod): %s/<namespace>/<name>/", abs)
	}
	d.reported = make(chan struct{})
	go func() {
		defer close(d.reported)
		r.run(runCtx)
	}()
	return nil
}

// listenMetrics opens the token server's metrics port: addr, or a free loopback port.
func listenMetrics(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (token server metrics): %w", addr, err)
	}
	return ln, nil
}

// devAddr is the address to name in the issuer: the one asked for, unless it asked for any
// port, in which case the one bound.
func devAddr(asked string, ln net.Listener) string {
	if _, port, err := net.SplitHostPort(asked); err == nil && port != "0" {
		return asked
	}
	return ln.Addr().String()
}

// Err receives the error of a component that stopped on its own.
func (d *DevSystem) Err() <-chan error { return d.errs }

// Stop stops the controller and the token server, then the control plane.
func (d *DevSystem) Stop() {
	d.cancel()
	drain(d.errs, d.running)
	if d.reported != nil {
		<-d.reported
	}
	d.say("stopping the control plane")
	if err := d.env.Stop(); err != nil {
		d.say("stopping the control plane: %v", err)
	}
}

func devTokenServerOptions(c DevConfig, issuer string) tokenserver.Options {
	o := tokenserver.DefaultOptions()
	o.Issuer, o.Addr, o.Namespace, o.AuditLog = issuer, c.Addr, c.CredentialsNamespace, c.AuditLog
	o.DrainDelay = 0 // no load balancer to leave: Ctrl-C stops at once
	return o
}
