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

package credential

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/storeddoc"
)

const (
	// RecordVersion is the version of the record document this package writes and reads.
	// Version 2 adds two groups of optional fields: the revocation times (TokensNotBefore,
	// AudienceNotBefore) and the token-binding requirements (Record.TokenBinding,
	// AudienceGrant.TokenBinding).
	RecordVersion = 2
	// oldestRecordVersion is the oldest version still read (strictly, storeddoc.DecodeSince): a
	// version-1 record is a version-2 record without those fields. The previous release reads
	// version 1 only, so a record that needs none of them is still written as version 1 (Encode).
	oldestRecordVersion = 1
	// MaxRevokedAudiences bounds AudienceNotBefore: the controller folds a longer list into
	// TokensNotBefore (revoking more, never less), and the token server refuses such a record.
	MaxRevokedAudiences = 64
	// RecordKey is the data key of the record document in the credential record Secret.
	RecordKey = "record.json"
	// maxRecordSize bounds what the token server will decode.
	maxRecordSize = 256 << 10
	// recordKind names a record in messages.
	recordKind = "credential record"
)

// Record is the credential record: everything the token server needs to authenticate a client and
// decide what to issue, and nothing more. It never holds a plaintext secret.
type Record struct {
	Version   int    `json:"version"`
	ClientID  string `json:"clientID"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`

	// Method is the authentication method (ClientSecret, PrivateKeyJWT, ServiceAccount).
	Method string `json:"method"`
	// ServiceAccountName authenticates the client for the ServiceAccount method.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// JWKS is the client's public keys (a JWKS document) for the PrivateKeyJWT method, checked
	// and re-encoded by the controller (ParseClientJWKS, PublicJWKS).
	JWKS json.RawMessage `json:"jwks,omitempty"`

	// Secrets are the accepted client-secret hashes: the current one without NotAfter, and during
	// a rotation's grace period the previous one with NotAfter.
	Secrets []SecretHash `json:"secrets,omitempty"`

	// Grants are the granted scopes per audience.
	Grants []AudienceGrant `json:"grants,omitempty"`

	// TokenTTLSeconds is the client's requested token lifetime; 0 means the server default.
	TokenTTLSeconds int64 `json:"tokenTTLSeconds,omitempty"`
	// Disabled stops issuance.
	Disabled bool `json:"disabled,omitempty"`
	// Claims are extra string claims for every token.
	Claims map[string]string `json:"claims,omitempty"`

	// TokensNotBefore (unix seconds) revokes every token of this client issued before it: a
	// token whose iat is lower is no longer valid, for any audience. 0: none revoked. Written
	// by the controller (the revoke-tokens annotation, disabling and enabling) and kept while
	// a token issued before it may still be alive (the maximum token TTL).
	TokensNotBefore int64 `json:"tokensNotBefore,omitempty"`
	// AudienceNotBefore revokes the client's tokens for one audience issued before a time (a
	// grant removed or narrowed), kept as long as TokensNotBefore. At most MaxRevokedAudiences.
	AudienceNotBefore []AudienceNotBefore `json:"audienceNotBefore,omitempty"`
	// TokenBinding is TokenBindingDPoP when the client asked for bound tokens only
	// (M2MClient spec.tokenBinding): its token requests without a DPoP proof are refused.
	TokenBinding string `json:"tokenBinding,omitempty"`
}

// AudienceNotBefore revokes a client's tokens for Audience whose iat is lower than NotBefore
// (unix seconds).
type AudienceNotBefore struct {
	Audience  string `json:"audience"`
	NotBefore int64  `json:"notBefore"`
}

// Token binding values of the record (the API's TokenBinding and TokenBindingPolicy).
const (
	// TokenBindingDPoP: every token of the client is DPoP-bound (RFC 9449).
	TokenBindingDPoP = "DPoP"
	// TokenBindingRequired: every token for the audience is bound (ScopePolicy spec.tokenBinding).
	TokenBindingRequired = "Required"
)

// SecretHash is one accepted client-secret hash.
type SecretHash struct {
	// SHA256 is the lowercase hex SHA-256 of the secret.
	SHA256 string `json:"sha256"`
	// NotAfter, when set, is when this secret stops being accepted.
	NotAfter *time.Time `json:"notAfter,omitempty"`
}

// AudienceGrant is what one audience grants the client.
type AudienceGrant struct {
	Audience string   `json:"audience"`
	Scopes   []string `json:"scopes"`
	// MaxTokenTTLSeconds caps token lifetime for this audience; 0 means no cap from the policy.
	MaxTokenTTLSeconds int64 `json:"maxTokenTTLSeconds,omitempty"`
	// PolicyNamespace is where the ScopePolicy owning the audience lives (for introspection).
	PolicyNamespace string `json:"policyNamespace,omitempty"`
	// TokenBinding is TokenBindingRequired when the audience's ScopePolicy requires bound
	// tokens: the client's requests for it without a DPoP proof are refused. It comes from the
	// policy only, so no client can weaken it.
	TokenBinding string `json:"tokenBinding,omitempty"`
}

// Encode serialises the record deterministically (so an unchanged record is byte-identical and
// causes no write).
//
// A record without version-2 fields (revocation times, token binding) is written as version 1,
// byte for byte what the previous release writes and reads (it reads version 1 only): an
// upgrade rewrites no record, and a rollback to it loses only the clients whose record needs a
// version-2 field, which it refuses (fail closed): those with a revocation still in force or a
// binding requirement.
func (r *Record) Encode() ([]byte, error) {
	r.Version = RecordVersion
	if !r.hasVersion2Fields() {
		r.AudienceNotBefore = nil
		r.Version = oldestRecordVersion
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding credential record: %w", err)
	}
	return b, nil
}

// DecodeRecord parses and validates a record document of this release's version or the next
// (storeddoc: version skew during an upgrade or a rollback). Any error means the record must be
// skipped: it is never half-used.
//
// A version-1 record, written by the previous release's controller, is read too, strictly: it
// is a version-2 record without the version-2 fields.
func DecodeRecord(data []byte) (*Record, error) {
	return storeddoc.DecodeValidSince[Record](recordKind, data, maxRecordSize, oldestRecordVersion, RecordVersion)
}

// Validate checks the invariants the token server relies on.
func (r *Record) Validate() error {
	if err := storeddoc.CheckVersionSince(recordKind, r.Version, oldestRecordVersion, RecordVersion); err != nil {
		return err
	}
	if r.TokenBinding != "" && r.TokenBinding != TokenBindingDPoP {
		return fmt.Errorf("credential record has an unknown token binding %q", r.TokenBinding)
	}
	if !strings.HasPrefix(r.ClientID, ClientIDPrefix) || len(r.ClientID) > 64 {
		return fmt.Errorf("credential record has an invalid client id")
	}
	if r.Namespace == "" || r.Name == "" {
		return errors.New("credential record lacks the client's namespace or name")
	}
	if r.TokenTTLSeconds < 0 {
		return errors.New("credential record has a negative token TTL")
	}
	if err := r.validateMethod(); err != nil {
		return err
	}
	for i, s := range r.Secrets {
		if _, err := ParseHash(s.SHA256); err != nil {
			return fmt.Errorf("credential record secrets[%d]: %w", i, err)
		}
	}
	seen := make(map[string]bool, len(r.Grants))
	for i, g := range r.Grants {
		if g.Audience == "" {
			return fmt.Errorf("credential record grants[%d] has no audience", i)
		}
		if seen[g.Audience] {
			return fmt.Errorf("credential record grants[%d] repeats audience %q", i, g.Audience)
		}
		seen[g.Audience] = true
		if g.MaxTokenTTLSeconds < 0 {
			return fmt.Errorf("credential record grants[%d] has a negative max token TTL", i)
		}
		if g.TokenBinding != "" && g.TokenBinding != TokenBindingRequired {
			return fmt.Errorf("credential record grants[%d] has an unknown token binding %q", i, g.TokenBinding)
		}
	}
	return r.validateRevocations()
}

// hasVersion2Fields reports whether the record holds a field version 1 lacks.
func (r *Record) hasVersion2Fields() bool {
	if r.TokensNotBefore != 0 || len(r.AudienceNotBefore) != 0 || r.TokenBinding != "" {
		return true
	}
	for _, g := range r.Grants {
		if g.TokenBinding != "" {
			return true
		}
	}
	return false
}

// validateRevocations checks the revocation times: not negative, one entry per audience, and
// at most MaxRevokedAudiences of them.
func (r *Record) validateRevocations() error {
	if r.Version == oldestRecordVersion && (r.hasVersion2Fields() || r.AudienceNotBefore != nil) {
		return errors.New("credential record of version 1 holds version-2 fields (revocation times or token binding)")
	}
	if r.TokensNotBefore < 0 {
		return errors.New("credential record has a negative tokensNotBefore")
	}
	if len(r.AudienceNotBefore) > MaxRevokedAudiences {
		return fmt.Errorf("credential record revokes %d audiences, more than %d", len(r.AudienceNotBefore), MaxRevokedAudiences)
	}
	seen := make(map[string]bool, len(r.AudienceNotBefore))
	for i, a := range r.AudienceNotBefore {
		if a.Audience == "" || a.NotBefore <= 0 || seen[a.Audience] {
			return fmt.Errorf("credential record audienceNotBefore[%d] is invalid or repeated", i)
		}
		seen[a.Audience] = true
	}
	return nil
}

// Authentication methods as the record spells them (the API's AuthenticationMethod values).
const (
	MethodClientSecret   = "ClientSecret"
	MethodPrivateKeyJWT  = "PrivateKeyJWT"
	MethodServiceAccount = "ServiceAccount"
)

// validateMethod checks that the record carries what its method needs, and only that: no
// secret hashes for the secretless methods.
func (r *Record) validateMethod() error {
	switch r.Method {
	case "", MethodClientSecret:
		return nil
	case MethodServiceAccount:
		if r.ServiceAccountName == "" || strings.ContainsAny(r.ServiceAccountName, ":/") {
			return errors.New("credential record of method ServiceAccount lacks a valid serviceAccountName")
		}
	case MethodPrivateKeyJWT:
		// No JWKS means no usable key (the controller found the client's JWKS invalid): every
		// assertion is refused.
		if len(r.JWKS) == 0 {
			break
		}
		if _, err := ParseClientJWKS(r.JWKS); err != nil {
			return fmt.Errorf("credential record jwks: %w", err)
		}
	default:
		return fmt.Errorf("credential record has an unknown method %q", r.Method)
	}
	if len(r.Secrets) > 0 {
		return fmt.Errorf("credential record of method %s must hold no secret hash", r.Method)
	}
	return nil
}
