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

package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	repoPath = regexp.MustCompile(`^(?:\./)?((?:api|config|controllers|docs|examples|hack|internal|test|tokenserver|verify)/[A-Za-z0-9_./-]*)$`)
	testName = regexp.MustCompile(`\b((?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*)\b`)
	goIdent  = regexp.MustCompile(`^((?:api|controllers|internal|tokenserver|verify)/[A-Za-z0-9_/]*)\.([A-Z][A-Za-z0-9_]*)$`)
	makeCall = regexp.MustCompile("`make ([a-z][a-z0-9-]*)")
	target   = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
)

// docFiles are the Markdown files a reader follows.
func docFiles(t *testing.T, root string) []string {
	files := []string{"README.md", "examples/README.md"}
	matches, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		rel, _ := filepath.Rel(root, m)
		files = append(files, rel)
	}
	return files
}

// TestDocReferencesExist: every repository file or directory, test or benchmark name and make
// target that the docs name exists, so that a rename or removal cannot leave a dead reference.
func TestDocReferencesExist(t *testing.T) {
	root := testenv.RepoRoot()
	funcs := testFuncs(t, root)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range target.FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	for _, doc := range docFiles(t, root) {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link, _, _ := strings.Cut(m[1], "#")
			if link == "" || strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			mustExist(t, doc, filepath.Join(root, filepath.Dir(doc), link), m[1])
		}
		for _, m := range codeSpan.FindAllStringSubmatch(text, -1) {
			for _, word := range strings.Fields(m[1]) {
				word = strings.Trim(word, ",;:()")
				if strings.ContainsAny(word, "<>*…") {
					continue
				}
				if q := goIdent.FindStringSubmatch(word); q != nil {
					mustDeclare(t, doc, filepath.Join(root, q[1]), q[2], word)
					continue
				}
				if p := repoPath.FindStringSubmatch(word); p != nil {
					mustExist(t, doc, filepath.Join(root, strings.TrimSuffix(p[1], "/")), word)
				}
			}
		}
		for _, m := range testName.FindAllStringSubmatch(text, -1) {
			if !funcs[m[1]] {
				t.Errorf("%s names %s, which no _test.go file defines", doc, m[1])
			}
		}
		for _, m := range makeCall.FindAllStringSubmatch(text, -1) {
			if !targets[m[1]] {
				t.Errorf("%s names `make %s`, which the Makefile does not define", doc, m[1])
			}
		}
	}
}

func mustExist(t *testing.T, doc, path, as string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s names %s, which does not exist", doc, as)
	}
}

// mustDeclare checks that the Go package in dir declares the identifier.
func mustDeclare(t *testing.T, doc, dir, ident, as string) {
	t.Helper()
	decl := regexp.MustCompile(`(?m)^(?:func|type|var|const)\s+(?:\([^)]*\)\s*)?` + ident + `\b|^\t` + ident + `\b`)
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && decl.Match(data) {
			return
		}
	}
	t.Errorf("%s names %s, which is not declared in %s", doc, as, dir)
}

// testFuncs returns the names of every Test, Benchmark and Fuzz function of the repository.
func testFuncs(t *testing.T, root string) map[string]bool {
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Za-z0-9_]*)\(`)
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(data), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snippetSources are where the code snippets of the docs come from, by language.
var snippetSources = map[string][]string{
	"go":     {"examples/go/client/main.go", "examples/go/api/main.go"},
	"js":     {"examples/node/api.mjs", "examples/node/client.mjs"},
	"python": {"examples/python/api.py", "examples/python/client.py"},
}

// TestDocSnippetsAreFromTheExamples: every Go, JavaScript and Python snippet of the README and
// the walkthrough is an excerpt of an example that test/docs builds and runs (its lines, in
// order and without a gap, ignoring indentation), so no snippet is a fragment that cannot
// compile or a program nobody ran.
func TestDocSnippetsAreFromTheExamples(t *testing.T) {
	root := testenv.RepoRoot()
	sources := map[string][][]string{}
	for lang, files := range snippetSources {
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				t.Fatal(err)
			}
			sources[lang] = append(sources[lang], normalizedLines(string(data)))
		}
	}
	for _, doc := range []string{"README.md", "docs/walkthrough.md"} {
		blocks, err := readBlocks(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			srcs, ok := sources[b.lang]
			if !ok {
				continue
			}
			snippet := normalizedLines(b.text)
			if !slices.ContainsFunc(srcs, func(src []string) bool { return containsRun(src, snippet) }) {
				t.Errorf("%s:%d: this %s snippet is not an excerpt of %s: copy it from there\n%s",
					doc, b.line, b.lang, strings.Join(snippetSources[b.lang], " or "), b.text)
			}
		}
	}
}

func normalizedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// containsRun reports whether part appears in whole as consecutive lines.
func containsRun(whole, part []string) bool {
	for i := 0; i+len(part) <= len(whole); i++ {
		if slices.Equal(whole[i:i+len(part)], part) {
			return true
		}
	}
	return false
}

// TestChanges: the steps runStep may run again are reads.
func TestChanges(t *testing.T) {
	for script, want := range map[string]bool{
		"kubectl apply -f config/samples/":                                            true,
		"kubectl -n payments annotate m2mclient billing-worker auth.m2m.dev/rotate=1": true,
		"kubectl create namespace mallory":                                            true,
		"kubectl -n billing patch scopepolicy billing --type json -p '[]'":            true,
		"kubectl -n payments get m2mclient billing-worker":                            false,
		"ASSERTION=$(kubectl -n payments create token billing-robot --audience x)":    false,
		"curl -s -u \"$id:$secret\" -d grant_type=client_credentials \"$TOKEN_URL\"":  false,
		"cat .dev/credentials/payments/billing-admin/scope; echo":                     false,
	} {
		if got := changes(script); got != want {
			t.Errorf("changes(%q) = %v, want %v", script, got, want)
		}
	}
}
