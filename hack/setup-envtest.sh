#!/usr/bin/env bash
# Prints a directory holding kube-apiserver and etcd for the envtest control plane.
#
# Order: $KUBEBUILDER_ASSETS if set; the cache outside the repository; the standard setup-envtest
# download where it is reachable; else both binaries are built from the Go module proxy (minutes,
# once). Progress goes to stderr; only the directory goes to stdout, so callers can
#   export KUBEBUILDER_ASSETS="$(hack/setup-envtest.sh)"
#
# `hack/setup-envtest.sh kubectl` prints instead the path of a kubectl of the same Kubernetes
# version, built once from the same wrapper module into the same cache (about 1 minute): the
# tests that run the documented kubectl commands use it, so they need no kubectl on the machine.
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.16}"
SETUP_ENVTEST_VERSION="${SETUP_ENVTEST_VERSION:-v0.25.1}"
CACHE_ROOT="${M2M_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/m2m-operator/envtest}"
DEST="$CACHE_ROOT/$K8S_VERSION"

log() { echo "setup-envtest: $*" >&2; }
die() { echo "setup-envtest: ERROR: $*" >&2; exit 1; }
have_assets() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

MODE="${1:-assets}"
[[ "$MODE" == assets || "$MODE" == kubectl ]] || die "unknown mode $MODE (want: assets or kubectl)"

if [[ "$MODE" == kubectl && -x "$DEST/kubectl" ]]; then
  echo "$DEST/kubectl"
  exit 0
fi

if [[ "$MODE" == assets && -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  missing=()
  for b in kube-apiserver etcd; do [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || missing+=("$KUBEBUILDER_ASSETS/$b"); done
  ((${#missing[@]} == 0)) || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: no ${missing[*]}: unset KUBEBUILDER_ASSETS to use the cache $DEST instead (\`make envtest\` fills it once and prints it)"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

if [[ "$MODE" == assets ]] && have_assets "$DEST"; then
  echo "$DEST"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 (https://go.dev/dl)"
mkdir -p "$DEST"

# 1. The ordinary download (works wherever the release bucket is reachable).
if [[ "$MODE" == assets && "${M2M_ENVTEST_SKIP_DOWNLOAD:-}" != "1" ]]; then
  log "trying the standard setup-envtest download of Kubernetes ${K8S_VERSION%.*}..."
  tmp="$(mktemp -d)"
  if timeout 120 go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${SETUP_ENVTEST_VERSION}" \
      use "${K8S_VERSION%.*}.x" --bin-dir "$tmp" -p path >"$tmp/path" 2>"$tmp/log"; then
    src="$(cat "$tmp/path")"
    if have_assets "$src"; then
      cp "$src/kube-apiserver" "$src/etcd" "$DEST/"
      rm -rf "$tmp"
      log "downloaded into $DEST"
      echo "$DEST"
      exit 0
    fi
  fi
  log "download not available here ($(tail -n1 "$tmp/log" 2>/dev/null || true)); building from the Go module proxy instead"
  rm -rf "$tmp"
fi

# 2. Build from source through the module proxy.
build="$CACHE_ROOT/build-$K8S_VERSION"
mkdir -p "$build/apiserver" "$build/etcd"
staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
  pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)
staging_version="v0.${K8S_VERSION#1.}"

{
  echo "module m2m.dev/envtest-apiserver"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes v${K8S_VERSION}"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	k8s.io/$m => k8s.io/$m $staging_version"; done
  echo ")"
} >"$build/apiserver/go.mod"
cat >"$build/apiserver/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

cat >"$build/etcd/go.mod" <<GOMOD
module m2m.dev/envtest-etcd

go 1.26

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
GOMOD
cat >"$build/etcd/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO

export GOFLAGS="-mod=mod" GOTOOLCHAIN=local

if [[ "$MODE" == kubectl ]]; then
  log "building kubectl v${K8S_VERSION} from the Go module proxy (about 1 minute, once)..."
  (cd "$build/apiserver" && go build -trimpath \
     -ldflags "-X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitVersion=v${K8S_VERSION}" \
     -o "$DEST/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl) >&2 ||
    die "building kubectl failed; check that the Go module proxy is reachable (GOPROXY=$(go env GOPROXY))"
  mv "$DEST/kubectl.tmp" "$DEST/kubectl"
  log "built $DEST/kubectl"
  echo "$DEST/kubectl"
  exit 0
fi

log "building etcd v${ETCD_VERSION} from the Go module proxy (about 30 s)..."
(cd "$build/etcd" && go mod tidy -e >/dev/null 2>&1 || true
 go build -trimpath -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3) >&2 ||
  die "building etcd failed; check that the Go module proxy is reachable (GOPROXY=$(go env GOPROXY)), or set KUBEBUILDER_ASSETS to a directory with kube-apiserver and etcd"

log "building kube-apiserver v${K8S_VERSION} from the Go module proxy (about 4 minutes, once)..."
(cd "$build/apiserver" && go mod tidy -e >/dev/null 2>&1 || true
 go build -trimpath -o "$DEST/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2 ||
  die "building kube-apiserver failed; check that the Go module proxy is reachable (GOPROXY=$(go env GOPROXY)), or set KUBEBUILDER_ASSETS to a directory with kube-apiserver and etcd"

# Rename last so an interrupted build never leaves a half-written binary that looks valid.
mv "$DEST/etcd.tmp" "$DEST/etcd"
mv "$DEST/kube-apiserver.tmp" "$DEST/kube-apiserver"
log "built into $DEST"
echo "$DEST"
