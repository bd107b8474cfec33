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

import (
	"io"
	"strconv"
	"time"
)

// auditLog writes one JSON line per issued token: client id, audience, scopes, jti and expiry,
// never a secret, a hash or the token. It writes directly rather than through the process logger
// because that logger samples repeated messages, and an audit trail must not lose lines. Each
// line is one Write call, so concurrent lines never interleave on a file or pipe.
type auditLog struct {
	w io.Writer
}

// issued writes the audit line of one token; buf is scratch space owned by the caller.
func (a auditLog) issued(buf []byte, now time.Time, c *Client, aud *audience, scope, jti []byte, exp int64) []byte {
	if a.w == nil {
		return buf
	}
	b := append(buf[:0], `{"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"info","logger":"tokenserver.audit","msg":"token issued","clientID":`...)
	b = appendJSONString(b, c.id)
	b = appendJSONString(append(b, `,"namespace":`...), c.namespace)
	b = appendJSONString(append(b, `,"name":`...), c.name)
	b = appendJSONString(append(b, `,"audience":`...), aud.name)
	b = append(append(append(b, `,"scope":"`...), scope...), '"')
	b = append(append(append(b, `,"jti":"`...), jti...), '"')
	b = strconv.AppendInt(append(b, `,"exp":`...), exp, 10)
	b = append(b, "}\n"...)
	_, _ = a.w.Write(b)
	return b
}
