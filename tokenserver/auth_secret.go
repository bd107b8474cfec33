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

package tokenserver

// client_secret_basic and client_secret_post (RFC 6749 §2.3.1): the client id and secret,
// from HTTP Basic or the body (parseClientAuth reads either). The server holds only the
// SHA-256 of each accepted secret.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// clientSecret is the ClientSecret method.
type clientSecret struct{}

// unknownClientHash is compared against when the client id is unknown, so that an unknown id
// costs the same hash and compare as a wrong secret.
var unknownClientHash = credential.HashSecret("unknown client")

func (clientSecret) record() string { return credential.MethodClientSecret }

func (clientSecret) advertised() []string {
	return []string{"client_secret_basic", "client_secret_post"}
}

// compile reads the accepted secret hashes and when each stops being accepted.
func (clientSecret) compile(c *Client, rec *credential.Record) error {
	for i, s := range rec.Secrets {
		h, err := credential.ParseHash(s.SHA256)
		if err != nil {
			return fmt.Errorf("secrets[%d]: %w", i, err)
		}
		a := acceptedSecret{hash: h}
		if s.NotAfter != nil {
			a.notAfter = *s.NotAfter
		}
		c.secrets = append(c.secrets, a)
	}
	return nil
}

// presented: every request without a client assertion (with no credentials at all, it fails).
func (clientSecret) presented(req *tokenRequest) bool { return len(req.assertion) == 0 }

// authenticate compares the SHA-256 of the presented secret in constant time with every
// accepted, unexpired hash of the client.
func (clientSecret) authenticate(_ context.Context, s *Server, req *tokenRequest, now time.Time) (*Client, *oauthError) {
	if len(req.id) == 0 {
		return nil, errAuthFailed
	}
	presented := sha256.Sum256(req.secret)
	c := s.index.lookup(req.id)
	if c == nil {
		subtle.ConstantTimeCompare(presented[:], unknownClientHash[:])
		return nil, s.authFailed(string(req.id))
	}
	match := 0
	for i := range c.secrets {
		a := &c.secrets[i]
		eq := subtle.ConstantTimeCompare(presented[:], a.hash[:])
		if a.notAfter.IsZero() || now.Before(a.notAfter) {
			match |= eq
		}
	}
	_, ownMethod := c.auth.(clientSecret)
	if match != 1 || len(req.secret) == 0 || !ownMethod {
		return nil, s.authFailed(c.id)
	}
	return c, nil
}
