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
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// shell is one bash session, as a reader's terminal: variables and the working directory
// carry over from one step to the next.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	nonce string
	dir   string // for the step files
	n     int
}

func startShell(workdir string, env []string) (*shell, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := &shell{nonce: hex.EncodeToString(b), dir: filepath.Join(workdir, ".doc-steps")}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	s.cmd = exec.Command("bash", "--noprofile", "--norc")
	s.cmd.Dir, s.cmd.Env = workdir, env
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s.cmd.Stdout // merged, as a terminal shows it
	s.out = bufio.NewReader(stdout)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	// Every failing command is reported, also in the middle of a block.
	_, err = fmt.Fprintf(s.stdin, "set -o pipefail\ntrap 'echo \"@@failed-%s: $BASH_COMMAND\"' ERR\n", s.nonce)
	return s, err
}

// run runs one step in the session and returns its output (stdout and stderr) and the
// commands that failed. The step reads no standard input but its own heredocs.
func (s *shell) run(script string, timeout time.Duration) (string, []string, error) {
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("step-%03d.sh", s.n))
	if err := os.WriteFile(path, []byte(script+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	end := "@@end-" + s.nonce
	if _, err := fmt.Fprintf(s.stdin, "source %q </dev/null 2>&1; echo; echo %s\n", path, end); err != nil {
		return "", nil, err
	}
	type result struct {
		out    string
		failed []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var b strings.Builder
		var failed []string
		for {
			line, err := s.out.ReadString('\n')
			if err != nil {
				done <- result{b.String(), failed, fmt.Errorf("shell ended: %w", err)}
				return
			}
			switch t := strings.TrimRight(line, "\n"); {
			case t == end:
				done <- result{strings.TrimSuffix(b.String(), "\n"), failed, nil}
				return
			case strings.HasPrefix(t, "@@failed-"+s.nonce+": "):
				failed = append(failed, strings.TrimPrefix(t, "@@failed-"+s.nonce+": "))
			default:
				b.WriteString(line)
			}
		}
	}()
	select {
	case r := <-done:
		return r.out, r.failed, r.err
	case <-time.After(timeout):
		s.close()
		return "", nil, fmt.Errorf("step did not finish within %s", timeout)
	}
}

func (s *shell) close() {
	_ = s.stdin.Close()
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	_ = s.cmd.Wait()
}
