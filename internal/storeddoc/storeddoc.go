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

// Package storeddoc decodes the versioned JSON documents the controller stores in Secrets and the
// token server reads (credential records, signing keys), with one rule for version skew: a
// reader accepts the version it writes and the next one. Version N+1 may add optional fields
// and must not change the meaning of the fields of version N, so a reader of version N decodes
// an N+1 document, ignoring what it does not know; its own version it decodes strictly (an
// unknown field there is an error). Upgrade the readers (token servers) before the writer (the
// controller) starts writing the next version, and roll back in the reverse order.
package storeddoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Decode decodes the document data of kind (for messages) into v: at most maxSize bytes, one
// JSON object with a "version" of current or current+1, and nothing after it.
func Decode(kind string, data []byte, maxSize, current int, v any) error {
	return DecodeSince(kind, data, maxSize, current, current, v)
}

// DecodeSince is Decode for a document type whose version current only added optional fields
// to the versions back to oldest: it also accepts those, decoded strictly like current. This
// is what lets a reader of the new version start while the documents are still of the old one
// (the readers are upgraded first).
func DecodeSince(kind string, data []byte, maxSize, oldest, current int, v any) error {
	if len(data) == 0 {
		return fmt.Errorf("%s is empty", kind)
	}
	if len(data) > maxSize {
		return fmt.Errorf("%s is %d bytes, more than %d", kind, len(data), maxSize)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return fmt.Errorf("decoding %s: %w", kind, err)
	}
	if err := CheckVersionSince(kind, head.Version, oldest, current); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if head.Version <= current {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", kind, err)
	}
	if dec.More() {
		return errors.New(kind + " has trailing data")
	}
	return nil
}

// PeekVersion returns the "version" of a document without decoding the rest, for a reader that
// also reads an older version than the one it writes; false when data is no JSON object with
// a numeric version.
func PeekVersion(data []byte) (int, bool) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil || head.Version == nil {
		return 0, false
	}
	return *head.Version, true
}

// Document is a stored document type whose Validate checks the invariants its readers rely on.
type Document[T any] interface {
	*T
	Validate() error
}

// DecodeValid decodes data as Decode does into a new T and validates it. Any error means the
// document must be skipped as a whole: it is never half-used.
func DecodeValid[T any, P Document[T]](kind string, data []byte, maxSize, current int) (*T, error) {
	return DecodeValidSince[T, P](kind, data, maxSize, current, current)
}

// DecodeValidSince is DecodeValid with the versions of DecodeSince.
func DecodeValidSince[T any, P Document[T]](kind string, data []byte, maxSize, oldest, current int) (*T, error) {
	v := new(T)
	if err := DecodeSince(kind, data, maxSize, oldest, current, v); err != nil {
		return nil, err
	}
	if err := P(v).Validate(); err != nil {
		return nil, err
	}
	return v, nil
}

// CheckVersion is the version rule of Decode (current or current+1), for the Validate of a
// document built in memory as well as of one decoded.
func CheckVersion(kind string, version, current int) error {
	return CheckVersionSince(kind, version, current, current)
}

// CheckVersionSince is the version rule of DecodeSince: oldest to current+1.
func CheckVersionSince(kind string, version, oldest, current int) error {
	if version < oldest || version > current+1 {
		if oldest == current {
			return fmt.Errorf("%s version %d is not supported (this release reads %d and %d)", kind, version, current, current+1)
		}
		return fmt.Errorf("%s version %d is not supported (this release reads %d to %d)", kind, version, oldest, current+1)
	}
	return nil
}
