#!/usr/bin/env bash
# Checks what an API team gets by importing verify: fresh consumer modules in a temporary
# directory outside the repository require github.com/m2m-dev/m2m-operator/verify (and, for
# gRPC, .../verify/grpcverify), each replaced by this checkout, import them and run `go mod tidy`
# and `go build`. No module of their `go list -m all` may come from k8s.io/ or sigs.k8s.io/
# (those would tie the consumer's own client-go to the operator's), and verify alone brings only
# go-jose and x/sync.
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

# consumer DIR PACKAGE... writes a fresh module in $work/DIR importing the packages (each of
# verify's modules replaced by this checkout), tidies and builds it, and prints its module list.
consumer() {
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  {
    printf 'module example.com/verify-consumer\n\ngo %s\n\n' "$goversion"
    printf 'require %s v0.0.0\n' "$module"
    printf 'replace %s => %s/verify\n' "$module" "$root"
    if printf '%s\n' "$@" | grep -q grpcverify; then
      printf 'require %s/grpcverify v0.0.0\n' "$module"
      printf 'replace %s/grpcverify => %s/verify/grpcverify\n' "$module" "$root"
    fi
  } >"$dir/go.mod"
  {
    printf '// Command verify-consumer is an API team'"'"'s module importing verify.\npackage main\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n\nfunc main() {}\n'
  } >"$dir/main.go"
  (cd "$dir" && go mod tidy >&2) || die "go mod tidy failed in a fresh module that imports $*"
  (cd "$dir" && go build -o /dev/null .) || die "a fresh module that imports $* does not build"
  (cd "$dir" && go list -m all | tail -n +2)
}

check() {
  local name="$1" modules="$2"
  local offending
  offending="$(grep -E '^(k8s\.io|sigs\.k8s\.io)/' <<<"$modules" || true)"
  if [[ -n "$offending" ]]; then
    echo "check-verify-deps: a module that imports $name gets Kubernetes modules in its graph:" >&2
    echo "$offending" >&2
    exit 1
  fi
  echo "check-verify-deps: a fresh module importing $name (go $goversion) has $(grep -c . <<<"$modules") dependency modules, none from k8s.io or sigs.k8s.io"
}

# An HTTP API team: verify and its test issuer. Its graph is verify's two requirements (and
# verify's own module, replaced here) — like go-oidc's.
http="$(consumer http "$module" "$module/verifytest")"
check "verify and verify/verifytest" "$http"
extra="$(grep -vE "^($module|github\.com/go-jose/go-jose/v4|golang\.org/x/sync)( |$)" <<<"$http" || true)"
[[ -z "$extra" ]] || die "verify should bring only go-jose and x/sync; a fresh module also gets: $(tr '\n' ' ' <<<"$extra")"
# A gRPC API team: grpcverify, its own module, adds grpc and what grpc needs.
check "verify/grpcverify" "$(consumer grpc "$module" "$module/grpcverify")"
