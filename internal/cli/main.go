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

// Package cli implements the subcommands of the m2m binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/cli/cmdbase"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"controller":  {"reconcile M2MClients and ScopePolicies; manage signing keys and credentials", runController},
	"tokenserver": {"serve the OAuth 2.0 token, JWKS, metadata and introspection endpoints", runTokenServer},
	"authz":       {"answer gateways (nginx, Traefik, Caddy, Envoy, Istio) whether a request may reach an API", runAuthz},
	"dev":         {"run everything locally: control plane, CRDs, controller, token server, samples", runDev},
	"version":     {"print the version, commit and Go version of this binary", runVersion},
	"keygen":      {"generate a PrivateKeyJWT client's key pair: private.pem and the public jwks.json", runKeygen},
	"assertion":   {"print a signed client assertion (private_key_jwt) for a PrivateKeyJWT client", runAssertion},
}

// Main runs the subcommand named by args[0] and returns the process exit code.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "m2m: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "m2m %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "m2m — zero-trust machine-to-machine authentication for Kubernetes")
	fmt.Fprintln(w, "\nUsage: m2m <command> [flags]   (m2m <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
}

// newFlagSet returns a flag set for `m2m <name>` that prints a usage line and the flag defaults
// on --help.
func newFlagSet(name, summary string) *flag.FlagSet { return cmdbase.NewFlagSet("m2m", name, summary) }

// logFlags binds the controller-runtime zap flags (--zap-log-level, --zap-devel, ...).
func logFlags(fs *flag.FlagSet) *zap.Options { return cmdbase.LogFlags(fs) }

// restConfig loads a kubeconfig file when given, else the usual in-cluster or $KUBECONFIG config.
func restConfig(kubeconfig string) (*rest.Config, error) { return cmdbase.RestConfig(kubeconfig) }
