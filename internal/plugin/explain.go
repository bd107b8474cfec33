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

package plugin

// explain CLIENT: for every requested scope, per audience, granted or denied and why, with
// the fix; from the live objects through resolve.Explain.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// explainOutput is what `explain -o json|yaml` prints.
type explainOutput struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	ClientID  string `json:"clientID,omitempty"`
	Method    string `json:"method"`
	Disabled  bool   `json:"disabled,omitempty"`
	// Scopes is resolve.Explain's answer; absent when Limited says why it could not be computed.
	Scopes []resolve.ScopeExplanation `json:"scopes,omitempty"`
	// Limited says which read was refused; the status then tells what it can.
	Limited string      `json:"limited,omitempty"`
	Status  *statusView `json:"status,omitempty"`
	// Conditions are the client's conditions that are not True (what else keeps tokens away).
	Conditions []conditionView `json:"conditions,omitempty"`
}

type statusView struct {
	Granted   []string `json:"granted,omitempty"`
	Denied    []string `json:"denied,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
}

type conditionView struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

func (r *root) explainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "explain CLIENT",
		Short: "For each scope the M2MClient requests: granted or denied, by which ScopePolicy and grant, and the fix",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := r.explain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ok, err := r.printStructured(out); ok {
				return err
			}
			printExplain(r.streams.Out, out)
			return nil
		},
	}
}

// explain reads the client and what its resolution depends on: every ScopePolicy, its
// namespace's labels and the AudienceBindings. A refused read is reported in Limited, and the
// client's status stands in.
func (r *root) explain(ctx context.Context, name string) (*explainOutput, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	ns, err := r.namespace()
	if err != nil {
		return nil, err
	}
	m := &authv1alpha1.M2MClient{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		return nil, describeAPIError(fmt.Sprintf("reading M2MClient %s/%s", ns, name), err)
	}
	out := &explainOutput{Namespace: ns, Name: name, ClientID: m.Status.ClientID, Method: string(m.Spec.EffectiveMethod()), Disabled: m.Spec.Disabled}
	for _, cond := range m.Status.Conditions {
		if cond.Status != "True" && cond.Type != authv1alpha1.ConditionReconciling && cond.Type != authv1alpha1.ConditionStalled {
			out.Conditions = append(out.Conditions, conditionView{cond.Type, string(cond.Status), cond.Reason, cond.Message})
		}
	}
	in, err := readResolutionInputs(ctx, c, ns)
	if forbidden(err) {
		out.Limited = fmt.Sprintf("%v. What follows is the client's status, without reasons; the full explanation needs list on scopepolicies and audiencebindings (auth.m2m.dev) in all namespaces and get on namespace %s", err, ns)
		out.Status = &statusView{Granted: m.Status.GrantedScopes, Denied: m.Status.DeniedScopes, Audiences: m.Status.Audiences}
		if cond := meta.FindStatusCondition(m.Status.Conditions, authv1alpha1.ConditionScopesGranted); cond != nil && cond.Status == "True" {
			out.Conditions = append(out.Conditions, conditionView{cond.Type, string(cond.Status), cond.Reason, cond.Message})
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.Scopes = resolve.Explain(m, in.nsLabels[ns], in.policies, in.bindings).Scopes
	return out, nil
}

// resolutionInputs is what resolve needs besides the client, read as the controller reads it
// (controllers.ResolveClient): every policy, the namespaces' labels and the bindings.
type resolutionInputs struct {
	policies []authv1alpha1.ScopePolicy
	bindings resolve.Bindings
	nsLabels map[string]map[string]string
}

// readResolutionInputs reads the policies, the bindings, and the labels of namespace ns (or of
// every namespace when ns is ""). The first refused read is returned as is (forbidden()).
func readResolutionInputs(ctx context.Context, c client.Client, ns string) (*resolutionInputs, error) {
	in := &resolutionInputs{nsLabels: map[string]map[string]string{}}
	var policies authv1alpha1.ScopePolicyList
	if err := c.List(ctx, &policies); err != nil {
		return nil, wrapRead("listing ScopePolicies in all namespaces", err)
	}
	in.policies = policies.Items
	var bindings authv1alpha1.AudienceBindingList
	if err := c.List(ctx, &bindings); err != nil {
		return nil, wrapRead("listing AudienceBindings", err)
	}
	in.bindings = resolve.NewBindings(bindings.Items)
	if ns != "" {
		n := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, n); client.IgnoreNotFound(err) != nil {
			return nil, wrapRead("reading namespace "+ns, err)
		}
		in.nsLabels[ns] = n.Labels
		return in, nil
	}
	var list corev1.NamespaceList
	if err := c.List(ctx, &list); err != nil {
		return nil, wrapRead("listing namespaces", err)
	}
	for i := range list.Items {
		in.nsLabels[list.Items[i].Name] = list.Items[i].Labels
	}
	return in, nil
}

// readError keeps the API error (forbidden() sees through it) and says which read failed.
type readError struct {
	what string
	err  error
}

func (e *readError) Error() string {
	if forbidden(e.err) {
		return e.what + ": forbidden for you (an RBAC right is missing)"
	}
	return e.what + ": " + e.err.Error()
}

func (e *readError) Unwrap() error { return e.err }

func wrapRead(what string, err error) error { return &readError{what: what, err: err} }

func printExplain(w io.Writer, out *explainOutput) {
	id := out.ClientID
	if id == "" {
		id = "not assigned yet"
	}
	fprintf(w, "M2MClient %s/%s (client id %s, method %s)\n", out.Namespace, out.Name, id, out.Method)
	if out.Disabled {
		fprintf(w, "spec.disabled is true: the token server refuses this client whatever its grants (fix: set spec.disabled to false)\n")
	}
	if out.Limited != "" {
		printLimited(w, out)
		return
	}
	if len(out.Scopes) == 0 {
		fprintf(w, "spec.scopes is empty: the client requests nothing (fix: list the scopes it needs in spec.scopes)\n")
		printConditions(w, out.Conditions)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fprintf(tw, "\nSCOPE\tAUDIENCE\tRESULT\tREASON\tPOLICY\tGRANT\n")
	var notes []string
	for _, s := range out.Scopes {
		for _, v := range s.Verdicts {
			result, grant := "denied", "-"
			if v.Reason == resolve.ReasonGranted {
				result = "granted"
			}
			if m := v.Matched(); len(m) > 0 {
				grant = grantIndexes(m)
			} else if len(v.Grants) > 0 {
				grant = fmt.Sprintf("grants[%d]", v.Grants[0].Index)
			}
			fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Scope, orDash(v.Audience), result, v.Reason, orDash(v.Policy), grant)
			if v.Reason != resolve.ReasonGranted {
				notes = append(notes, fmt.Sprintf("%s (%s): %s\n  fix: %s", s.Scope, orDash(v.Audience), v.Message, v.Fix))
			}
		}
	}
	_ = tw.Flush()
	if len(notes) > 0 {
		fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
	printConditions(w, out.Conditions)
}

func printLimited(w io.Writer, out *explainOutput) {
	fprintf(w, "limited: %s\n\n", out.Limited)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fprintf(tw, "SCOPE\tRESULT (per status)\n")
	for _, s := range out.Status.Granted {
		fprintf(tw, "%s\tgranted\n", s)
	}
	for _, s := range out.Status.Denied {
		fprintf(tw, "%s\tdenied\n", s)
	}
	_ = tw.Flush()
	fprintf(w, "audiences (per status): %s\n", orDash(strings.Join(out.Status.Audiences, ", ")))
	printConditions(w, out.Conditions)
}

func printConditions(w io.Writer, conds []conditionView) {
	if len(conds) == 0 {
		return
	}
	fprintf(w, "\nconditions:\n")
	for _, c := range conds {
		fprintf(w, "  %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
}

func grantIndexes(idx []int) string {
	parts := make([]string, len(idx))
	for i, n := range idx {
		parts[i] = fmt.Sprintf("grants[%d]", n)
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
