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
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/m2m-dev/m2m-operator/internal/cli"
	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// devEnv is a system started as `make dev` starts it, in a directory laid out as the
// repository is after `make build`: .dev/ (kubeconfig, credentials), config/samples, bin/m2m.
type devEnv struct {
	sys  *cli.DevSystem
	work string
	bin  string
	out  *testenv.SyncBuffer
	env  []string // for the shell: PATH with kubectl and bin/
}

var (
	devOnce sync.Once
	dev     *devEnv
	devErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if dev != nil {
		dev.sys.Stop()
		_ = os.RemoveAll(dev.work)
	}
	os.Exit(code)
}

// system starts the shared system on first use.
func system(t *testing.T) *devEnv {
	t.Helper()
	devOnce.Do(func() { dev, devErr = startDev() })
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}

func startDev() (*devEnv, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, err
	}
	kubectl, err := testenv.Kubectl()
	if err != nil {
		return nil, err
	}
	helm, err := testenv.Helm()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "m2m-docs-")
	if err != nil {
		return nil, err
	}
	d := &devEnv{work: work, bin: filepath.Join(work, "bin"), out: &testenv.SyncBuffer{}}
	if err := d.layout(kubectl, helm); err != nil {
		return nil, err
	}
	d.env = append(cleanEnv(), "PATH="+d.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBEBUILDER_ASSETS="+assets)
	// Helm's cache and config in the work directory, not the user's home.
	for _, v := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		d.env = append(d.env, v+"="+filepath.Join(work, ".helm", strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(v, "HELM_"), "_HOME"))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Exactly what `m2m dev` runs (see cli.Dev), on a free port: the docs must not depend on 8080.
	d.sys, err = cli.StartDev(ctx, cli.DevConfig{
		Addr: "127.0.0.1:0", Dir: filepath.Join(work, ".dev"), Namespace: "m2m-system",
		Samples: true, Out: d.out, CredentialsDir: filepath.Join(work, ".dev", "credentials"),
		AuditLog: io.Discard, Say: func(format string, a ...any) { fmt.Fprintf(d.out, "m2m dev: "+format+"\n", a...) },
	})
	if err != nil {
		return nil, err
	}
	// A reader starts once make dev has printed a token line per sample client.
	for deadline := time.Now().Add(time.Minute); strings.Count(d.out.String(), "m2m dev: token for ") < 4; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("m2m dev printed no token line for each sample client within a minute:\n%s", d.out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling what m2m dev printed, as a reader watches it
	}
	return d, nil
}

// layout makes the work directory look like a checkout after `make build`, with kubectl and
// helm on the PATH as a reader has them.
func (d *devEnv) layout(kubectl, helm string) error {
	root := testenv.RepoRoot()
	if err := os.MkdirAll(d.bin, 0o755); err != nil {
		return err
	}
	for name, path := range map[string]string{"kubectl": kubectl, "helm": helm} {
		if err := os.Symlink(path, filepath.Join(d.bin, name)); err != nil {
			return err
		}
	}
	for _, dir := range []string{"config", "charts"} {
		if err := os.Symlink(filepath.Join(root, dir), filepath.Join(d.work, dir)); err != nil {
			return err
		}
	}
	return goBuild(filepath.Join(d.bin, "m2m"), ".")
}

// goBuild builds a package of this module.
func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// cleanEnv is this process's environment without what a reader's terminal would not have.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "KUBECONFIG", "PATH", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "KUBEBUILDER_ASSETS", "M2M_CREDENTIALS", "M2M_ISSUER", "BILLING_API", "BILLING_ADDR":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// runDoc runs the blocks of a Markdown file in one shell, as a reader pastes them into one
// terminal: every sh block (all of them, or only those marked "<!-- doc-test: run -->" when
// onlyMarked), every "$ command" of a console block, except blocks marked
// "<!-- doc-test: skip -->". A step must not fail nor print a warning, and what a console block
// shows under a command must appear in its output (loosely: see linePattern). A console
// command that only reads (see changes) and fails or whose output does not match yet is run
// again for a while: the system converges asynchronously, and a reader is slower than a test.
// Everything that changes something runs exactly once, and its first output is checked.
func runDoc(t *testing.T, sh *shell, doc string, onlyMarked bool, sections func(string) bool) {
	blocks, err := readBlocks(filepath.Join(testenv.RepoRoot(), doc))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, b := range blocks {
		if b.skip || (b.lang != "sh" && b.lang != "console") || (onlyMarked && !b.run) || !sections(b.section) {
			continue
		}
		for _, st := range b.steps() {
			ran++
			runStep(t, sh, doc, b.line, st)
		}
	}
	if ran == 0 {
		t.Fatalf("%s: no step ran", doc)
	}
}

var warning = regexp.MustCompile(`(?m)^Warning:|\bWARNING\b`)

func runStep(t *testing.T, sh *shell, doc string, line int, st step) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	retry := st.console && !changes(st.script)
	for {
		out, failed, err := sh.run(st.script, 2*time.Minute)
		if err != nil {
			t.Fatalf("%s:%d: %s\n%v", doc, line, st.script, err)
		}
		ok, missing := matches(out, st.want)
		switch {
		case len(failed) > 0 && retry && time.Now().Before(deadline):
			// retried below
		case len(failed) > 0:
			t.Fatalf("%s:%d: a command failed: %s\n--- script:\n%s\n--- output:\n%s", doc, line, strings.Join(failed, "; "), st.script, out)
		case warning.MatchString(out):
			t.Fatalf("%s:%d: a warning:\n--- script:\n%s\n--- output:\n%s", doc, line, st.script, out)
		case ok && len(failed) == 0:
			t.Logf("%s:%d: $ %s\n%s", doc, line, st.script, out)
			return
		case !ok && (!retry || time.Now().After(deadline)):
			t.Fatalf("%s:%d: the output lacks a line like %q\n--- script:\n%s\n--- output:\n%s", doc, line, missing, st.script, out)
		}
		time.Sleep(200 * time.Millisecond) // polling: the system converges asynchronously
	}
}

// sectionsFrom returns the "## " sections of a Markdown file from the one named on.
func sectionsFrom(t *testing.T, doc, first string) map[string]bool {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), doc))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	on := false
	for _, line := range strings.Split(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			on = on || h == first
			out[h] = on
		}
	}
	if !on {
		t.Fatalf("%s has no section %q", doc, first)
	}
	return out
}

// kubectlVerbs are the kubectl commands the docs use; changing says which change something.
var kubectlVerbs = map[string]bool{
	"get": false, "describe": false, "wait": false, "logs": false, "version": false, "explain": false,
	"apply": true, "create": true, "patch": true, "annotate": true, "label": true, "delete": true,
	"edit": true, "replace": true, "scale": true, "set": true, "rollout": true,
}

// changes reports whether a script changes the system: a kubectl command that is not a read
// (kubectl create token only asks for a token).
func changes(script string) bool {
	words := strings.Fields(script)
	for i, w := range words {
		if filepathBase(w) != "kubectl" {
			continue
		}
		for j := i + 1; j < len(words); j++ {
			change, known := kubectlVerbs[words[j]]
			if !known {
				continue
			}
			if change && !(words[j] == "create" && j+1 < len(words) && words[j+1] == "token") {
				return true
			}
			break
		}
	}
	return false
}

func filepathBase(w string) string { return filepath.Base(strings.TrimLeft(w, "$(")) }

// TestDocs follows the docs as a newcomer does, in one system: the README down to its
// walkthrough section, the walkthrough, the rest of the README, then the examples.
func TestDocs(t *testing.T) {
	start := time.Now()
	d := system(t)
	t.Logf("system up in %s", time.Since(start).Round(time.Millisecond))
	// One terminal for all, as a reader keeps one open.
	sh, err := startShell(d.work, d.env)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.close()
	later := sectionsFrom(t, "README.md", "No shared secrets")
	t.Run("README", func(t *testing.T) { runDoc(t, sh, "README.md", true, func(s string) bool { return !later[s] }) })
	t.Run("walkthrough", func(t *testing.T) { runDoc(t, sh, "docs/walkthrough.md", false, func(string) bool { return true }) })
	t.Run("README, no shared secrets", func(t *testing.T) { runDoc(t, sh, "README.md", true, func(s string) bool { return later[s] }) })
	t.Run("examples", func(t *testing.T) { runExamples(t, d) })
	t.Logf("docs followed in %s", time.Since(start).Round(time.Millisecond))
}
