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
	"flag"
	"fmt"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/authz"
	"github.com/m2m-dev/m2m-operator/internal/cli/cmdbase"
)

const authzSummary = "Answers gateways (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth over HTTP; Envoy and\nIstio ext_authz over gRPC) whether a request may reach an API: verifies its access token (Bearer, or\nDPoP with its proof; against the issuer's revocation list) and applies the routes of the ScopePolicy\nholding the API's audience. Reads ScopePolicies and AudienceBindings; writes nothing."

type authzFlags struct {
	opts       *authz.Options
	kubeconfig *string
	zap        *zap.Options
}

func authzFlagSet() (*flag.FlagSet, *authzFlags) {
	fs := cmdbase.NewFlagSet("m2m", "authz", authzSummary)
	o := authz.DefaultOptions()
	o.BindFlags(fs)
	f := &authzFlags{opts: &o}
	f.kubeconfig = fs.String("kubeconfig", "", "path to a kubeconfig; default: in-cluster config or $KUBECONFIG")
	f.zap = cmdbase.LogFlags(fs)
	return fs, f
}

// runAuthz runs `m2m authz`.
func runAuthz(ctx context.Context, args []string) error {
	fs, f := authzFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log := zap.New(zap.UseFlagOptions(f.zap))
	ctrllog.SetLogger(log)
	cfg, err := cmdbase.RestConfig(*f.kubeconfig)
	if err != nil {
		return err
	}
	return authz.Run(ctx, cfg, *f.opts, log.WithName("authz"))
}
