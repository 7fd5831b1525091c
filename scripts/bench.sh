#!/usr/bin/env bash
# The benchmark of issue 9: meshgate against Envoy's native jwt_authn + rbac, an empty Wasm
# filter and no filter, on hot and cold tokens, three key types and two rule-set sizes.
#
#   ./build.sh bench      builds dist/*.wasm and the release binaries, then runs this
#
# test-harness/bench/plan.py writes one Envoy bootstrap per instance into target/bench/ (each
# checked with `envoy --mode validate`) and the list of load cases. Scenarios:
#   none              router only
#   ceiling           the smallest Rust proxy-wasm filter (dist/meshgate-ceiling.wasm)
#   native            jwt_authn (remote_jwks, no jwt_cache_config) + rbac, the demo policy
#   native_cached     the same with jwt_cache_config {jwt_cache_size: 1024}
#   meshgate          dist/meshgate.wasm, demo policy, verified-token cache on (default)
#   meshgate_nocache  the same with jwt_cache_config {jwt_cache_size: 0}
# plus `*_10k` instances of the scenarios with rules: the demo policy after 10,000 extra rules.
# Every Envoy is its own process (--concurrency 1 --disable-hot-restart, own base id and
# ports) pinned to CPU 0; wrk and the mock issuer run on CPU 1. Requests get a
# direct_response from Envoy (no upstream under load); one header-selected route reaches the
# tool stubs so the sanity check can see the identity headers.
#
# Each case is (scenario, mix, alg, rules, connections). Mixes: hot (one token on every
# request, `wrk -H`) and cold (10,000 distinct valid tokens round robin, cold.lua).
# Before any load, each Envoy is timed from process start to its first 200 and must pass the
# sanity check twice; an Envoy that fails gets no numbers, and the script exits 1 at the end.
# Warm-up per case, then interleaved rounds (the starting case rotates each round).
# test-harness/bench/report.py prints the table and writes target/bench/latest.json and
# target/bench/latest.md.
#
# Knobs (environment):
#   MESHGATE_BENCH_MATRIX      quick (default, about 8 minutes on 2 CPUs) or full (c64 too,
#                              every alg and rule set for every scenario: about 40 minutes)
#   MESHGATE_BENCH_ROUNDS      3        MESHGATE_BENCH_DURATION   5s
#   MESHGATE_BENCH_WARMUP      2s       MESHGATE_BENCH_COLD_TOKENS 10000
#   MESHGATE_BENCH_SCENARIOS   only these scenarios (e.g. "native meshgate"); ratios need
#                              native/native_cached and ceiling in the same run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_DIR=target/bench
KEYS="$BENCH_DIR/issuer-keys.json"
MESHGATE=target/release/meshgate
HARNESS=target/release/meshgate-harness
MINT_MANY=target/release/meshgate-bench-tokens
SOURCE_CONFIG=envoy/meshgate-demo.yaml
COLD_LUA=test-harness/bench/cold.lua

ROUNDS="${MESHGATE_BENCH_ROUNDS:-3}"
DURATION="${MESHGATE_BENCH_DURATION:-5s}"
WARMUP="${MESHGATE_BENCH_WARMUP:-2s}"
COLD_TOKENS="${MESHGATE_BENCH_COLD_TOKENS:-10000}"
ISSUER_PORT=18180
UPSTREAM_PORT=18181
ALGS=(RS256 ES256 EdDSA)

say() { echo "bench: $*"; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() {
  echo "bench: error: $*" >&2
  exit 1
}

# --- preconditions --------------------------------------------------------------------------

for file in dist/meshgate.wasm dist/meshgate-ceiling.wasm "$MESHGATE" "$HARNESS" "$MINT_MANY" \
  "$SOURCE_CONFIG" "$COLD_LUA"; do
  [[ -f "$file" ]] || die "$file is missing; run ./build.sh bench (it builds everything first)"
done
for cmd in curl wrk python3 jq; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is needed; run scripts/setup.sh"
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "MESHGATE_BENCH_ROUNDS=$ROUNDS: expected a positive number"
[[ "$COLD_TOKENS" =~ ^[1-9][0-9]*$ ]] || die "MESHGATE_BENCH_COLD_TOKENS=$COLD_TOKENS: expected a positive number"
ENVOY="$(scripts/envoy-path.sh)" || die "no Envoy found; run scripts/setup.sh"
ENVOY_VERSION="$("$ENVOY" --version | sed -n 's/^.*version: //p')"

# Envoy on CPU 0; wrk and the harness on CPU 1, so the CPU Envoy runs on is its own.
PIN_ENVOY=()
PIN_LOAD=()
PINNING="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
  PIN_ENVOY=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
  PINNING="envoy on CPU 0; wrk and meshgate-harness on CPU 1"
fi

LOADAVG_AT_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
RUN_STARTED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
mkdir -p "$BENCH_DIR"
rm -rf "$BENCH_DIR/runs" "$BENCH_DIR/sanity"
# Kept: the issuer key file and the cold token files minted with it.
for file in "$BENCH_DIR"/*.json "$BENCH_DIR"/*.tsv "$BENCH_DIR"/*.log "$BENCH_DIR"/*.yaml \
  "$BENCH_DIR"/wrk-*.txt "$BENCH_DIR"/warmup-*.txt "$BENCH_DIR/latest.md"; do
  [[ "$file" == "$KEYS" ]] || rm -f "$file"
done
mkdir -p "$BENCH_DIR/runs" "$BENCH_DIR/sanity"

say "planning (MESHGATE_BENCH_MATRIX=${MESHGATE_BENCH_MATRIX:-quick}) into $BENCH_DIR/"
python3 test-harness/bench/plan.py "$SOURCE_CONFIG" "$BENCH_DIR" "$ISSUER_PORT" "$UPSTREAM_PORT" ||
  die "test-harness/bench/plan.py failed"
REQ_HOST="$(jq -r .request.host "$BENCH_DIR/plan.json")"
REQ_PATH="$(jq -r .request.path "$BENCH_DIR/plan.json")"
ECHO_HEADER="$(jq -r .request.echo_header "$BENCH_DIR/plan.json")"

INSTANCES=()
declare -A SCENARIO=() LISTEN=() ADMIN=() BASE_ID=() CONFIG=() KIND=() ENVOY_PID=() SANE=()
while IFS=$'\t' read -r name scenario _rules listen admin base_id config kind; do
  INSTANCES+=("$name")
  SCENARIO[$name]=$scenario LISTEN[$name]=$listen ADMIN[$name]=$admin
  BASE_ID[$name]=$base_id CONFIG[$name]=$config KIND[$name]=$kind
done <"$BENCH_DIR/instances.tsv"
CASES=()
declare -A CASE_INSTANCE=() CASE_MIX=() CASE_ALG=() CASE_CONNECTIONS=()
while IFS=$'\t' read -r id instance _scenario mix alg _rules connections; do
  CASES+=("$id")
  CASE_INSTANCE[$id]=$instance CASE_MIX[$id]=$mix CASE_ALG[$id]=$alg CASE_CONNECTIONS[$id]=$connections
done <"$BENCH_DIR/cases.tsv"
((${#CASES[@]} > 0)) || die "no cases planned (check MESHGATE_BENCH_SCENARIOS)"
mapfile -t COLD_ALGS < <(awk -F'\t' '$4 == "cold" {print $5}' "$BENCH_DIR/cases.tsv" | sort -u)
say "${#INSTANCES[@]} Envoys, ${#CASES[@]} cases, $ROUNDS rounds of $DURATION each after a $WARMUP warm-up"

taken=()
for port in "$ISSUER_PORT" "$UPSTREAM_PORT" "${LISTEN[@]}" "${ADMIN[@]}"; do
  port_taken "$port" && taken+=("$port")
done
((${#taken[@]} == 0)) || die "ports in use on 127.0.0.1: ${taken[*]} (another bench still running?)"

for name in "${INSTANCES[@]}"; do
  if ! "$ENVOY" --mode validate -c "${CONFIG[$name]}" --disable-hot-restart -l error \
    >"$BENCH_DIR/$name.validate.log" 2>&1; then
    tail -n 20 "$BENCH_DIR/$name.validate.log" >&2
    die "envoy --mode validate rejected ${CONFIG[$name]}"
  fi
done
say "envoy --mode validate: all ${#INSTANCES[@]} configurations OK"

# --- process supervision ----------------------------------------------------------------------

harness_pid=""
cleanup() {
  local status=$? name
  trap - EXIT INT TERM HUP
  for name in "${!ENVOY_PID[@]}"; do
    stop_pid "${ENVOY_PID[$name]}" "envoy $name"
  done
  ENVOY_PID=()
  stop_pid "$harness_pid" meshgate-harness
  harness_pid=""
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say "starting meshgate-harness (issuer 127.0.0.1:$ISSUER_PORT, tool stubs 127.0.0.1:$UPSTREAM_PORT)"
"${PIN_LOAD[@]}" "$HARNESS" serve --issuer-port "$ISSUER_PORT" --upstream-port "$UPSTREAM_PORT" \
  --keys "$KEYS" >"$BENCH_DIR/harness.log" 2>&1 &
harness_pid=$!
issuer_up() {
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ISSUER_PORT/.well-known/openid-configuration" 2>/dev/null
}
# A fresh key file means RSA key generation first: give it time.
if ! wait_for 30 "$harness_pid" issuer_up; then
  tail -n 20 "$BENCH_DIR/harness.log" >&2
  die "the mock issuer did not come up"
fi

# --- tokens -------------------------------------------------------------------------------------

mint() { "$MESHGATE" token --keys "$KEYS" "$@"; }
declare -A VALID=()
for alg in "${ALGS[@]}"; do
  VALID[$alg]="$(mint --sub alice --groups data-eng --email alice@example.com --alg "$alg")"
done
EXPIRED="$(mint --sub alice --groups data-eng --exp-offset -120)"
FORGED="$(mint --sub alice --groups data-eng --unpublished-key)"
WRONG_AUD="$(mint --sub alice --groups data-eng --aud some-other-audience)"
NO_GROUP="$(mint --sub bob --groups finance)"
# Tampered: one character in the middle of the signature changed.
sig="${VALID[RS256]##*.}"
mid=$((${#sig} / 2))
swap=A
[[ "${sig:mid:1}" == A ]] && swap=B
TAMPERED="${VALID[RS256]%.*}.${sig:0:mid}${swap}${sig:mid+1}"

# Cold tokens: minted once per key file and reused for 4 hours (they are valid for 6).
for alg in "${COLD_ALGS[@]}"; do
  file="$BENCH_DIR/tokens-$alg-$COLD_TOKENS.txt"
  if [[ -f "$file" && "$file" -nt "$KEYS" && -n "$(find "$file" -mmin -240)" ]] &&
    (($(wc -l <"$file") == COLD_TOKENS)); then
    say "reusing $file"
    continue
  fi
  say "minting $COLD_TOKENS distinct $alg tokens into $file"
  "$MINT_MANY" --keys "$KEYS" --alg "$alg" --count "$COLD_TOKENS" --out "$file.tmp" ||
    die "minting $alg tokens failed"
  mv "$file.tmp" "$file"
done

# --- Envoys, startup time -------------------------------------------------------------------------

probe() {
  # probe INSTANCE TOKEN|"" -> "STATUS SECONDS" of GET $REQ_PATH with Host $REQ_HOST.
  # 10 s: meshgate may hold a request with an unknown kid for up to timeout_ms + 1 s.
  local auth=()
  [[ -n "$2" ]] && auth=(-H "Authorization: Bearer $2")
  curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 -H "Host: $REQ_HOST" \
    "${auth[@]}" "http://127.0.0.1:${LISTEN[$1]}$REQ_PATH" || true
}
status_of() {
  local got
  got="$(probe "$@")"
  echo "${got%% *}"
}
now_ns() { date +%s%N; }

# One at a time, so startups don't compete for CPU 0. Startup: process start until the first
# 200 through the listener for a valid token (polled every 20 ms, so ±20 ms).
: >"$BENCH_DIR/startup.tsv"
for name in "${INSTANCES[@]}"; do
  started="$(now_ns)"
  "${PIN_ENVOY[@]}" "$ENVOY" -c "${CONFIG[$name]}" --concurrency 1 --disable-hot-restart \
    --base-id "${BASE_ID[$name]}" -l info >"$BENCH_DIR/$name.envoy.log" 2>&1 &
  ENVOY_PID[$name]=$!
  ready=""
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)) && kill -0 "${ENVOY_PID[$name]}" 2>/dev/null; do
    if [[ "$(status_of "$name" "${VALID[RS256]}")" == 200 ]]; then
      ready="$(now_ns)"
      break
    fi
    sleep 0.02
  done
  if [[ -n "$ready" ]]; then
    startup_ms=$(((ready - started) / 1000000))
    say "$name: first 200 after $startup_ms ms (pid ${ENVOY_PID[$name]}, 127.0.0.1:${LISTEN[$name]})"
    printf '%s\t%s\n' "$name" "$startup_ms" >>"$BENCH_DIR/startup.tsv"
  else
    say "$name: no 200 within 60 s (log: $BENCH_DIR/$name.envoy.log)"
    printf '%s\t-\n' "$name" >>"$BENCH_DIR/startup.tsv"
  fi
done
say "all Envoys started ($PINNING)"

# --- sanity checks --------------------------------------------------------------------------------

# Upstream echo: what the tool stub saw of a request sent through the header-selected route.
echoed() {
  curl -s --max-time 2 -H "Host: $REQ_HOST" -H "$ECHO_HEADER: 1" -H "Authorization: Bearer $2" \
    "http://127.0.0.1:${LISTEN[$1]}$REQ_PATH" || true
}

for name in "${INSTANCES[@]}"; do
  out="$BENCH_DIR/sanity/$name.tsv"
  : >"$out"
  ok=1
  expect() {
    # expect CHECK WANT "GOT [SECONDS]"
    local got="${3%% *}" seconds="-"
    [[ "$3" == *" "* ]] && seconds="${3#* }"
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$got" "$seconds" >>"$out"
    if [[ "$got" != "$2" ]]; then
      echo "  ✗ $name: $1 → $got (expected $2)"
      ok=0
    fi
  }
  # Twice: the second pass is answered from whatever the first one put in caches.
  for pass in 1 2; do
    for alg in "${ALGS[@]}"; do
      expect "pass$pass.valid_$alg" 200 "$(probe "$name" "${VALID[$alg]}")"
    done
    for alg in "${COLD_ALGS[@]}"; do
      file="$BENCH_DIR/tokens-$alg-$COLD_TOKENS.txt"
      expect "pass$pass.cold_first_$alg" 200 "$(probe "$name" "$(head -n 1 "$file")")"
      expect "pass$pass.cold_last_$alg" 200 "$(probe "$name" "$(tail -n 1 "$file")")"
    done
    [[ "${KIND[$name]}" == auth ]] || continue
    expect "pass$pass.no_token" 401 "$(probe "$name" "")"
    expect "pass$pass.expired" 401 "$(probe "$name" "$EXPIRED")"
    expect "pass$pass.forged_unpublished_key" 401 "$(probe "$name" "$FORGED")"
    expect "pass$pass.tampered_signature" 401 "$(probe "$name" "$TAMPERED")"
    # jwt_authn answers an audience mismatch with 403 (its documented behaviour), meshgate 401.
    want_aud=401
    [[ "${SCENARIO[$name]}" == native* ]] && want_aud=403
    expect "pass$pass.wrong_audience" "$want_aud" "$(probe "$name" "$WRONG_AUD")"
    expect "pass$pass.valid_without_group" 403 "$(probe "$name" "$NO_GROUP")"
    body="$(echoed "$name" "${VALID[RS256]}")"
    saw=0
    [[ "$body" =~ \"x-user-email\":\ ?\"alice@example.com\" ]] && saw=1
    expect "pass$pass.upstream_saw_email_claim" 1 "$saw"
    if [[ "${SCENARIO[$name]}" == meshgate* ]]; then
      saw=0
      [[ "$body" =~ \"x-meshgate-subject\":\ ?\"alice\" ]] && saw=1
      expect "pass$pass.upstream_saw_subject" 1 "$saw"
    fi
  done
  SANE[$name]=$ok
  checks=$(wc -l <"$out")
  if ((ok)); then
    say "sanity $name: $checks checks passed"
  else
    say "sanity $name: FAILED (no numbers for it; details in $out)"
  fi
done

# --- load -------------------------------------------------------------------------------------------

# CPU time (utime + stime, in clock ticks) a process has used so far.
cpu_ticks() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || {
    echo 0
    return
  }
  stat="${stat##*) }" # fields after the command name; utime and stime are then 12 and 13
  read -r -a fields <<<"$stat"
  echo $((fields[11] + fields[12]))
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Verified-token cache hits and misses: meshgate.token_cache.{hit,miss} or jwt_authn's
# jwt_cache_{hit,miss}; "0 0" for Envoys without a cache.
cache_counts() {
  curl -s --max-time 2 "http://127.0.0.1:${ADMIN[$1]}/stats?filter=cache" 2>/dev/null |
    awk '/(token_cache\.hit|jwt_cache_hit): / {h += $2} /(token_cache\.miss|jwt_cache_miss): / {m += $2}
         END {print h + 0, m + 0}'
}
CLK_TCK="$(getconf CLK_TCK)"

run_wrk() {
  # run_wrk CASE DURATION OUTPUT: wrk's report, then the Envoy's CPU, RSS and cache counters.
  local id="$1" name="${CASE_INSTANCE[$1]}" pid load=() before_ticks before_cache start end
  pid="${ENVOY_PID[$name]}"
  if [[ "${CASE_MIX[$id]}" == cold ]]; then
    load=(-s "$COLD_LUA" "http://127.0.0.1:${LISTEN[$name]}$REQ_PATH"
      -- "$BENCH_DIR/tokens-${CASE_ALG[$id]}-$COLD_TOKENS.txt" "$REQ_HOST")
  else
    load=(-H "Authorization: Bearer ${VALID[${CASE_ALG[$id]}]}" -H "Host: $REQ_HOST"
      "http://127.0.0.1:${LISTEN[$name]}$REQ_PATH")
  fi
  before_cache="$(cache_counts "$name")"
  before_ticks="$(cpu_ticks "$pid")"
  start="$(date +%s.%N)"
  "${PIN_LOAD[@]}" wrk -t1 -c"${CASE_CONNECTIONS[$id]}" -d"$2" --latency "${load[@]}" >"$3" 2>&1 || true
  end="$(date +%s.%N)"
  {
    echo "bench: wall seconds $start $end"
    echo "bench: envoy cpu ticks $before_ticks $(cpu_ticks "$pid") at $CLK_TCK/s"
    echo "bench: envoy rss kib $(rss_kib "$pid")"
    echo "bench: cache hits misses $before_cache $(cache_counts "$name")"
  } >>"$3"
}

loaded=()
for id in "${CASES[@]}"; do
  ((SANE[${CASE_INSTANCE[$id]}])) && loaded+=("$id")
done
if ((${#loaded[@]} > 0)); then
  say "warm-up: $WARMUP per case"
  for id in "${loaded[@]}"; do
    run_wrk "$id" "$WARMUP" "$BENCH_DIR/runs/$id.warmup.txt"
  done
fi
count=${#loaded[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  say "round $round/$ROUNDS: $count cases, wrk -t1 -d$DURATION"
  # Interleaved, and the starting case rotates each round.
  for ((k = 0; k < count; k++)); do
    id="${loaded[$(((k + round - 1) % count))]}"
    run_wrk "$id" "$DURATION" "$BENCH_DIR/runs/$id.$round.txt"
  done
done

# --- report ---------------------------------------------------------------------------------------

for name in "${INSTANCES[@]}"; do
  printf '%s\t%s\n' "$name" "${SANE[$name]}"
done >"$BENCH_DIR/sane.tsv"
BENCH_DIR="$BENCH_DIR" ROUNDS="$ROUNDS" DURATION="$DURATION" WARMUP="$WARMUP" \
  COLD_TOKENS="$COLD_TOKENS" ENVOY_VERSION="$ENVOY_VERSION" PINNING="$PINNING" \
  LOADAVG_AT_START="$LOADAVG_AT_START" RUN_STARTED="$RUN_STARTED" \
  LOADAVG_AT_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" \
  RUN_ENDED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" python3 test-harness/bench/report.py
