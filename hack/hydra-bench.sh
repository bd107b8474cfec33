#!/usr/bin/env bash
# Same load against Ory Hydra v2.3.0 as `make bench` drives against our token server (called by
# `make bench-hydra`).
#
# 1. Builds Hydra from the Go module proxy, once: in a throwaway module outside the repository,
#    `go get -tool github.com/ory/hydra/v2@v2.3.0` then `go build -tags sqlite,...` (cgo; the
#    sqlite tags are what Hydra's own Makefile uses and what DSN=memory needs). The binary is cached
#    in ${XDG_CACHE_HOME:-~/.cache}/m2m-operator/hydra/v2.3.0/hydra, so re-runs start at once.
# 2. Per round and per Hydra variant: starts a fresh `hydra serve all --dev --sqa-opt-out` on free
#    loopback ports with DSN=memory (SQLite in memory), STRATEGIES_ACCESS_TOKEN=jwt and
#    LOG_LEVEL=error (so per-request logging does not dominate), creates the signing key set
#    hydra.jwt.access-token with the variant's algorithm through the admin API (RS256: Hydra's own
#    default, a 4096-bit RSA key; ES256: P-256, what our token server signs with), registers one
#    client (client_credentials, client_secret_basic; Hydra's default secret hasher, PBKDF2 with
#    25,000 iterations), checks one token by hand, then runs the load of hack/bench.sh:
#    `hey -c 32 -n 2000` warm-up, then `hey -c 32 -n 20000 -m POST` on /oauth2/token.
# 3. With WITH_TOKENSERVER=1 (the default) the real token server of hack/bench.sh (benchserver
#    -mode tokenserver, 10,000 clients, ES256) runs in the same rounds, alternating with Hydra,
#    so the figures are same-machine, same-moment.
# Prints tokens/s, p50, p99 and the non-200 count of the best round of each. Hydra is slow
# enough that a default run takes about 25 minutes on 2 cores (most of it Hydra RS256).
#
# Environment: ROUNDS (default 2), CONCURRENCY (32), REQUESTS (20000), WARMUP (2000),
# HYDRA_ALGS (default "RS256 ES256": one Hydra row per algorithm), HYDRA_PBKDF2_ITERATIONS
# (unset: Hydra's default, 25000), WITH_TOKENSERVER (1), HYDRA_BIN (use this binary, no build),
# HYDRA_CACHE (the cache folder), GOTOOLCHAIN (default local).
set -euo pipefail

cd "$(dirname "$0")/.."
HYDRA_VERSION=v2.3.0
HYDRA_MODULE=github.com/ory/hydra/v2
HYDRA_TAGS=sqlite,sqlite_omit_load_extension
ROUNDS="${ROUNDS:-2}"
CONCURRENCY="${CONCURRENCY:-32}"
REQUESTS="${REQUESTS:-20000}"
WARMUP="${WARMUP:-2000}"
HYDRA_ALGS="${HYDRA_ALGS-RS256 ES256}"
WITH_TOKENSERVER="${WITH_TOKENSERVER:-1}"
HYDRA_CACHE="${HYDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/m2m-operator/hydra/$HYDRA_VERSION}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { echo "hydra-bench: $*" >&2; }
die() { echo "hydra-bench: ERROR: $*" >&2; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ && "$CONCURRENCY" =~ ^[1-9][0-9]*$ && "$REQUESTS" =~ ^[1-9][0-9]*$ &&
  "$WARMUP" =~ ^[0-9]+$ ]] || die "ROUNDS, CONCURRENCY, REQUESTS and WARMUP must be whole numbers"
for alg in $HYDRA_ALGS; do
  [[ "$alg" == RS256 || "$alg" == ES256 ]] || die "HYDRA_ALGS: $alg is not RS256 or ES256"
done
if [[ -n "${HYDRA_PBKDF2_ITERATIONS:-}" ]]; then
  [[ "$HYDRA_PBKDF2_ITERATIONS" =~ ^[1-9][0-9]*$ ]] || die "HYDRA_PBKDF2_ITERATIONS must be >= 1"
fi
for tool in go curl jq base64 awk; do
  command -v "$tool" >/dev/null || die "$tool is needed (Debian: apt-get install $tool)"
done

work="$(mktemp -d)"
chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hey: as in hack/bench.sh, the Debian package when root, else the Go module.
HEY=(hey)
if ! command -v hey >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "installing hey (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y hey >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y hey >/dev/null 2>&1; } || true
  fi
  if ! command -v hey >/dev/null; then
    log "using go install github.com/rakyll/hey@latest"
    GOBIN="$work/bin" go install github.com/rakyll/hey@latest || die "cannot get hey (apt-get install hey, or the Go module proxy)"
    HEY=("$work/bin/hey")
  fi
fi

# hydra_ok BIN: the binary is Hydra $HYDRA_VERSION built with the sqlite tags.
hydra_ok() {
  local info
  info="$(go version -m "$1" 2>/dev/null)" || return 1
  grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+$HYDRA_MODULE[[:space:]]+$HYDRA_VERSION([[:space:]]|$)" <<<"$info" &&
    grep -q -- "-tags=$HYDRA_TAGS" <<<"$info"
}

# Hydra: the given binary, the cached one, or a fresh build from the Go module proxy.
hydra="${HYDRA_BIN:-$HYDRA_CACHE/hydra}"
if [[ -n "${HYDRA_BIN:-}" ]]; then
  [[ -x "$hydra" ]] || die "HYDRA_BIN=$hydra is not an executable"
  hydra_ok "$hydra" || log "warning: $hydra does not say it is $HYDRA_MODULE $HYDRA_VERSION built with -tags=$HYDRA_TAGS"
elif [[ -x "$hydra" ]] && hydra_ok "$hydra"; then
  log "using the cached $hydra"
else
  command -v cc >/dev/null || die "building Hydra needs a C compiler for its SQLite driver (Debian: apt-get install gcc)"
  mkdir -p "$HYDRA_CACHE" || die "cannot create $HYDRA_CACHE (set HYDRA_CACHE)"
  mod="$work/hydrabuild"
  mkdir -p "$mod"
  log "building $HYDRA_MODULE@$HYDRA_VERSION from the Go module proxy into $HYDRA_CACHE (takes minutes; once)"
  start=$SECONDS
  # (set -e does not hold inside a subshell whose status is tested, hence the explicit exits.)
  (
    cd "$mod" || exit 1
    export GOWORK=off GOFLAGS=-mod=mod
    go mod init hydrabuild >/dev/null 2>&1 || exit 1
    go get -tool "$HYDRA_MODULE@$HYDRA_VERSION" >"$work/hydra-build.log" 2>&1 || exit 1
    # Hydra's go.mod replaces gobuffalo/pop with Ory's fork; replace directives bind only the
    # module that declares them, so the versioned ones are copied here (without it the build
    # fails in persistence/sql). Its other one points at its in-tree API client (not in the
    # module zip; used by the CLI's client commands only), so hydra-client-go comes from the proxy.
    dir="$(go list -m -f '{{.Dir}}' "$HYDRA_MODULE")" || exit 1
    go mod edit -json "$dir/go.mod" | jq -r '.Replace[]? | select(.New.Version != null) |
      "\(.Old.Path)\(if .Old.Version then "@" + .Old.Version else "" end)=\(.New.Path)@\(.New.Version)"' >"$work/replaces" || exit 1
    while read -r r; do go mod edit -replace "$r" || exit 1; done <"$work/replaces"
    go mod tidy >>"$work/hydra-build.log" 2>&1 || exit 1
    CGO_ENABLED=1 go build -trimpath -tags "$HYDRA_TAGS" -o "$HYDRA_CACHE/hydra.tmp" "$HYDRA_MODULE" >>"$work/hydra-build.log" 2>&1
  ) || { tail -30 "$work/hydra-build.log" >&2; die "building Hydra failed (log above); if it asks for a newer Go, rerun with GOTOOLCHAIN=go1.27.3"; }
  mv -f "$HYDRA_CACHE/hydra.tmp" "$hydra"
  log "built Hydra in $((SECONDS - start)) s"
fi

if [[ "$WITH_TOKENSERVER" == 1 ]]; then
  log "building the benchmark server (./hack/bench/server)"
  go build -o "$work/benchserver" ./hack/bench/server
fi

# free_port sets PORT to a free loopback port, not one handed out before in this run.
# (The functions below run in this shell, not in $(...), so that every server they start is in
# pids and killed by cleanup whatever fails.)
used_ports=" "
free_port() {
  local p
  for _ in $(seq 1 50); do
    p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
      echo $((20000 + RANDOM % 20000)))"
    if [[ "$used_ports" != *" $p "* ]] && ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      PORT="$p"
      return
    fi
  done
  die "no free loopback port found"
}

# stop PID: ends one server of ours and waits for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# load NAME URL AUTHFILE: warm-up, then the measured run; sets RESULT to "rps p50_ms p99_ms non200".
# The Authorization header is read from a file (mode 600) and never printed.
load() {
  local name="$1" url="$2" auth
  auth="$(cat "$3")"
  if [[ "$WARMUP" -gt 0 ]]; then
    "${HEY[@]}" -c "$CONCURRENCY" -n "$WARMUP" -m POST -T application/x-www-form-urlencoded -H "$auth" \
      -d grant_type=client_credentials "$url" >/dev/null
  fi
  "${HEY[@]}" -c "$CONCURRENCY" -n "$REQUESTS" -m POST -T application/x-www-form-urlencoded -H "$auth" \
    -d grant_type=client_credentials "$url" >"$work/$name.hey"
  # non-200 = other status codes + transport errors (hey sends REQUESTS rounded down to a
  # multiple of CONCURRENCY, so "REQUESTS - 200s" would miscount).
  RESULT="$(awk '
    /Requests\/sec:/ { rps = $2 }
    /^ *50% in/ { p50 = $3 * 1000 }
    /^ *99% in/ { p99 = $3 * 1000 }
    /^Status code distribution:/ { sec = "status"; next }
    /^Error distribution:/ { sec = "error"; next }
    sec == "status" && /^ *\[[0-9]+\]/ { if ($1 == "[200]") ok += $2; else bad += $2 }
    sec == "error" && /^ *\[[0-9]+\]/ { n = $1; gsub(/[^0-9]/, "", n); bad += n }
    END { if (ok == 0) bad = bad > 0 ? bad : -1; printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }' "$work/$name.hey")"
  if [[ "${RESULT##* }" != 0 ]]; then
    log "$name: ${RESULT##* } of $REQUESTS requests did not get 200; hey says:"
    sed -n '/Status code distribution/,$p' "$work/$name.hey" | head -20 >&2
  fi
}

# check_token URL AUTHFILE WANT_ALG: one token request by hand; fails unless it is a 200 with a
# JWT access token signed with WANT_ALG. Prints nothing of the token but its header's alg.
check_token() {
  local url="$1" want="$3" code header alg
  code="$(curl -sS -o "$work/token.json" -w '%{http_code}' -X POST -H @"$2" \
    -H 'Content-Type: application/x-www-form-urlencoded' -d grant_type=client_credentials "$url")" ||
    die "token request to $url failed"
  [[ "$code" == 200 ]] || die "token request to $url answered $code: $(jq -c '{error, error_description}' "$work/token.json" 2>/dev/null)"
  header="$(jq -r .access_token "$work/token.json" | cut -d. -f1 | tr '_-' '/+')"
  while (( ${#header} % 4 )); do header+="="; done
  alg="$(base64 -d <<<"$header" 2>/dev/null | jq -r .alg 2>/dev/null || true)"
  rm -f "$work/token.json"
  [[ "$alg" == "$want" ]] || die "the access token from $url is signed with '${alg:-?}', not $want"
}

# wait_http URL PID NAME LOG: waits up to 120 s for URL to answer 2xx while PID lives.
wait_http() {
  for _ in $(seq 1 1200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return
    kill -0 "$2" 2>/dev/null || die "$3 exited: $(tail -20 "$4")"
    sleep 0.1
  done
  die "$3 did not become ready at $1 within 120 s: $(tail -20 "$4")"
}

# run_hydra ALG: a fresh Hydra with ALG-signed JWT access tokens, loaded; sets RESULT.
run_hydra() {
  local alg="$1" pub adm pid secret id resp key_alg
  free_port; pub="$PORT"
  free_port; adm="$PORT"
  local hlog="$work/hydra-$alg.log"
  local -a env=(
    DSN=memory
    SECRETS_SYSTEM="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    URLS_SELF_ISSUER="http://127.0.0.1:$pub"
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_PUBLIC_PORT="$pub"
    SERVE_ADMIN_HOST=127.0.0.1 SERVE_ADMIN_PORT="$adm"
    STRATEGIES_ACCESS_TOKEN=jwt
    LOG_LEVEL=error
  )
  [[ -n "${HYDRA_PBKDF2_ITERATIONS:-}" ]] && env+=(OAUTH2_HASHERS_PBKDF2_ITERATIONS="$HYDRA_PBKDF2_ITERATIONS")
  env "${env[@]}" "$hydra" serve all --dev --sqa-opt-out >"$hlog" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_http "http://127.0.0.1:$adm/health/ready" "$pid" "hydra" "$hlog"
  wait_http "http://127.0.0.1:$pub/health/ready" "$pid" "hydra" "$hlog"

  # The access-token key set, made before the first token (else Hydra makes an RS256 one then).
  resp="$(curl -sS -X POST -H 'Content-Type: application/json' -d "{\"alg\":\"$alg\",\"use\":\"sig\"}" \
    -w '\n%{http_code}' "http://127.0.0.1:$adm/admin/keys/hydra.jwt.access-token")" || die "hydra: creating the $alg key set failed"
  [[ "${resp##*$'\n'}" == 201 ]] || die "hydra: creating the $alg key set answered ${resp##*$'\n'}: $(head -c 300 <<<"${resp%$'\n'*}")"
  key_alg="$(jq -r '.keys[0].alg' <<<"${resp%$'\n'*}")"
  [[ "$key_alg" == "$alg" ]] || die "hydra: the key set is $key_alg, not $alg"

  # One throwaway client; its secret lives only in files of mode 600 in $work.
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  jq -n --arg s "$secret" '{client_name: "hydra-bench", client_secret: $s,
    grant_types: ["client_credentials"], response_types: ["token"],
    token_endpoint_auth_method: "client_secret_basic"}' >"$work/client.json"
  resp="$(curl -sS -X POST -H 'Content-Type: application/json' --data @"$work/client.json" \
    -w '\n%{http_code}' "http://127.0.0.1:$adm/admin/clients")" || die "hydra: creating the client failed"
  rm -f "$work/client.json"
  [[ "${resp##*$'\n'}" == 201 ]] || die "hydra: creating the client answered ${resp##*$'\n'}"
  id="$(jq -r .client_id <<<"${resp%$'\n'*}")"
  [[ -n "$id" && "$id" != null ]] || die "hydra: no client_id in the answer"
  # RFC 6749 §2.3.1 form-encoding changes nothing: the id is a UUID, the secret hex.
  printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$id" "$secret" | base64 -w0)" >"$work/auth"
  unset secret resp

  check_token "http://127.0.0.1:$pub/oauth2/token" "$work/auth" "$alg"
  load "hydra-$alg" "http://127.0.0.1:$pub/oauth2/token" "$work/auth"
  rm -f "$work/auth"
  stop "$pid"
}

# run_tokenserver: our token server as hack/bench.sh runs it; sets RESULT.
run_tokenserver() {
  local port pid creds id secret
  free_port; port="$PORT"
  "$work/benchserver" -mode tokenserver -addr "127.0.0.1:$port" >"$work/ts.out" 2>"$work/ts.log" &
  pid=$!
  pids+=("$pid")
  # Up once it prints its credentials and answers HTTP at all (a GET of the token endpoint is
  # a 405; the token server's probes are on its separate metrics port).
  for _ in $(seq 1 600); do
    grep -q CLIENT_ID "$work/ts.out" 2>/dev/null && curl -sS -o /dev/null "http://127.0.0.1:$port/oauth2/token" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "token server exited: $(tail -20 "$work/ts.log")"
    sleep 0.1
  done
  creds="$(grep CLIENT_ID "$work/ts.out")" || die "token server printed no credentials"
  id="$(sed -E 's/.*CLIENT_ID=([^ ]+).*/\1/' <<<"$creds")"
  secret="$(sed -E 's/.*CLIENT_SECRET=([^ ]+).*/\1/' <<<"$creds")"
  printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$id" "$secret" | base64 -w0)" >"$work/auth"
  unset creds secret
  rm -f "$work/ts.out"
  check_token "http://127.0.0.1:$port/oauth2/token" "$work/auth" ES256
  load tokenserver "http://127.0.0.1:$port/oauth2/token" "$work/auth"
  rm -f "$work/auth"
  stop "$pid"
}

declare -A best=()
keep_best() { # NAME FIGURES
  local cur="${best[$1]:-}"
  [[ -z "$cur" || "${2%% *}" -gt "${cur%% *}" ]] && best[$1]="$2"
  return 0
}

log "machine: $(nproc) CPUs; $(uptime | sed 's/.*load/load/')"
for round in $(seq 1 "$ROUNDS"); do
  if [[ "$WITH_TOKENSERVER" == 1 ]]; then
    run_tokenserver
    log "round $round: token server      tokens/s p50 p99 non-200 = $RESULT"
    keep_best tokenserver "$RESULT"
  fi
  for alg in $HYDRA_ALGS; do
    run_hydra "$alg"
    log "round $round: hydra $alg       tokens/s p50 p99 non-200 = $RESULT"
    keep_best "hydra-$alg" "$RESULT"
  done
done
log "machine after: $(uptime | sed 's/.*load/load/')"

iters="${HYDRA_PBKDF2_ITERATIONS:-25000}"
echo
echo "Loopback, hey -c $CONCURRENCY -n $REQUESTS -m POST after $WARMUP warm-up (best of $ROUNDS rounds), $(nproc) CPUs shared with hey"
printf "%-40s %12s %10s %10s %9s\n" "server" "tokens/s" "p50 ms" "p99 ms" "non-200"
bad=0
row() { # LABEL KEY
  local rps p50 p99 nb
  read -r rps p50 p99 nb <<<"${best[$2]}"
  printf "%-40s %12s %10s %10s %9s\n" "$1" "$rps" "$p50" "$p99" "$nb"
  [[ "$nb" == 0 ]] || bad=1
}
[[ "$WITH_TOKENSERVER" == 1 ]] && row "m2m token server (ES256, 10k clients)" tokenserver
for alg in $HYDRA_ALGS; do
  case "$alg" in
    RS256) row "hydra $HYDRA_VERSION (RS256 RSA-4096)" "hydra-$alg" ;;
    ES256) row "hydra $HYDRA_VERSION (ES256 P-256)" "hydra-$alg" ;;
  esac
done
echo "hydra: serve all --dev, DSN=memory (SQLite in memory), JWT access tokens, LOG_LEVEL=error,"
echo "       one client, client_secret_basic, PBKDF2 secret hash with $iters iterations."
[[ "$bad" == 0 ]] || die "some requests did not get 200"
