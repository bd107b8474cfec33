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

// who-can AUDIENCE [SCOPE]: the access review. Every client the token server would issue the
// scope (or any scope of the audience) to, through which grant: the controller's resolution
// (resolve.Client, what it writes into each credential record) less the clients the token
// server refuses whatever their grants (disabled, or without usable credentials).

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/resolve"
)

// whoCanOutput is what `who-can -o json|yaml` prints.
type whoCanOutput struct {
	Audience string `json:"audience"`
	Scope    string `json:"scope,omitempty"`
	// Policy is the namespace/name of the ScopePolicy holding the audience; empty when none does.
	Policy string `json:"policy,omitempty"`
	// Clients get tokens for the audience with the scope (or, without one, with Scopes).
	Clients []whoCanEntry `json:"clients"`
	// Excluded are granted by the policy but refused by the token server, with the reason.
	Excluded []whoCanEntry `json:"excluded,omitempty"`
}

type whoCanEntry struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	ClientID  string   `json:"clientID,omitempty"`
	Scopes    []string `json:"scopes"`
	// Grants are the indexes in the policy's spec.grants that give the scopes.
	Grants []int  `json:"grants"`
	Reason string `json:"reason,omitempty"`
}

func (r *root) whoCanCommand() *cobra.Command {
	var showExcluded bool
	cmd := &cobra.Command{
		Use:   "who-can AUDIENCE [SCOPE]",
		Short: "List every M2MClient the token server issues the scope (or any scope) of the audience to, and through which grant",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope := ""
			if len(args) == 2 {
				scope = args[1]
			}
			out, err := r.whoCan(cmd.Context(), args[0], scope)
			if err != nil {
				return err
			}
			if ok, err := r.printStructured(out); ok {
				return err
			}
			printWhoCan(r.streams.Out, out, showExcluded)
			return nil
		},
	}
	cmd.Flags().BoolVar(&showExcluded, "show-excluded", false, "also list the clients a grant matches but the token server refuses (disabled, credentials not ready)")
	return cmd
}

func (r *root) whoCan(ctx context.Context, aud, scope string) (*whoCanOutput, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	in, err := readResolutionInputs(ctx, c, "")
	if err != nil {
		return nil, err
	}
	var clients authv1alpha1.M2MClientList
	if err := c.List(ctx, &clients); err != nil {
		return nil, wrapRead("listing M2MClients in all namespaces", err)
	}
	holders := resolve.Holders(in.policies, in.bindings)
	out := &whoCanOutput{Audience: aud, Scope: scope, Clients: []whoCanEntry{}}
	p := holders[aud]
	if p == nil {
		return out, nil
	}
	out.Policy = p.Namespace + "/" + p.Name
	for i := range clients.Items {
		m := &clients.Items[i]
		e, ok := holds(m, in.nsLabels[m.Namespace], holders, aud, scope)
		if !ok {
			continue
		}
		if e.Reason = refusal(m); e.Reason != "" {
			out.Excluded = append(out.Excluded, e)
			continue
		}
		out.Clients = append(out.Clients, e)
	}
	byName := func(a, b whoCanEntry) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) }
	slices.SortFunc(out.Clients, byName)
	slices.SortFunc(out.Excluded, byName)
	return out, nil
}

// holds resolves the client as the controller does and returns what it holds for the
// audience (the scope alone when one is asked), with the grants that give it.
func holds(m *authv1alpha1.M2MClient, nsLabels map[string]string, holders map[string]*authv1alpha1.ScopePolicy, aud, scope string) (whoCanEntry, bool) {
	res := resolve.Client(m, nsLabels, holders)
	i := slices.IndexFunc(res.Grants, func(g resolve.Grant) bool { return g.Audience == aud })
	if i < 0 {
		return whoCanEntry{}, false
	}
	scopes := res.Grants[i].Scopes
	if scope != "" {
		if !slices.Contains(scopes, scope) {
			return whoCanEntry{}, false
		}
		scopes = []string{scope}
	}
	e := whoCanEntry{Namespace: m.Namespace, Name: m.Name, ClientID: m.Status.ClientID, Scopes: scopes}
	for _, s := range scopes {
		for _, g := range resolve.GrantChecks(holders[aud], m, nsLabels, s) {
			if g.Reason == resolve.ReasonGranted && !slices.Contains(e.Grants, g.Index) {
				e.Grants = append(e.Grants, g.Index)
			}
		}
	}
	slices.Sort(e.Grants)
	return e, true
}

// refusal is why the token server refuses a client whatever its grants, "" when it issues to
// it: spec.disabled (the record's disabled flag), no client id yet, or credentials it cannot
// present. A CredentialsReady=False that leaves the record's credentials in force (the CA not
// issued yet, a Secret name conflict, a failed write: the record follows the grants and keeps
// the credentials delivered before) refuses only a ClientSecret client that never got a secret.
func refusal(m *authv1alpha1.M2MClient) string {
	if m.Spec.Disabled {
		return "disabled (spec.disabled is true)"
	}
	if m.Status.ClientID == "" {
		return "no client id yet (the controller has not reconciled it)"
	}
	cond := meta.FindStatusCondition(m.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
	switch {
	case cond == nil:
		return "credentials not reported yet"
	case cond.Status == metav1.ConditionTrue:
		return ""
	}
	switch cond.Reason {
	case authv1alpha1.ReasonServiceAccountNotFound, authv1alpha1.ReasonJWKSNotFound, authv1alpha1.ReasonInvalidJWKS:
		return "cannot authenticate: " + cond.Reason
	}
	if m.Spec.EffectiveMethod() == authv1alpha1.AuthClientSecret && m.Status.SecretRotatedAt == nil {
		return "no client secret delivered yet: " + cond.Reason
	}
	return ""
}

func printWhoCan(w io.Writer, out *whoCanOutput, showExcluded bool) {
	what := "any scope"
	if out.Scope != "" {
		what = "scope " + out.Scope
	}
	if out.Policy == "" {
		fprintf(w, "no ScopePolicy holds audience %s, so no client gets a token for it (kubectl m2m explain CLIENT says why for a client)\n", out.Audience)
		return
	}
	fprintf(w, "audience %s (ScopePolicy %s), %s: %d client(s)\n", out.Audience, out.Policy, what, len(out.Clients))
	rows := out.Clients
	if showExcluded {
		rows = append(slices.Clone(rows), out.Excluded...)
	}
	if len(rows) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		header := "NAMESPACE\tNAME\tCLIENT ID\tSCOPES\tGRANTS"
		if showExcluded {
			header += "\tREFUSED"
		}
		fprintf(tw, "%s\n", header)
		for _, e := range rows {
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", e.Namespace, e.Name, orDash(e.ClientID), strings.Join(e.Scopes, " "), grantIndexes(e.Grants))
			if showExcluded {
				line += "\t" + orDash(e.Reason)
			}
			fprintf(tw, "%s\n", line)
		}
		_ = tw.Flush()
	}
	if n := len(out.Excluded); n > 0 && !showExcluded {
		fprintf(w, "%d more client(s) match a grant but the token server refuses them (--show-excluded lists them)\n", n)
	}
}
