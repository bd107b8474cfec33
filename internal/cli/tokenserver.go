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

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/tokenserver"
)

// runTokenServer runs `m2m tokenserver`: the OAuth endpoints, fed by informers on the system
// namespace, until the process is told to stop.
func runTokenServer(ctx context.Context, args []string) error {
	fs, opts, kubeconfig, zopts := tokenServerFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zopts)))
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	return tokenserver.Run(ctx, cfg, *opts)
}

// tokenServerFlagSet is the flag set of `m2m tokenserver`.
func tokenServerFlagSet() (fs *flag.FlagSet, opts *tokenserver.Options, kubeconfig *string, zopts *zap.Options) {
	fs = newFlagSet("tokenserver", "Serves the OAuth 2.0 token endpoint (client credentials), the JWKS and the metadata from the\ncredential records and signing keys in the credentials namespace. Never writes to the API server.")
	o := tokenserver.DefaultOptions()
	o.BindFlags(fs)
	kubeconfig = fs.String("kubeconfig", "", "path to a kubeconfig; default: in-cluster config or $KUBECONFIG")
	return fs, &o, kubeconfig, logFlags(fs)
}
