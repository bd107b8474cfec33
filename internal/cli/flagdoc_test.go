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
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// TestFlagReferenceIsFresh fails when docs/flags.md no longer matches the flags: a flag added,
// renamed, or given a new default or description without regenerating the reference.
func TestFlagReferenceIsFresh(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "docs", "flags.md")
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, FlagReference()) {
		t.Errorf("%s is stale: run `make generate` (go run ./hack/flagdoc > docs/flags.md) and commit it", path)
	}
}

// TestFlagReferenceCoversEveryCommand: a new subcommand must be added to the reference.
func TestFlagReferenceCoversEveryCommand(t *testing.T) {
	ref := FlagReference()
	for name := range commands {
		if !bytes.Contains(ref, []byte("$ m2m "+name+" --help\n")) {
			t.Errorf("docs/flags.md has no section for m2m %s", name)
		}
	}
}
