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

// Package docs runs the documentation: the commands of docs/walkthrough.md and of the README
// blocks marked to run, against a system started as `m2m dev` starts it, with their shown
// output checked loosely; the examples against the same system; and every repository path the
// docs name, so that the docs cannot drift from the code.
package docs

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// A block is one fenced code block of a Markdown file.
type block struct {
	file string
	line int    // of the opening fence
	lang string // sh, console, go, yaml, ...
	text string
	// section is the heading ("## ...") the block is under.
	section string
	// run is set by a preceding "<!-- doc-test: run -->", skip by "<!-- doc-test: skip ... -->".
	run, skip bool
}

var marker = regexp.MustCompile(`^<!--\s*doc-test:\s*(run|skip)\b.*-->\s*$`)

// readBlocks returns the fenced code blocks of a Markdown file.
func readBlocks(path string) ([]block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out       []block
		cur       *block
		body      strings.Builder
		run, skip bool
		n         int
		section   string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{file: path, line: n, lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), run: run, skip: skip, section: section}
			run, skip = false, false
			body.Reset()
		case cur != nil && trimmed == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case marker.MatchString(trimmed):
			m := marker.FindStringSubmatch(trimmed)
			run, skip = m[1] == "run", m[1] == "skip"
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
			run, skip = false, false
		case trimmed != "":
			run, skip = false, false // a marker applies to the next block only, directly below it
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: unterminated code block", path, cur.line)
	}
	return out, sc.Err()
}

// A step is what the test runs at once: a whole sh block, or one "$ command" of a console
// block with the output shown under it.
type step struct {
	where   string // file:line
	console bool   // a "$ command" of a console block (see runStep)
	script  string
	want    []string // output lines shown, checked loosely; empty for sh blocks
}

// steps splits a block into steps.
func (b block) steps() []step {
	where := fmt.Sprintf("%s:%d", b.file, b.line)
	if b.lang == "sh" {
		return []step{{where: where, script: b.text}}
	}
	var out []step
	for _, line := range strings.Split(strings.TrimRight(b.text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			out = append(out, step{where: where, console: true, script: strings.TrimPrefix(line, "$ ")})
		case len(out) > 0 && strings.HasSuffix(out[len(out)-1].script, "\\") && len(out[len(out)-1].want) == 0:
			out[len(out)-1].script += "\n" + line // a command continued on the next line
		case len(out) > 0:
			out[len(out)-1].want = append(out[len(out)-1].want, line)
		}
	}
	return out
}

var age = regexp.MustCompile(`^\d+[smhd]$`)

// linePattern turns a shown output line into a loose pattern: fields separated by any
// whitespace, "…" standing for anything, an AGE such as 5s for any age.
func linePattern(want string) *regexp.Regexp {
	fields := strings.Fields(want)
	for i, f := range fields {
		if age.MatchString(f) {
			fields[i] = `\S+`
			continue
		}
		parts := strings.Split(f, "…")
		for j, p := range parts {
			parts[j] = regexp.QuoteMeta(p)
		}
		fields[i] = strings.Join(parts, ".*")
	}
	return regexp.MustCompile(`^\s*` + strings.Join(fields, `\s+`) + `\s*$`)
}

// matches reports whether every shown line matches a line of got, in order; the first that
// does not is returned.
func matches(got string, want []string) (bool, string) {
	lines := strings.Split(got, "\n")
	i := 0
	for _, w := range want {
		if strings.TrimSpace(w) == "" {
			continue
		}
		re := linePattern(w)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			return false, w
		}
		i++
	}
	return true, ""
}
