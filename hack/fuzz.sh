#!/usr/bin/env bash
# Runs every fuzz target of the repository (every module) for a fixed time each (default 10s).
#   hack/fuzz.sh 5m      # the longer local campaign
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
found=0
while IFS=: read -r file name; do
  pkg="$(dirname "$file")"
  echo "fuzz: $name in $pkg for $fuzztime"
  # From the package's directory, so that go finds the module it belongs to (verify is its own).
  (cd "$pkg" && go test . -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime")
  found=$((found + 1))
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/func //' | sort -u)
echo "fuzz: $found targets, no findings"
