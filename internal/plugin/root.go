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

// Package plugin implements `kubectl m2m` (the kubectl-m2m binary): explain, who-can, token,
// decode and rotate, with the usual kubeconfig flags of k8s.io/cli-runtime. The decisions it
// reports come from internal/resolve, the code the controller runs.
package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/m2m-dev/m2m-operator/internal/scheme"
)

// Output formats of -o.
const (
	outputTable = ""
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// root holds what every command shares: the kubeconfig flags, the streams and -o.
type root struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	output  string
}

// NewCommand returns the `kubectl m2m` command tree writing to streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	r := &root{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	cmd := &cobra.Command{
		Use:           "kubectl-m2m",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl m2m"},
		Short:         "Explain and debug m2m-operator access: who may call which API, and why",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch r.output {
			case outputTable, outputJSON, outputYAML:
				return nil
			}
			return fmt.Errorf("-o %q: want json or yaml (a table when unset)", r.output)
		},
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetIn(streams.In)
	r.flags.AddFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVarP(&r.output, "output", "o", "", "output format: json or yaml (default: a table)")
	cmd.AddCommand(r.explainCommand(), r.whoCanCommand(), r.tokenCommand(), r.decodeCommand(), r.rotateCommand())
	return cmd
}

// Main runs the command tree on args and returns the exit code, printing an error to ErrOut.
func Main(ctx context.Context, streams genericiooptions.IOStreams, args []string) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		return 1
	}
	return 0
}

// client returns an API client for the kubeconfig flags (--kubeconfig, --context, --as, ...).
func (r *root) client() (client.Client, error) {
	cfg, err := r.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	return c, nil
}

// namespace is -n, or the kubeconfig context's namespace.
func (r *root) namespace() (string, error) {
	ns, _, err := r.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

// printStructured writes v as JSON or YAML for -o; it reports false for a table.
func (r *root) printStructured(v any) (bool, error) {
	switch r.output {
	case outputJSON:
		enc := json.NewEncoder(r.streams.Out)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = r.streams.Out.Write(b)
		return true, err
	}
	return false, nil
}

// forbidden reports whether err is the API server refusing the caller's rights.
func forbidden(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}

// describeAPIError says what a failed call needs, without the API server's noise.
func describeAPIError(what string, err error) error {
	if forbidden(err) {
		return fmt.Errorf("%s: the API server refused it (%w)", what, err)
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: not found", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func fprintf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
