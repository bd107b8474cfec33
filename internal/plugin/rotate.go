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

// rotate CLIENT: set the rotate annotation (metadata.annotations only, never the spec) and
// wait until the controller has issued the new secret: the credential Secret answers the
// annotation's value (auth.m2m.dev/rotate-handled, written in the same update as the secret,
// after the record holding its hash), or, for a caller who may not read Secrets, the status
// reports a new secretRotatedAt with CredentialsReady=True.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/m2m-dev/m2m-operator/api/v1alpha1"
	"github.com/m2m-dev/m2m-operator/internal/credentialplan"
)

// rotateOutput is what `rotate -o json|yaml` prints.
type rotateOutput struct {
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Requested       string `json:"requested"`
	SecretRotatedAt string `json:"secretRotatedAt,omitempty"`
	NextRotationAt  string `json:"nextRotationAt,omitempty"`
	// ConfirmedBy says what showed the rotation: the credential Secret or the status.
	ConfirmedBy string `json:"confirmedBy"`
}

func (r *root) rotateCommand() *cobra.Command {
	var timeout time.Duration
	var value string
	cmd := &cobra.Command{
		Use:   "rotate CLIENT",
		Short: "Rotate the M2MClient's client secret (the auth.m2m.dev/rotate annotation) and wait until the new one is issued",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if value == "" {
				value = time.Now().UTC().Format(time.RFC3339Nano)
			}
			out, err := r.rotate(cmd.Context(), args[0], value, timeout)
			if err != nil {
				return err
			}
			if ok, err := r.printStructured(out); ok {
				return err
			}
			fprintf(r.streams.Out, "M2MClient %s/%s: new client secret issued at %s (confirmed by the %s); the previous one is accepted for spec.secretRotation.gracePeriod\n",
				out.Namespace, out.Name, orDash(out.SecretRotatedAt), out.ConfirmedBy)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the new secret")
	cmd.Flags().StringVar(&value, "value", "", "the annotation's new value (default: the current time)")
	return cmd
}

func (r *root) rotate(ctx context.Context, name, value string, timeout time.Duration) (*rotateOutput, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	ns, err := r.namespace()
	if err != nil {
		return nil, err
	}
	key := client.ObjectKey{Namespace: ns, Name: name}
	m := &authv1alpha1.M2MClient{}
	if err := c.Get(ctx, key, m); err != nil {
		return nil, describeAPIError(fmt.Sprintf("reading M2MClient %s/%s", ns, name), err)
	}
	if method := m.Spec.EffectiveMethod(); method != authv1alpha1.AuthClientSecret {
		return nil, fmt.Errorf("M2MClient %s/%s uses method %s: it has no client secret to rotate", ns, name, method)
	}
	if m.Annotations[authv1alpha1.AnnotationRotate] == value {
		return nil, fmt.Errorf("the %s annotation already holds %q: pass another --value", authv1alpha1.AnnotationRotate, value)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{authv1alpha1.AnnotationRotate: value}}})
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	if err := c.Patch(ctx, m, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, describeAPIError(fmt.Sprintf("annotating M2MClient %s/%s (patch on m2mclients)", ns, name), err)
	}
	out := &rotateOutput{Namespace: ns, Name: name, Requested: value}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, m); err != nil {
			return false, describeAPIError(fmt.Sprintf("reading M2MClient %s/%s", ns, name), err)
		}
		if !meta.IsStatusConditionTrue(m.Status.Conditions, authv1alpha1.ConditionCredentialsReady) {
			return false, nil
		}
		sec, err := credentialSecret(ctx, c, m)
		switch {
		case err == nil:
			out.ConfirmedBy = "credential Secret"
			return sec.Annotations[authv1alpha1.AnnotationRotateHandled] == value, nil
		case !forbidden(err):
			return false, err
		}
		// status.rotateHandled names the request the current secret answers; secretRotatedAt
		// has whole seconds, and two rotations in one second would look alike.
		out.ConfirmedBy = "status"
		return m.Status.RotateHandled == credentialplan.HandledValue(value), nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the new secret of %s/%s: %w (kubectl describe m2mclient %s shows its conditions)", ns, name, err, name)
	}
	if t := m.Status.SecretRotatedAt; t != nil {
		out.SecretRotatedAt = t.UTC().Format(time.RFC3339)
	}
	if t := m.Status.NextRotationAt; t != nil {
		out.NextRotationAt = t.UTC().Format(time.RFC3339)
	}
	return out, nil
}
