#!/usr/bin/env bash
# Copies into the Helm chart (charts/m2m-operator) what config/ is the source of: the CRDs
# (crds/), the RBAC rules generated from the markers (files/rbac/, read by the templates) and
# the monitoring files (files/alerts.yaml, files/dashboard.json). Run by `make generate`, so that
# CI's freshness check fails on a stale copy; never edit the copies by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

chart=charts/m2m-operator

# The CRDs: exactly config/crd/bases; a CRD removed there goes from the chart too.
rm -f "$chart"/crds/*.yaml
mkdir -p "$chart/crds"
cp config/crd/bases/*.yaml "$chart/crds/"

mkdir -p "$chart/files/rbac"
cp config/rbac/role.yaml "$chart/files/rbac/controller.yaml"
cp config/rbac/leader_election_role.yaml "$chart/files/rbac/leader-election.yaml"
cp config/rbac/tokenserver/role.yaml "$chart/files/rbac/tokenserver.yaml"
cp config/authz/role.yaml "$chart/files/rbac/authz.yaml"

# The monitoring files, where config/monitoring has them (until then the chart keeps its copy).
for f in alerts.yaml dashboard.json; do
  if [[ -f "config/monitoring/$f" ]]; then
    cp "config/monitoring/$f" "$chart/files/$f"
  fi
done
