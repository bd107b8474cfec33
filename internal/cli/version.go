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
	"os"

	"github.com/m2m-dev/m2m-operator/internal/cli/cmdbase"
)

// Version describes this binary (see cmdbase.Version).
func Version() string { return cmdbase.Version("m2m") }

// versionFlagSet is the flag set of `m2m version`: none but --help.
func versionFlagSet() *flag.FlagSet {
	return newFlagSet("version", "Prints the version, commit and Go version of this binary.")
}

func runVersion(_ context.Context, args []string) error {
	fs := versionFlagSet()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("takes no arguments")
	}
	_, err := fmt.Fprintln(os.Stdout, Version())
	return err
}
