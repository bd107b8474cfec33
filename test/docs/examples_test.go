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
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/testenv"
)

// program is an example as its README says to run it.
type program struct {
	name string
	argv []string
}

// runExamples runs every example API with every example client, as examples/README.md says,
// from the work directory (so with the default credential directory .dev/credentials/...).
func runExamples(t *testing.T, d *devEnv) {
	root := testenv.RepoRoot()
	for _, p := range []string{"client", "api"} {
		if err := goBuild(filepath.Join(d.bin, "example-go-"+p), "./examples/go/"+p); err != nil {
			t.Fatal(err)
		}
	}
	apis := []program{{"go", []string{filepath.Join(d.bin, "example-go-api")}}}
	clients := []program{{"go", []string{filepath.Join(d.bin, "example-go-client")}}}
	if node, ok := nodeWithModules(t, root); ok {
		apis = append(apis, program{"node", []string{node, filepath.Join(root, "examples", "node", "api.mjs")}})
		clients = append(clients, program{"node", []string{node, filepath.Join(root, "examples", "node", "client.mjs")}})
	}
	if py, ok := pythonWithPyJWT(t); ok {
		apis = append(apis, program{"python", []string{py, filepath.Join(root, "examples", "python", "api.py")}})
		clients = append(clients, program{"python", []string{py, filepath.Join(root, "examples", "python", "client.py")}})
	}
	for _, api := range apis {
		t.Run(api.name+" API", func(t *testing.T) {
			addr := startAPI(t, d, api)
			for _, c := range clients {
				out, err := runProgram(d, c, "BILLING_API=http://"+addr)
				if err != nil || !strings.Contains(out, "200") || !strings.Contains(out, "invoices for payments/m2mc_") {
					t.Errorf("%s client against the %s API: %v\n%s", c.name, api.name, err, out)
				}
			}
		})
	}
}

func runProgram(d *devEnv, p program, env ...string) (string, error) {
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir, cmd.Env = d.work, append(append([]string{}, d.env...), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// startAPI starts an example API on a free port and waits until it answers.
func startAPI(t *testing.T, d *devEnv, p program) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var log bytes.Buffer
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir, cmd.Env = d.work, append(append([]string{}, d.env...), "BILLING_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-exited:
			t.Fatalf("the %s API exited: %v\n%s", p.name, err, log.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/invoices"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the %s API answers %s without a token, not 401", p.name, resp.Status)
			}
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s API does not answer on %s:\n%s", p.name, addr, log.String())
		}
		time.Sleep(100 * time.Millisecond) // polling until it listens
	}
}

// nodeWithModules finds node and the example's installed dependencies.
func nodeWithModules(t *testing.T, root string) (string, bool) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Log("skipping the Node examples: no node on PATH")
		return "", false
	}
	if _, err := os.Stat(filepath.Join(root, "examples", "node", "node_modules", "express-oauth2-jwt-bearer")); err != nil {
		t.Log("skipping the Node examples: run (cd examples/node && npm install) first")
		return "", false
	}
	return node, true
}

// pythonWithPyJWT finds a python3 that has PyJWT and cryptography (Debian: python3-jwt).
func pythonWithPyJWT(t *testing.T) (string, bool) {
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		py, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(py, "-c", "import jwt, cryptography").Run() == nil {
			return py, true
		}
	}
	t.Log("skipping the Python examples: no python3 with PyJWT (apt-get install python3-jwt python3-cryptography)")
	return "", false
}
