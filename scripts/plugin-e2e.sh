#!/usr/bin/env bash
# The Backstage plugin's end-to-end browser test (issue 17): headless Debian Chromium drives the
# plugin's dev app against the real stack, all on 127.0.0.1:
#
#   scripts/demo.sh     Envoy + meshgate (10000, admin 9901), mock issuer (18080), tool stubs
#                       (18081), control plane (18090), fake Backstage auth backend (17007)
#   plugin.sh start     the dev app on a free port, with dev/cors-proxy.cjs (a free port) standing
#                       in for Backstage's /meshgate proxy
#   e2e/access.spec.mjs carol is denied, requests 15 minutes, alice approves, carol's trigger
#                       through Envoy goes 403 -> 200, the audit trail verifies; then an expired
#                       token and a stopped control plane. Screenshots to docs/images/.
#
#   bash scripts/plugin-e2e.sh      # ./build.sh test runs it after the plugin's unit tests
#
# Screenshots (1280x800 PNG) go to docs/images/backstage-access-*.png, or to
# $MESHGATE_E2E_SCREENSHOTS (./build.sh test points it into target/ to leave docs/ alone).
#
# Builds dist/meshgate.wasm when missing, and target/release/meshgate and meshgate-harness
# (cargo, a no-op when current). Needs /usr/bin/chromium (scripts/setup.sh installs Debian's)
# and the demo's ports free.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

started=$SECONDS
say() { echo "plugin-e2e [$((SECONDS - started)) s]: $*" >&2; }
die() {
  echo "plugin-e2e: error: $*" >&2
  exit 1
}
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"

CHROMIUM="${MESHGATE_E2E_CHROMIUM:-/usr/bin/chromium}"
MESHGATE="$root/target/release/meshgate"
HARNESS="$root/target/release/meshgate-harness"
EDGE=http://127.0.0.1:10000
BACKSTAGE=http://127.0.0.1:17007
CP=http://127.0.0.1:18090

# --- preconditions -------------------------------------------------------------------------

[[ -x "$CHROMIUM" ]] || die "$CHROMIUM is missing; run scripts/setup.sh (it installs Debian's chromium)"
command -v node >/dev/null 2>&1 || die "node is not installed (Node >= 20.19 is needed)"
command -v curl >/dev/null 2>&1 || die "curl is needed; run scripts/setup.sh"

taken=()
for entry in "10000:Envoy listener" "9901:Envoy admin" "18080:mock issuer" "18081:tool stubs" \
  "18090:control plane" "17007:fake Backstage"; do
  port_taken "${entry%%:*}" && taken+=("127.0.0.1:${entry%%:*} (${entry#*:})")
done
if ((${#taken[@]} > 0)); then
  die "the demo's ports are taken: ${taken[*]}. Stop whatever holds them (a demo still running?) and try again"
fi

if [[ ! -f dist/meshgate.wasm ]]; then
  say "dist/meshgate.wasm is missing: ./build.sh"
  ./build.sh
fi
# Always through cargo (a no-op when they are current): stale binaries would test old code.
say "cargo build --release: target/release/meshgate and meshgate-harness"
cargo build --quiet --release -p meshgate-control-plane -p meshgate-test-harness
[[ -x "$MESHGATE" && -x "$HARNESS" ]] || die "cargo did not build $MESHGATE and $HARNESS"
if [[ ! -f backstage-plugin/node_modules/.package-lock.json ||
  backstage-plugin/package-lock.json -nt backstage-plugin/node_modules/.package-lock.json ]]; then
  bash scripts/plugin.sh install
fi

# free_port: a port nothing listens on now (the kernel's pick for port 0).
free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# --- supervision -----------------------------------------------------------------------------

# Under target/ (ignored by git), and relative: demo.sh puts $PWD before MESHGATE_DEMO_DIR.
mkdir -p target
work="$(mktemp -d target/plugin-e2e.XXXXXX)"
demo_dir="$work/demo"
mkdir -p "$demo_dir"
demo_pid=""
app_pid=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  # The dev app runs in a session of its own (setsid): stop its whole process group.
  if [[ -n "$app_pid" ]] && kill -0 "$app_pid" 2>/dev/null; then
    kill -TERM -- "-$app_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$app_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$app_pid" 2>/dev/null || true
  fi
  # demo.sh stops Envoy, the control plane and the harness on SIGTERM.
  stop_pid "$demo_pid" demo.sh
  if ((status != 0)); then
    say "failed; logs in $work (demo: $demo_dir/*.log, dev app: $work/app.log)"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- the stack --------------------------------------------------------------------------------

say "starting the demo stack (scripts/demo.sh, MESHGATE_DEMO_DIR=$demo_dir)"
MESHGATE_DEMO_DIR="$demo_dir" bash scripts/demo.sh >"$demo_dir/demo.log" 2>&1 &
demo_pid=$!
demo_ready() { grep -q '^meshgate demo is running' "$demo_dir/demo.log"; }
if ! wait_for 60 "$demo_pid" demo_ready; then
  tail -n 40 "$demo_dir/demo.log" >&2 || true
  die "the demo did not say it was running within 60 s"
fi
if grep -q '✗' "$demo_dir/demo.log"; then
  grep '✗' "$demo_dir/demo.log" >&2
  die "the demo's self-check failed"
fi
cp_pid="$(pgrep -P "$demo_pid" -f 'serve --config' || true)"
[[ "$cp_pid" =~ ^[0-9]+$ ]] || die "could not find the control plane's pid under demo.sh (pid $demo_pid): '$cp_pid'"
say "demo ready: Envoy $EDGE, control plane $CP (pid $cp_pid), fake Backstage $BACKSTAGE"

app_port="$(free_port)"
proxy_port="$(free_port)"
while [[ "$proxy_port" == "$app_port" ]]; do proxy_port="$(free_port)"; done
say "starting the plugin's dev app on http://127.0.0.1:$app_port (proxy stand-in on $proxy_port)"
# No MESHGATE_DEV_TOKEN (an empty one is a config error): each page signs in with ?meshgate_token=.
env -u MESHGATE_DEV_TOKEN PORT="$app_port" MESHGATE_DEV_PROXY_PORT="$proxy_port" \
  MESHGATE_CONTROL_PLANE_URL="$CP" BROWSER=none \
  setsid bash scripts/plugin.sh start >"$work/app.log" 2>&1 &
app_pid=$!
app_up() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$app_port/" 2>/dev/null; }
if ! wait_for 240 "$app_pid" app_up; then
  tail -n 40 "$work/app.log" >&2 || true
  die "the dev app did not answer on http://127.0.0.1:$app_port within 240 s"
fi
say "dev app up"

# --- tokens ------------------------------------------------------------------------------------

# Backstage user tokens from the fake Backstage auth backend: what Backstage's proxy forwards.
carol="$("$MESHGATE" token --backstage --user carol --backstage-url "$BACKSTAGE")"
alice="$("$MESHGATE" token --backstage --user alice --backstage-url "$BACKSTAGE")"
# An expired token from the demo issuer, which the control plane's providers also trust (the
# fake Backstage signs only fresh tokens): the control plane answers 401 for it.
expired="$(MESHGATE_DEMO_DIR="$demo_dir" "$MESHGATE" token --sub carol --exp-offset -120)"

# The control plane read the fake Backstage's JWKS when it started, before the demo's self-check
# signed the first user in (the fake Backstage makes its first key then). It retries that key
# set under the provider's refetch_min_interval_s (5 s for Backstage), answering 401
# jwks_unavailable until then: wait until it takes carol's, bounded.
cp_knows_tokens() {
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $carol" \
    "$CP/v1/access/grants?mine=1")" == 200 ]]
}
waited=$SECONDS
if ! wait_for 45 "$demo_pid" cp_knows_tokens; then
  die "the control plane did not accept carol's Backstage token within 45 s (see $demo_dir/control-plane.log)"
fi
say "the control plane accepts Backstage tokens (waited $((SECONDS - waited)) s for its key refetch)"

# --- the browser test -----------------------------------------------------------------------------

shots="${MESHGATE_E2E_SCREENSHOTS:-$root/docs/images}"
mkdir -p "$shots"
say "running backstage-plugin/e2e/access.spec.mjs (headless $CHROMIUM)"
E2E_APP_URL="http://127.0.0.1:$app_port" E2E_EDGE_URL="$EDGE" \
  E2E_CAROL_TOKEN="$carol" E2E_ALICE_TOKEN="$alice" E2E_EXPIRED_TOKEN="$expired" \
  E2E_AUDIT_FILE="$root/$demo_dir/audit.jsonl" E2E_MESHGATE="$MESHGATE" E2E_CP_PID="$cp_pid" \
  E2E_SCREENSHOTS="$shots" E2E_CHROMIUM="$CHROMIUM" \
  node backstage-plugin/e2e/access.spec.mjs
say "passed"
