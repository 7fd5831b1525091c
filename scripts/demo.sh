#!/usr/bin/env bash
# The local meshgate stack, in the foreground, until Ctrl-C:
#
#   mock OIDC issuer   127.0.0.1:18080  (discovery, /jwks, /admin/rotate ...)   meshgate-harness
#   tool stubs         127.0.0.1:18081  (Airflow, Airbyte, Buildkite, FastAPI)  meshgate-harness
#   control plane      127.0.0.1:18090  (catalog snapshots)                     meshgate serve, envoy/demo/cp.yaml
#   fake Backstage     127.0.0.1:17007  (auth backend: user tokens, JWKS)      meshgate-harness
#   Envoy + meshgate   127.0.0.1:10000, admin 127.0.0.1:9901                    envoy/meshgate-demo.yaml
#
# Run through `./build.sh demo`, which builds dist/meshgate.wasm, target/release/meshgate and
# target/release/meshgate-harness first. Logs and the issuer's key file go to .meshgate/demo/
# (or $MESHGATE_DEMO_DIR, which `meshgate token` and `meshgate-harness` also follow).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEMO_DIR="${MESHGATE_DEMO_DIR:-.meshgate/demo}"
KEYS="$DEMO_DIR/issuer-keys.json"
HARNESS_LOG="$DEMO_DIR/harness.log"
CP_LOG="$DEMO_DIR/control-plane.log"
CATALOG_DIR="$DEMO_DIR/catalog"
CP_CONFIG_SOURCE=envoy/demo/cp.yaml
ENVOY_LOG="$DEMO_DIR/envoy.log"
CONFIG=envoy/meshgate-demo.yaml
MESHGATE=target/release/meshgate
HARNESS=target/release/meshgate-harness

EDGE_PORT=10000
ADMIN_PORT=9901
ISSUER_PORT=18080
UPSTREAM_PORT=18081
CP_PORT=18090
BACKSTAGE_PORT=17007
CP="http://127.0.0.1:$CP_PORT"
BACKSTAGE="http://127.0.0.1:$BACKSTAGE_PORT"
EDGE="http://127.0.0.1:$EDGE_PORT"
ISSUER="http://127.0.0.1:$ISSUER_PORT"

say() { echo "demo: $*"; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() {
  echo "demo: error: $*" >&2
  exit 1
}

# --- preconditions ----------------------------------------------------------------------

for file in dist/meshgate.wasm "$MESHGATE" "$HARNESS"; do
  [[ -f "$file" ]] || die "$file is missing; run ./build.sh demo (it builds everything first)"
done
command -v curl >/dev/null 2>&1 || die "curl is needed; run scripts/setup.sh"
ENVOY="$(scripts/envoy-path.sh)" || die "no Envoy found; run scripts/setup.sh"


describe_port() {
  local port="$1" what="$2" owner=""
  if command -v ss >/dev/null 2>&1; then
    owner="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 | sed 's/users:((//')"
  fi
  echo "  127.0.0.1:$port ($what) is in use${owner:+ by $owner}"
}

taken=()
for entry in "$EDGE_PORT:Envoy listener" "$ADMIN_PORT:Envoy admin" \
  "$ISSUER_PORT:mock issuer" "$UPSTREAM_PORT:tool stubs" "$CP_PORT:control plane" \
  "$BACKSTAGE_PORT:fake Backstage"; do
  port_taken "${entry%%:*}" && taken+=("$(describe_port "${entry%%:*}" "${entry#*:}")")
done
if ((${#taken[@]} > 0)); then
  echo "demo: error: the demo needs ports $EDGE_PORT, $ADMIN_PORT, $ISSUER_PORT, $UPSTREAM_PORT, $CP_PORT and $BACKSTAGE_PORT free:" >&2
  printf '%s\n' "${taken[@]}" >&2
  echo "demo: stop whatever holds them (another demo still running?) and try again" >&2
  exit 1
fi

# --- process supervision ----------------------------------------------------------------

harness_pid=""
envoy_pid=""
cp_pid=""


cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [[ -n "$envoy_pid$harness_pid$cp_pid" ]]; then
    echo
    say "stopping Envoy, the control plane and the harness"
  fi
  stop_pid "$envoy_pid" envoy
  envoy_pid=""
  stop_pid "$cp_pid" "meshgate serve"
  cp_pid=""
  stop_pid "$harness_pid" meshgate-harness
  harness_pid=""
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

log_tail() {
  local file="$1"
  echo "---- last lines of $file ----" >&2
  tail -n 30 "$file" >&2 || true
  echo "----" >&2
}


# --- mock issuer, tool stubs and fake Backstage -------------------------------------------

mkdir -p "$DEMO_DIR"
# A fresh copy of the sample catalog each time: edit it to see changes reach the edge.
rm -rf "$CATALOG_DIR"
mkdir -p "$CATALOG_DIR"
cp test-harness/catalog/*.yaml "$CATALOG_DIR/"
say "starting the mock issuer ($ISSUER), tool stubs (http://127.0.0.1:$UPSTREAM_PORT) and fake Backstage ($BACKSTAGE); log: $HARNESS_LOG"
"$HARNESS" serve --issuer-port "$ISSUER_PORT" --upstream-port "$UPSTREAM_PORT" --keys "$KEYS" \
  --backstage-port "$BACKSTAGE_PORT" --catalog "$CATALOG_DIR" \
  >"$HARNESS_LOG" 2>&1 &
harness_pid=$!

issuer_up() { curl -fsS -o /dev/null --max-time 1 "$ISSUER/.well-known/openid-configuration" 2>/dev/null; }
if ! wait_for 10 "$harness_pid" issuer_up; then
  log_tail "$HARNESS_LOG"
  die "the mock issuer did not answer $ISSUER/.well-known/openid-configuration within 10 s"
fi
discovery="$(curl -fsS --max-time 1 "$ISSUER/.well-known/openid-configuration")"
if [[ "$discovery" != *"\"$ISSUER\""* ]]; then
  say "warning: the issuer in $KEYS is not $ISSUER (the issuer $CONFIG trusts); tokens will be rejected."
  say "         remove $KEYS to let the harness create a fresh one"
fi

backstage_up() { curl -fsS -o /dev/null --max-time 1 "$BACKSTAGE/api/auth/.well-known/openid-configuration" 2>/dev/null; }
if ! wait_for 10 "$harness_pid" backstage_up; then
  log_tail "$HARNESS_LOG"
  die "the fake Backstage did not answer $BACKSTAGE/api/auth/.well-known/openid-configuration within 10 s"
fi

# --- control plane ----------------------------------------------------------------------------

# envoy/demo/cp.yaml with absolute paths, so MESHGATE_DEMO_DIR can point anywhere.
# The access store and audit trail start empty on every demo start.
rm -f "$DEMO_DIR/access.db" "$DEMO_DIR/access.db-wal" "$DEMO_DIR/access.db-shm" "$DEMO_DIR/audit.jsonl"
sed -e "s|^  directory: .*|  directory: $PWD/$CATALOG_DIR|" \
  -e "s|^signing_key_file: .*|signing_key_file: $PWD/envoy/demo/cp-signing-key.demo.json|" \
  -e "s|^  policy_file: .*|  policy_file: $PWD/envoy/demo/access-policy.yaml|" \
  -e "s|^    sqlite: .*|    sqlite: {path: $PWD/$DEMO_DIR/access.db}|" \
  -e "s|^  audit: .*|  audit: {file: $PWD/$DEMO_DIR/audit.jsonl}|" \
  -e "s|^    filter_config: .*|    filter_config: $PWD/$CONFIG|" \
  "$CP_CONFIG_SOURCE" >"$DEMO_DIR/cp.yaml"
say "starting the control plane ($CP, catalog in $CATALOG_DIR); log: $CP_LOG"
"$MESHGATE" serve --config "$DEMO_DIR/cp.yaml" >"$CP_LOG" 2>&1 &
cp_pid=$!
cp_ready() { curl -fsS -o /dev/null --max-time 1 "$CP/readyz" 2>/dev/null; }
if ! wait_for 10 "$cp_pid" cp_ready; then
  log_tail "$CP_LOG"
  die "the control plane did not become ready on $CP/readyz within 10 s"
fi

# --- Envoy ---------------------------------------------------------------------------------

say "starting Envoy ($EDGE, admin http://127.0.0.1:$ADMIN_PORT) with $CONFIG; log: $ENVOY_LOG"
# stderr to a file rather than --log-path: --log-path is flushed only every 10 s.
"$ENVOY" -c "$CONFIG" --concurrency 2 --disable-hot-restart -l info >"$ENVOY_LOG" 2>&1 &
envoy_pid=$!

envoy_live() { [[ "$(curl -fsS --max-time 1 "http://127.0.0.1:$ADMIN_PORT/ready" 2>/dev/null)" == LIVE* ]]; }
if ! wait_for 20 "$envoy_pid" envoy_live; then
  log_tail "$ENVOY_LOG"
  if kill -0 "$envoy_pid" 2>/dev/null; then
    die "Envoy did not report LIVE on http://127.0.0.1:$ADMIN_PORT/ready within 20 s"
  fi
  die "Envoy exited during startup"
fi

# --- self-check ------------------------------------------------------------------------------

mint() { "$MESHGATE" token --keys "$KEYS" "$@"; }
status_of() {
  # status_of TOKEN|"" PATH -> HTTP status of a request to airflow.internal
  local token="$1" path="$2" auth=()
  [[ -n "$token" ]] && auth=(-H "Authorization: Bearer $token")
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: airflow.internal' \
    "${auth[@]}" "$EDGE$path" || true
}

checks_failed=0
check() {
  # check DESCRIPTION WANT GOT
  if [[ "$3" == "$2" ]]; then
    echo "  ✓ $1 → $3"
  else
    echo "  ✗ $1 → $3 (expected $2)"
    checks_failed=1
  fi
}

alice="$(mint --sub alice --groups data-eng --email alice@example.com)" ||
  die "could not mint a token with $MESHGATE token --keys $KEYS"
finance="$(mint --sub mallory --groups finance)"
bob="$(mint --sub bob --email bob@example.com)"

say "self-check (the filter fetches the JWKS and the catalog snapshot on its first tick)"
got=""
deadline=$((SECONDS + 10))
while ((SECONDS < deadline)); do
  got="$(status_of "$alice" /api/v1/dags)"
  [[ "$got" == 200 ]] && break
  kill -0 "$envoy_pid" 2>/dev/null || break
  sleep 0.25
done
check "alice (data-eng) GET airflow.internal/api/v1/dags" 200 "$got"
check "no token GET airflow.internal/api/v1/dags" 401 "$(status_of "" /api/v1/dags)"
check "mallory (finance) GET airflow.internal/api/v1/dags" 403 "$(status_of "$finance" /api/v1/dags)"
check "bob (no token groups; catalog: analytics ⊂ data-eng) GET /api/v1/dags" 200 "$(status_of "$bob" /api/v1/dags)"
status_post() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST -H 'Host: airflow.internal' \
    -H "Authorization: Bearer $1" "$EDGE$2" || true
}
check "alice triggers etl_daily (owned by data-eng)" 200 "$(status_post "$alice" /api/v1/dags/etl_daily/dagRuns)"
check "alice triggers marketing_report (owned by analytics)" 403 "$(status_post "$alice" /api/v1/dags/marketing_report/dagRuns)"
backstage_token() { "$MESHGATE" token --backstage --user "$1" --backstage-url "$BACKSTAGE"; }
if bs_alice="$(backstage_token alice)" && bs_carol="$(backstage_token carol)"; then
  # The fake Backstage had no key before this first sign-in: the filter fetches it now.
  check "alice's Backstage token triggers etl_daily" 200 "$(status_post "$bs_alice" /api/v1/dags/etl_daily/dagRuns)"
  check "carol's Backstage token triggers etl_daily (carol: ci-admins)" 403 "$(status_post "$bs_carol" /api/v1/dags/etl_daily/dagRuns)"
else
  check "sign-in at the fake Backstage ($BACKSTAGE/api/auth/guest/refresh)" ok failed
fi
if ((checks_failed)); then
  say "warning: the self-check failed; the stack stays up so you can look:"
  say "  $ENVOY_LOG, $HARNESS_LOG, $CP_LOG, curl -s 127.0.0.1:$ADMIN_PORT/stats | grep meshgate"
fi

# --- what to try -------------------------------------------------------------------------------

JQ=""
command -v jq >/dev/null 2>&1 && JQ=" | jq ."
JQH=""
command -v jq >/dev/null 2>&1 && JQH=" | jq .headers"

cat <<EOF

meshgate demo is running: Envoy $EDGE → meshgate → tool stubs. Ctrl-C stops everything.

Every tool is the same echo server behind Envoy; the Host header picks the tool, and the
answer echoes the method, path and headers the upstream received.

# A token from the demo issuer (1 h, RS256, audience meshgate-demo):
TOKEN=\$($MESHGATE token --sub alice --groups data-eng --email alice@example.com)

# Allowed: Airflow DAG list. In .headers, the x-meshgate-* headers (subject, groups, email,
# provider, rule) and x-user-email were set by meshgate from the verified token.
curl -s -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" $EDGE/api/v1/dags$JQ

# Allowed: trigger a DAG run. The rule says the caller's groups must own the DAG in the
# Backstage catalog (etl_daily belongs to data-eng, see $CATALOG_DIR/components.yaml).
curl -s -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{"conf": {}}' $EDGE/api/v1/dags/etl_daily/dagRuns$JQ
# 403: marketing_report belongs to analytics, which alice is not in.
curl -si -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" $EDGE/api/v1/dags/marketing_report/dagRuns

# Groups from the catalog (control plane $CP, files in $CATALOG_DIR): bob's token has no
# groups, but the catalog puts him in analytics, nested in data-eng, and finds him by email.
BOB=\$($MESHGATE token --sub bob --email bob@example.com)
curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: airflow.internal' -H "Authorization: Bearer \$BOB" $EDGE/api/v1/dags
curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$BOB" $EDGE/api/v1/dags/marketing_report/dagRuns
# Take bob out of analytics in the catalog: within seconds he is denied, nothing restarts.
sed -i 's/members: \[bob\]/members: []/' $CATALOG_DIR/org.yaml
sleep 5; curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: airflow.internal' -H "Authorization: Bearer \$BOB" $EDGE/api/v1/dags
# Put him back (or POST $CP/v1/sync to re-read the catalog at once):
sed -i 's/members: \[\]/members: [bob]/' $CATALOG_DIR/org.yaml; curl -s -X POST $CP/v1/sync$JQ

# 401: no token, then an expired one (WWW-Authenticate says why).
curl -si -H 'Host: airflow.internal' $EDGE/api/v1/dags
EXPIRED=\$($MESHGATE token --sub alice --groups data-eng --exp-offset -120)
curl -si -H 'Host: airflow.internal' -H "Authorization: Bearer \$EXPIRED" $EDGE/api/v1/dags

# 403: a group with no rule for Airflow, then /admin/** (denied for everyone).
FINANCE=\$($MESHGATE token --sub mallory --groups finance)
curl -si -H 'Host: airflow.internal' -H "Authorization: Bearer \$FINANCE" $EDGE/api/v1/dags
curl -si -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" $EDGE/admin/users

# Airbyte sync needs both data-eng and airbyte-operators: alice gets 403, carol 200.
curl -si -X POST -H 'Host: airbyte.internal' -H "Authorization: Bearer \$TOKEN" $EDGE/api/v1/connections/sync
OPS=\$($MESHGATE token --sub carol --groups data-eng,airbyte-operators)
curl -s -X POST -H 'Host: airbyte.internal' -H "Authorization: Bearer \$OPS" $EDGE/api/v1/connections/sync$JQ

# Public route: /health needs no token.
curl -s -H 'Host: items.svc.internal' $EDGE/health$JQ

# Shadow route: new-tool.internal is in shadow mode (mode_overrides). bob would be denied,
# so the request passes without identity and the decision log says what would have happened.
curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: new-tool.internal' -H "Authorization: Bearer \$FINANCE" $EDGE/items/1
grep 'meshgate decision' .meshgate/demo/envoy.log | grep new-tool | tail -1

# Why would it deny? The same core code, offline (exit status 1 = deny):
$MESHGATE check --config envoy/meshgate-demo.yaml --url http://new-tool.internal/items/1 --token "\$FINANCE" --jwks demo=<(curl -s $ISSUER/jwks) --snapshot <(curl -s $CP/v1/snapshots/default)

# A spoofed identity header is replaced: the upstream sees alice, not root.
curl -s -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" -H 'x-meshgate-subject: root' $EDGE/api/v1/dags$JQH

# Path tricks do not reach /admin: an encoded slash is refused (400 path_rejected),
# a double slash is merged and then denied by the block-admin rule (403).
curl -si --path-as-is -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" '$EDGE/api/v1/dags/..%2Fadmin'
curl -si --path-as-is -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" '$EDGE//admin/users'

# Backstage user tokens, as Backstage's proxy forwards them (credentials: forward). The fake
# Backstage signs users in at $BACKSTAGE/api/auth/guest/refresh; the token has no groups, the
# catalog decides: alice (data-eng) may trigger etl_daily, carol (ci-admins) gets a 403 whose
# decision-log reason names the ownership rule she missed.
ALICE_BS=\$($MESHGATE token --backstage --user alice)
curl -s -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$ALICE_BS" $EDGE/api/v1/dags/etl_daily/dagRuns$JQH
CAROL_BS=\$($MESHGATE token --backstage --user carol)
curl -si -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$CAROL_BS" $EDGE/api/v1/dags/etl_daily/dagRuns
grep 'meshgate decision' $ENVOY_LOG | grep carol | tail -1
# Backstage makes a new signing key; a token signed with it makes meshgate refetch the JWKS once.
curl -s -X POST $BACKSTAGE/admin/rotate$JQ
NEW_BS=\$($MESHGATE token --backstage --user alice)
curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Host: airflow.internal' -H "Authorization: Bearer \$NEW_BS" $EDGE/api/v1/dags/etl_daily/dagRuns

# Key rotation: the issuer adds a new signing key to its JWKS and signs new tokens with it.
# Tokens signed before keep working; the first token signed with the new key makes meshgate
# refetch the JWKS at once (rate limited, shared by workers), so it gets 200 too.
curl -s -X POST '$ISSUER/admin/rotate?alg=RS256'$JQ
NEW=\$($MESHGATE token --sub alice --groups data-eng)
curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: airflow.internal' -H "Authorization: Bearer \$NEW" $EDGE/api/v1/dags
curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: airflow.internal' -H "Authorization: Bearer \$TOKEN" $EDGE/api/v1/dags

# Decision log: one JSON line per denial (allows are logged at debug level), and counters:
grep 'meshgate decision' $ENVOY_LOG
curl -s 127.0.0.1:$ADMIN_PORT/stats | grep meshgate

EOF

# --- foreground --------------------------------------------------------------------------------

# Returns when either child exits or a signal arrives (the traps above then clean up).
set +e
wait -n "$envoy_pid" "$harness_pid" "$cp_pid"
set -e
if ! kill -0 "$envoy_pid" 2>/dev/null; then
  log_tail "$ENVOY_LOG"
  die "Envoy exited unexpectedly"
fi
if ! kill -0 "$cp_pid" 2>/dev/null; then
  log_tail "$CP_LOG"
  die "the control plane exited unexpectedly"
fi
log_tail "$HARNESS_LOG"
die "meshgate-harness exited unexpectedly"
