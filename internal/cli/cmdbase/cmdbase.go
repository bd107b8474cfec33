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

// Package cmdbase holds what the commands of every m2m binary share: flag sets, the logging
// flags, the Kubernetes client config and the version line. It imports nothing heavy, so that
// the m2m-tokenserver binary, which uses it, links none of the controller.
package cmdbase

import (
	"flag"
	"fmt"
	"runtime/debug"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// NewFlagSet returns a flag set for `<binary> <name>` (or just binary when name is empty) that
// prints a usage line and the flag defaults on --help.
func NewFlagSet(binary, name, summary string) *flag.FlagSet {
	cmd := binary
	if name != "" {
		cmd += " " + name
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s\n\nFlags:\n", cmd, summary)
		fs.PrintDefaults()
	}
	return fs
}

// LogFlags binds the controller-runtime zap flags (--zap-log-level, --zap-devel, ...).
func LogFlags(fs *flag.FlagSet) *zap.Options {
	opts := &zap.Options{Development: false}
	opts.BindFlags(fs)
	return opts
}

// RestConfig loads a kubeconfig file when given, else the usual in-cluster or $KUBECONFIG config.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("loading Kubernetes client config: %w", err)
	}
	return cfg, nil
}

// Version describes the running binary from the build information the Go toolchain records:
// the module version (a tag when built from one), the VCS revision and whether the tree was
// modified, and the Go version. The same information is exported as the go_build_info metric.
func Version(binary string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return binary + " (no build information)"
	}
	out := binary + " " + bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		out += " (commit " + rev
		if modified == "true" {
			out += ", modified"
		}
		out += ")"
	}
	return out + " " + bi.GoVersion
}
