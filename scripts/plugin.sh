#!/usr/bin/env bash
# The Backstage frontend plugin @meshgate/backstage-plugin-access (backstage-plugin/).
#
#   bash scripts/plugin.sh install   # npm ci from backstage-plugin/package-lock.json
#   bash scripts/plugin.sh lint      # install if needed, then `backstage-cli package lint` (Backstage's ESLint rules)
#   bash scripts/plugin.sh test      # lint, then Jest through `backstage-cli package test` (CI=1)
#   bash scripts/plugin.sh build     # install if needed, tsc, then `backstage-cli package build`
#   bash scripts/plugin.sh start     # the dev app on 127.0.0.1:$PORT (3000); see backstage-plugin/README.md
#
# Needs Node >= 20.19 and npm. The install reads the npm registry only; no install step of this
# package fetches anything else.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/backstage-plugin"
cd "$dir"

started=$SECONDS
say() { echo "plugin.sh [$((SECONDS - started)) s]: $*" >&2; }
die() { echo "plugin.sh: $*" >&2; exit 1; }

check_node() {
  command -v node >/dev/null 2>&1 || die "node is not installed (Node >= 20.19 is needed)"
  local version major minor
  version="$(node --version)"
  IFS=. read -r major minor _ <<<"${version#v}"
  if ((major < 20 || (major == 20 && minor < 19))); then
    die "node $version is too old: the pinned Backstage release line needs Node >= 20.19"
  fi
}

install() {
  check_node
  say "npm ci (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
}

ensure_installed() {
  # node_modules/.package-lock.json is npm's record of what it installed: reinstall when the
  # lock file changed since.
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    install
  fi
}

case "${1:-}" in
  install)
    install
    ;;
  lint)
    ensure_installed
    say "backstage-cli package lint"
    npx --no-install backstage-cli package lint --max-warnings 0
    ;;
  test)
    ensure_installed
    say "backstage-cli package lint"
    npx --no-install backstage-cli package lint --max-warnings 0
    say "backstage-cli package test"
    CI=1 npx --no-install backstage-cli package test --passWithNoTests=false "${@:2}"
    ;;
  build)
    ensure_installed
    say "tsc"
    npx --no-install tsc -p . --outDir dist-types
    say "backstage-cli package build"
    npx --no-install backstage-cli package build
    ;;
  start)
    ensure_installed
    export PORT="${PORT:-3000}"
    export MESHGATE_BACKEND_URL="${MESHGATE_BACKEND_URL:-http://127.0.0.1:7007}"
    if [[ -n "${MESHGATE_CONTROL_PLANE_URL:-}" ]]; then
      # No Backstage backend: a loopback stand-in for its /meshgate proxy (dev/cors-proxy.cjs),
      # stopped with this script.
      export MESHGATE_DEV_PROXY_PORT="${MESHGATE_DEV_PROXY_PORT:-7008}"
      export MESHGATE_DEV_APP_ORIGIN="http://127.0.0.1:$PORT"
      node dev/cors-proxy.cjs &
      proxy_pid=$!
      trap 'kill "$proxy_pid" 2>/dev/null' EXIT
      export MESHGATE_PROXY_BASE="http://127.0.0.1:$MESHGATE_DEV_PROXY_PORT"
    fi
    export MESHGATE_PROXY_BASE="${MESHGATE_PROXY_BASE:-$MESHGATE_BACKEND_URL/api/proxy}"
    say "dev app on http://127.0.0.1:$PORT, access API at $MESHGATE_PROXY_BASE/meshgate/v1/access/"
    npx --no-install backstage-cli package start --config dev/app-config.yaml
    ;;
  *)
    die "usage: scripts/plugin.sh install|lint|test|build|start"
    ;;
esac
