#!/usr/bin/env bash
# Installs the gateways the e2e tests put in front of m2m authz (`make gateway-tools`, also run
# by `make test-e2e`): Debian's nginx-light and its headers-more module. Best effort: without
# root or apt-get it says what to install and exits 0, and the gateway tests skip with the same
# message.
set -euo pipefail

module=/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so
packages=(nginx-light libnginx-mod-http-headers-more-filter)

if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
  [[ -f "$module" ]] && exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-gateways: nginx tests need: apt-get install ${packages[*]} (not root or no apt-get: skipped)" >&2
  exit 0
fi
echo "install-gateways: apt-get install ${packages[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null ||
  { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; } ||
  echo "install-gateways: could not install ${packages[*]}: the nginx tests will skip" >&2
