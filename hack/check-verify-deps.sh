#!/usr/bin/env bash
# Checks what an API team gets by importing verify: a fresh consumer module in a temporary
# directory outside the repository requires github.com/m2m-dev/m2m-operator/verify (replaced by
# this checkout's ./verify), imports verify, verify/grpcverify and verify/verifytest, and runs
# `go mod tidy` and `go build`. No module of its `go list -m all` may come from k8s.io/ or
# sigs.k8s.io/: those would tie the consumer's own client-go to the operator's.
#   hack/check-verify-deps.sh      # or: make check-verify-deps
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
module=github.com/m2m-dev/m2m-operator/verify

die() { echo "check-verify-deps: $*" >&2; exit 1; }

[[ -f verify/go.mod ]] || die "verify is not its own module yet (no verify/go.mod)"

# The consumer sees the module as it is published: no workspace, no flags from the caller.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

declared="$(cd verify && go list -m)"
[[ "$declared" == "$module" ]] || die "verify/go.mod declares module $declared, want $module"
# The consumer is written at verify's own go version: the oldest Go an importer may be on.
goversion="$(cd verify && go list -m -f '{{.GoVersion}}')"
[[ -n "$goversion" ]] || die "verify/go.mod has no go line"

work="$(mktemp -d "${TMPDIR:-/tmp}/m2m-verify-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cat >"$work/go.mod" <<EOF
module example.com/verify-consumer

go $goversion

require $module v0.0.0

replace $module => $root/verify
EOF
cat >"$work/main.go" <<EOF
// Command verify-consumer is an API team's module that imports every public package of verify.
package main

import (
	_ "$module"
	_ "$module/grpcverify"
	_ "$module/verifytest"
)

func main() {}
EOF

(cd "$work" && go mod tidy) || die "go mod tidy failed in a fresh module that imports verify"
(cd "$work" && go build -o /dev/null .) || die "a fresh module that imports verify does not build"

modules="$(cd "$work" && go list -m all)"
offending="$(grep -E '^(k8s\.io|sigs\.k8s\.io)/' <<<"$modules" || true)"
if [[ -n "$offending" ]]; then
  echo "check-verify-deps: a module that imports verify gets Kubernetes modules in its graph:" >&2
  echo "$offending" >&2
  echo "check-verify-deps: why (the import path through which each is needed):" >&2
  (cd "$work" && go mod why -m $(cut -d' ' -f1 <<<"$offending")) >&2 || true
  exit 1
fi
echo "check-verify-deps: a fresh module importing verify (go $goversion) has $(($(wc -l <<<"$modules") - 1)) dependency modules, none from k8s.io or sigs.k8s.io"
