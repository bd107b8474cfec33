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

	"github.com/m2m-dev/m2m-operator/internal/cli/tokenservercmd"
)

// runTokenServer runs `m2m tokenserver`, the same command as the m2m-tokenserver binary.
func runTokenServer(ctx context.Context, args []string) error {
	return tokenservercmd.Run(ctx, "m2m", "tokenserver", args)
}

// tokenServerFlagSet is the flag set of `m2m tokenserver`.
func tokenServerFlagSet() *flag.FlagSet {
	fs, _ := tokenservercmd.FlagSet("m2m", "tokenserver")
	return fs
}
