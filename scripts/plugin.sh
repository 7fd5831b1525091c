#!/usr/bin/env bash
# The Backstage frontend plugin @meshgate/backstage-plugin-access (backstage-plugin/) and the
# backend plugin @meshgate/backstage-plugin-access-backend (backstage-plugin-backend/).
#
#   bash scripts/plugin.sh install   # npm ci from each package's package-lock.json
#   bash scripts/plugin.sh lint      # install if needed, then `backstage-cli package lint` (Backstage's ESLint rules)
#                                    # of both, and tsc of the backend
#   bash scripts/plugin.sh test      # lint, then Jest through `backstage-cli package test` (CI=1), both packages;
#                                    # extra arguments go to the frontend's Jest only
#   bash scripts/plugin.sh build     # install if needed, tsc, then `backstage-cli package build`, both packages
#   bash scripts/plugin.sh start     # the dev app on 127.0.0.1:$PORT (3000); see backstage-plugin/README.md
#
# The backend package installs its runtime dependencies only (about 50 MB); its lint, tsc and Jest
# are the frontend package's installed @backstage/cli, typescript and jest (the same Backstage
# release line), so the toolchain (about 1 GB) is installed once.
#
# Needs Node >= 20.19 and npm. The install reads the npm registry only; no install step of these
# packages fetches anything else.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/backstage-plugin"
backend="$root/backstage-plugin-backend"
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

npm_ci() {
  npm ci --no-audit --no-fund --loglevel=error
}

install_frontend() {
  check_node
  say "npm ci (backstage-plugin/package-lock.json)"
  npm_ci
}

install_backend() {
  check_node
  say "npm ci (backstage-plugin-backend/package-lock.json)"
  (cd "$backend" && npm_ci)
}

stale() {
  # node_modules/.package-lock.json is npm's record of what it installed: reinstall when the
  # lock file changed since.
  [[ ! -f "$1/node_modules/.package-lock.json" || "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]]
}

ensure_installed() {
  if stale "$dir"; then install_frontend; fi
  if stale "$backend"; then install_backend; fi
}

# The backend package borrows the frontend's toolchain: its binaries, and (for ESLint's shared
# configs, which resolve from the config file's directory) its node_modules on NODE_PATH.
backend_cli() {
  (cd "$backend" && NODE_PATH="$dir/node_modules" "$dir/node_modules/.bin/$1" "${@:2}")
}

backend_lint() {
  say "backstage-plugin-backend: tsc"
  backend_cli tsc -p . --noEmit
  say "backstage-plugin-backend: backstage-cli package lint"
  backend_cli backstage-cli package lint --max-warnings 0
}

backend_test() {
  say "backstage-plugin-backend: backstage-cli package test"
  (cd "$backend" && CI=1 "$dir/node_modules/.bin/backstage-cli" package test --passWithNoTests=false)
}

case "${1:-}" in
  install)
    install_frontend
    install_backend
    ;;
  lint)
    ensure_installed
    say "backstage-cli package lint"
    npx --no-install backstage-cli package lint --max-warnings 0
    backend_lint
    ;;
  test)
    ensure_installed
    say "backstage-cli package lint"
    npx --no-install backstage-cli package lint --max-warnings 0
    backend_lint
    say "backstage-cli package test"
    CI=1 npx --no-install backstage-cli package test --passWithNoTests=false "${@:2}"
    backend_test
    ;;
  build)
    ensure_installed
    say "tsc"
    npx --no-install tsc -p . --outDir dist-types
    say "backstage-cli package build"
    npx --no-install backstage-cli package build
    say "backstage-plugin-backend: tsc, backstage-cli package build"
    backend_cli tsc -p . --outDir dist-types
    backend_cli backstage-cli package build
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
