#!/usr/bin/env bash
# A quick, honest throughput comparison of meshgate against the same Envoy without it.
#
#   ./build.sh bench      builds dist/*.wasm and the release binaries, then runs this
#
# Three Envoys (--concurrency 1), generated from envoy/meshgate-demo.yaml into target/bench/:
#   none      the demo config with the Wasm filter removed: only the router (native Envoy)
#   ceiling   the smallest Rust proxy-wasm filter (dist/meshgate-ceiling.wasm): what any
#             Wasm filter costs, the best a Wasm filter could do
#   meshgate  dist/meshgate.wasm with the demo policy
# all proxying to the tool stubs of meshgate-harness (GET airflow.internal /api/v1/dags); the
# virtual host drops the Authorization header before the upstream in all three (see below).
# The same valid token is sent on every request, so this measures meshgate's hot path
# (verified-token cache hit). Sanity checks run first; a scenario that fails them gets no
# numbers. wrk runs in interleaved rounds; the table shows medians and writes
# target/bench/latest.json. With taskset, Envoy runs on CPU 0, wrk and the harness on CPU 1.
#
# Knobs (environment): MESHGATE_BENCH_ROUNDS (3), MESHGATE_BENCH_DURATION (5s),
# MESHGATE_BENCH_CONNECTIONS (16).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_DIR=target/bench
KEYS="$BENCH_DIR/issuer-keys.json"
MESHGATE=target/release/meshgate
HARNESS=target/release/meshgate-harness
SOURCE_CONFIG=envoy/meshgate-demo.yaml

ROUNDS="${MESHGATE_BENCH_ROUNDS:-3}"
DURATION="${MESHGATE_BENCH_DURATION:-5s}"
CONNECTIONS="${MESHGATE_BENCH_CONNECTIONS:-16}"
WARMUP=2s
REQ_HOST=airflow.internal
REQ_PATH=/api/v1/dags

ISSUER_PORT=18180
UPSTREAM_PORT=18181
SCENARIOS=(none ceiling meshgate)
declare -A LISTEN_PORT=([none]=10100 [ceiling]=10101 [meshgate]=10102)
declare -A ADMIN_PORT=([none]=9910 [ceiling]=9911 [meshgate]=9912)
declare -A ENVOY_PID=()

say() { echo "bench: $*"; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() {
  echo "bench: error: $*" >&2
  exit 1
}

# --- preconditions --------------------------------------------------------------------------

for file in dist/meshgate.wasm dist/meshgate-ceiling.wasm "$MESHGATE" "$HARNESS" "$SOURCE_CONFIG"; do
  [[ -f "$file" ]] || die "$file is missing; run ./build.sh bench (it builds everything first)"
done
for cmd in curl wrk python3; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is needed; run scripts/setup.sh"
done
ENVOY="$(scripts/envoy-path.sh)" || die "no Envoy found; run scripts/setup.sh"
ENVOY_VERSION="$("$ENVOY" --version | sed -n 's/^.*version: //p')"

taken=()
for port in "$ISSUER_PORT" "$UPSTREAM_PORT" "${LISTEN_PORT[@]}" "${ADMIN_PORT[@]}"; do
  port_taken "$port" && taken+=("$port")
done
((${#taken[@]} == 0)) || die "ports in use on 127.0.0.1: ${taken[*]} (another bench still running?)"

# Envoy on CPU 0; wrk and the harness on CPU 1, so the CPU Envoy runs on is its own.
PIN_ENVOY=()
PIN_LOAD=()
PINNING="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
  PIN_ENVOY=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
  PINNING="envoy on CPU 0; wrk and meshgate-harness on CPU 1"
fi

# --- process supervision ----------------------------------------------------------------------

harness_pid=""


cleanup() {
  local status=$? scenario
  trap - EXIT INT TERM HUP
  for scenario in "${!ENVOY_PID[@]}"; do
    stop_pid "${ENVOY_PID[$scenario]}"
  done
  ENVOY_PID=()
  stop_pid "$harness_pid"
  harness_pid=""
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP


# --- Envoy configurations -------------------------------------------------------------------------

LOADAVG_AT_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
mkdir -p "$BENCH_DIR"
rm -f "$BENCH_DIR"/wrk-*.txt "$BENCH_DIR"/warmup-*.txt "$BENCH_DIR"/latest.json

say "generating $BENCH_DIR/{none,ceiling,meshgate}.yaml from $SOURCE_CONFIG"
python3 - "$SOURCE_CONFIG" "$BENCH_DIR" "$ISSUER_PORT" "$UPSTREAM_PORT" \
  "${LISTEN_PORT[none]}" "${ADMIN_PORT[none]}" \
  "${LISTEN_PORT[ceiling]}" "${ADMIN_PORT[ceiling]}" \
  "${LISTEN_PORT[meshgate]}" "${ADMIN_PORT[meshgate]}" <<'PY'
# Plain text processing (no PyYAML): port substitutions, then the wasm filter block of the
# HTTP filter list is removed (none), swapped for the ceiling filter (ceiling) or kept.
import re
import sys

src, out_dir, issuer, upstream = sys.argv[1:5]
ports = dict(zip(["none", "ceiling", "meshgate"], zip(sys.argv[5::2], sys.argv[6::2])))
text = open(src, encoding="utf-8").read()


def substitute(text, old, new, at_least):
    new_text, count = re.subn(rf"\b{old}\b", new, text)
    if count < at_least:
        sys.exit(f"bench: {src}: expected port {old} at least {at_least}x, found {count}x")
    return new_text


text = substitute(text, "18080", issuer, 3)  # issuer URL, JWKS URI, demo_idp cluster
text = substitute(text, "18081", upstream, 1)  # tools cluster

# The bearer token is not forwarded in any scenario (meshgate strips it itself): the tool
# stub echoes request headers, and its answers above ~1 KB stall ~40 ms behind Envoy
# (Nagle on the stub, delayed ACK in Envoy), which would measure that instead of the proxy.
vhost, count = re.subn(
    r'^( *)(domains: \["\*"\]\n)',
    lambda m: m.group(1) + m.group(2) + m.group(1) + 'request_headers_to_remove: ["authorization"]\n',
    text,
    flags=re.M,
)
if count != 1:
    sys.exit(f'bench: {src}: expected one `domains: ["*"]` virtual host, found {count}')
text = vhost
lines = text.splitlines(keepends=True)

start = next(
    (i for i, line in enumerate(lines) if line.strip() == "- name: envoy.filters.http.wasm"),
    None,
)
if start is None:
    sys.exit(f"bench: {src}: no `- name: envoy.filters.http.wasm` line")
indent = len(lines[start]) - len(lines[start].lstrip())
end = start + 1
while end < len(lines):
    line = lines[end]
    stripped = line.lstrip()
    if stripped and not stripped.startswith("#") and len(line) - len(stripped) <= indent:
        break
    end += 1
if end >= len(lines) or "envoy.filters.http.router" not in lines[end]:
    sys.exit(f"bench: {src}: the wasm filter is not followed by the router filter")

CEILING = """\
- name: envoy.filters.http.wasm
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      name: meshgate_ceiling
      root_id: meshgate_ceiling
      failure_policy: FAIL_CLOSED
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        value: "{}"
      vm_config:
        vm_id: meshgate_ceiling
        runtime: envoy.wasm.runtime.v8
        code: { local: { filename: dist/meshgate-ceiling.wasm } }
"""
filters = {
    "none": [],
    "ceiling": [" " * indent + l + "\n" for l in CEILING.splitlines()],
    "meshgate": lines[start:end],
}
for name, (listen, admin) in ports.items():
    body = "".join(lines[:start] + filters[name] + lines[end:])
    body = substitute(body, "10000", listen, 1)
    body = substitute(body, "9901", admin, 1)
    header = (
        f"# GENERATED by scripts/bench.sh from {src} (scenario `{name}`): do not edit.\n"
        f"# listener 127.0.0.1:{listen}, admin 127.0.0.1:{admin}, issuer 127.0.0.1:{issuer}, "
        f"tool stubs 127.0.0.1:{upstream}\n"
    )
    with open(f"{out_dir}/{name}.yaml", "w", encoding="utf-8") as out:
        out.write(header + body)
PY

for scenario in "${SCENARIOS[@]}"; do
  if ! "$ENVOY" --mode validate -c "$BENCH_DIR/$scenario.yaml" --disable-hot-restart -l error \
    >"$BENCH_DIR/$scenario.validate.log" 2>&1; then
    tail -n 20 "$BENCH_DIR/$scenario.validate.log" >&2
    die "envoy --mode validate rejected $BENCH_DIR/$scenario.yaml"
  fi
done
say "envoy --mode validate: all three configurations OK"

# --- harness and Envoys ---------------------------------------------------------------------------

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

for scenario in "${SCENARIOS[@]}"; do
  "${PIN_ENVOY[@]}" "$ENVOY" -c "$BENCH_DIR/$scenario.yaml" --concurrency 1 --disable-hot-restart \
    -l info >"$BENCH_DIR/$scenario.envoy.log" 2>&1 &
  ENVOY_PID[$scenario]=$!
done
for scenario in "${SCENARIOS[@]}"; do
  admin="http://127.0.0.1:${ADMIN_PORT[$scenario]}/ready"
  live() { [[ "$(curl -fsS --max-time 1 "$admin" 2>/dev/null)" == LIVE* ]]; }
  if ! wait_for 20 "${ENVOY_PID[$scenario]}" live; then
    tail -n 30 "$BENCH_DIR/$scenario.envoy.log" >&2
    die "Envoy for scenario $scenario did not become LIVE (log: $BENCH_DIR/$scenario.envoy.log)"
  fi
done
say "three Envoys LIVE ($PINNING)"

# --- tokens and sanity checks ---------------------------------------------------------------------

mint() { "$MESHGATE" token --keys "$KEYS" "$@"; }
TOKEN="$(mint --sub alice --groups data-eng --email alice@example.com)"
EXPIRED="$(mint --sub alice --groups data-eng --exp-offset -120)"
FORGED="$(mint --sub alice --groups data-eng --unpublished-key)"
FINANCE="$(mint --sub bob --groups finance)"
# Tampered: one character in the middle of the signature changed.
sig="${TOKEN##*.}"
mid=$((${#sig} / 2))
swap=A
[[ "${sig:mid:1}" == A ]] && swap=B
TAMPERED="${TOKEN%.*}.${sig:0:mid}${swap}${sig:mid+1}"

status_of() {
  # status_of SCENARIO TOKEN|"" -> status of GET $REQ_PATH with Host $REQ_HOST
  local auth=()
  [[ -n "$2" ]] && auth=(-H "Authorization: Bearer $2")
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $REQ_HOST" "${auth[@]}" \
    "http://127.0.0.1:${LISTEN_PORT[$1]}$REQ_PATH" || true
}

declare -A SANE=()
declare -A SANITY_JSON=()
for scenario in "${SCENARIOS[@]}"; do
  results=()
  ok=1
  expect() {
    # expect NAME WANT GOT
    results+=("\"$1\": {\"want\": \"$2\", \"got\": \"$3\"}")
    if [[ "$3" == "$2" ]]; then
      echo "  ✓ $scenario: $1 → $3"
    else
      echo "  ✗ $scenario: $1 → $3 (expected $2)"
      ok=0
    fi
  }
  # meshgate answers 401 until its first JWKS fetch (on the first tick): allow 10 s.
  got=""
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    got="$(status_of "$scenario" "$TOKEN")"
    [[ "$got" == 200 ]] && break
    sleep 0.2
  done
  expect valid_token 200 "$got"
  if [[ "$scenario" == meshgate ]]; then
    echoed="$(curl -s --max-time 2 -H "Host: $REQ_HOST" -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:${LISTEN_PORT[$scenario]}$REQ_PATH" || true)"
    if [[ "$echoed" =~ \"x-meshgate-subject\":\ ?\"alice\" ]]; then
      expect upstream_saw_subject 1 1
    else
      expect upstream_saw_subject 1 0
    fi
    expect no_token 401 "$(status_of "$scenario" "")"
    expect expired_token 401 "$(status_of "$scenario" "$EXPIRED")"
    expect forged_token 401 "$(status_of "$scenario" "$FORGED")"
    expect tampered_signature 401 "$(status_of "$scenario" "$TAMPERED")"
    expect wrong_group 403 "$(status_of "$scenario" "$FINANCE")"
  fi
  SANE[$scenario]=$ok
  SANITY_JSON[$scenario]="{$(IFS=,; echo "${results[*]}")}"
done

# --- load -------------------------------------------------------------------------------------------

# CPU time (utime + stime, in clock ticks) a process has used so far.
cpu_ticks() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || {
    echo 0
    return
  }
  stat="${stat##*) }" # fields after the command name; utime and stime are then 12 and 13
  read -r -a fields <<<"$stat"
  echo $((fields[11] + fields[12]))
}
CLK_TCK="$(getconf CLK_TCK)"

run_wrk() {
  # run_wrk SCENARIO DURATION OUTPUT: also appends the Envoy's and the harness's CPU use.
  local envoy_before harness_before start end
  envoy_before="$(cpu_ticks "${ENVOY_PID[$1]}")"
  harness_before="$(cpu_ticks "$harness_pid")"
  start="$(date +%s.%N)"
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$2" --latency \
    -H "Authorization: Bearer $TOKEN" -H "Host: $REQ_HOST" \
    "http://127.0.0.1:${LISTEN_PORT[$1]}$REQ_PATH" >"$3" 2>&1
  end="$(date +%s.%N)"
  {
    echo "bench: wall seconds $start $end"
    echo "bench: envoy cpu ticks $envoy_before $(cpu_ticks "${ENVOY_PID[$1]}") at $CLK_TCK/s"
    echo "bench: harness cpu ticks $harness_before $(cpu_ticks "$harness_pid") at $CLK_TCK/s"
  } >>"$3"
}

loaded=()
for scenario in "${SCENARIOS[@]}"; do
  ((SANE[$scenario])) && loaded+=("$scenario")
done
if ((${#loaded[@]} > 0)); then
  say "warm-up: $WARMUP per scenario"
  for scenario in "${loaded[@]}"; do
    run_wrk "$scenario" "$WARMUP" "$BENCH_DIR/warmup-$scenario.txt"
  done
fi
for ((round = 1; round <= ROUNDS; round++)); do
  # Interleaved, and the starting scenario rotates each round.
  count=${#loaded[@]}
  for ((k = 0; k < count; k++)); do
    scenario="${loaded[$(((k + round - 1) % count))]}"
    say "round $round/$ROUNDS: $scenario (wrk -t1 -c$CONNECTIONS -d$DURATION)"
    run_wrk "$scenario" "$DURATION" "$BENCH_DIR/wrk-$scenario-$round.txt"
  done
done

# --- report ---------------------------------------------------------------------------------------

sanity_args=()
for scenario in "${SCENARIOS[@]}"; do
  sanity_args+=("$scenario" "${SANE[$scenario]}" "${SANITY_JSON[$scenario]}")
done

BENCH_DIR="$BENCH_DIR" ROUNDS="$ROUNDS" DURATION="$DURATION" CONNECTIONS="$CONNECTIONS" \
  ENVOY_VERSION="$ENVOY_VERSION" PINNING="$PINNING" LOADAVG_AT_START="$LOADAVG_AT_START" REQ_HOST="$REQ_HOST" REQ_PATH="$REQ_PATH" \
  python3 - "${sanity_args[@]}" <<'PY'
import datetime
import json
import os
import re
import statistics
import sys

env = os.environ
bench_dir = env["BENCH_DIR"]
rounds = int(env["ROUNDS"])
args = sys.argv[1:]
sanity = {args[i]: (args[i + 1] == "1", json.loads(args[i + 2])) for i in range(0, len(args), 3)}
DESCRIPTIONS = {
    "none": "Envoy router only, no filter (native Envoy)",
    "ceiling": "smallest Rust proxy-wasm filter (dist/meshgate-ceiling.wasm)",
    "meshgate": "meshgate (dist/meshgate.wasm), demo policy, one valid token reused",
}
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def latency_ms(text, pct):
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(match.group(1)) * UNIT_MS[match.group(2)] if match else None


def parse(path):
    text = open(path, encoding="utf-8").read()
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "p50_ms": latency_ms(text, 50),
        "p99_ms": latency_ms(text, 99),
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sock.groups()) if sock else 0,
        "envoy_cpu": cpu_share(text, "envoy"),
        "harness_cpu": cpu_share(text, "harness"),
        "envoy_cpu_us_per_request": cpu_per_request(text, total),
    }


def cpu_seconds(text, who):
    """(CPU seconds the process used, wall seconds) during the wrk run."""
    wall = re.search(r"^bench: wall seconds ([\d.]+) ([\d.]+)$", text, re.M)
    ticks = re.search(rf"^bench: {who} cpu ticks (\d+) (\d+) at (\d+)/s$", text, re.M)
    if not wall or not ticks:
        return None, None
    used = (int(ticks.group(2)) - int(ticks.group(1))) / int(ticks.group(3))
    return used, float(wall.group(2)) - float(wall.group(1))


def cpu_share(text, who):
    """CPU seconds per wall second (1.0 = one core busy)."""
    used, wall = cpu_seconds(text, who)
    return round(used / wall, 2) if used is not None and wall > 0 else None


def cpu_per_request(text, total):
    """Envoy CPU microseconds per completed request: holds whatever limited the rate."""
    used, _ = cpu_seconds(text, "envoy")
    if used is None or not total or not int(total.group(1)):
        return None
    return round(used / int(total.group(1)) * 1e6, 1)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


results = []
for name in ["none", "ceiling", "meshgate"]:
    sane, checks = sanity[name]
    entry = {"scenario": name, "description": DESCRIPTIONS[name], "sanity": checks,
             "sanity_ok": sane, "rounds": []}
    if sane:
        entry["rounds"] = [parse(f"{bench_dir}/wrk-{name}-{r}.txt") for r in range(1, rounds + 1)]
        entry["rps_median"] = median(r["rps"] for r in entry["rounds"])
        entry["p50_ms_median"] = median(r["p50_ms"] for r in entry["rounds"])
        entry["p99_ms_median"] = median(r["p99_ms"] for r in entry["rounds"])
        entry["envoy_cpu_median"] = median(r["envoy_cpu"] for r in entry["rounds"])
        entry["harness_cpu_median"] = median(r["harness_cpu"] for r in entry["rounds"])
        entry["envoy_cpu_us_per_request_median"] = median(
            r["envoy_cpu_us_per_request"] for r in entry["rounds"])
        entry["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in entry["rounds"])
    results.append(entry)

by_name = {e["scenario"]: e for e in results}
for entry in results:
    for base in ["none", "ceiling"]:
        mine, theirs = entry.get("rps_median"), by_name[base].get("rps_median")
        entry[f"ratio_vs_{base}"] = round(mine / theirs, 3) if mine and theirs else None
        mine = entry.get("envoy_cpu_us_per_request_median")
        theirs = by_name[base].get("envoy_cpu_us_per_request_median")
        entry[f"cpu_per_request_ratio_vs_{base}"] = (
            round(mine / theirs, 3) if mine and theirs else None)

cpu_model = next(
    (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
    "unknown",
)
report = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": "./build.sh bench",
    "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model,
                "loadavg_before_run": env["LOADAVG_AT_START"]},
    "envoy_version": env["ENVOY_VERSION"],
    "pinning": env["PINNING"],
    "wasm_bytes": {"dist/meshgate.wasm": os.path.getsize("dist/meshgate.wasm"),
                   "dist/meshgate-ceiling.wasm": os.path.getsize("dist/meshgate-ceiling.wasm")},
    "load": {"tool": "wrk", "threads": 1, "connections": int(env["CONNECTIONS"]),
             "duration": env["DURATION"], "rounds": rounds, "order": "interleaved",
             "request": f"GET {env['REQ_PATH']} Host: {env['REQ_HOST']}",
             "token": "one valid RS256 data-eng token on every request (hot path)",
             "envoy": "--concurrency 1"},
    "scenarios": results,
}
with open(f"{bench_dir}/latest.json", "w", encoding="utf-8") as out:
    json.dump(report, out, indent=2)
    out.write("\n")


def fmt(value, spec, suffix=""):
    return "—" if value is None else f"{value:{spec}}{suffix}"


print()
print(f"Envoy {env['ENVOY_VERSION']}, --concurrency 1; {env['PINNING']}")
print(f"wrk -t1 -c{env['CONNECTIONS']} -d{env['DURATION']}, {rounds} interleaved rounds, medians; "
      f"GET {env['REQ_PATH']} (Host {env['REQ_HOST']}), one valid token reused")
print()
header = (f"{'scenario':<10} {'req/s':>10} {'p50':>9} {'p99':>9} {'vs none':>8} {'vs ceiling':>11}"
          f" {'envoy CPU':>10} {'CPU/req':>9}")
print(header)
print("-" * len(header))
for e in results:
    if not e["sanity_ok"]:
        print(f"{e['scenario']:<10} {'skipped: sanity check failed':>50}")
        continue
    print(f"{e['scenario']:<10} {fmt(e['rps_median'], ',.0f'):>10} "
          f"{fmt(e['p50_ms_median'], '.3f', 'ms'):>9} {fmt(e['p99_ms_median'], '.3f', 'ms'):>9} "
          f"{fmt(e['ratio_vs_none'], '.2f', '×'):>8} {fmt(e['ratio_vs_ceiling'], '.2f', '×'):>11}"
          f" {fmt(e['envoy_cpu_median'], '.0%'):>10}"
          f" {fmt(e['envoy_cpu_us_per_request_median'], '.0f', 'µs'):>9}")
print()
print("vs none / vs ceiling: ratio of median req/s.")
print("envoy CPU: the Envoy process's CPU time per wall second of the run (100% = one core);")
print("           below ~95% means something else (wrk, the stub) limited the rate.")
print("CPU/req:   Envoy CPU time per completed request, which holds whatever limited the rate.")
print(f"dist/meshgate.wasm: {report['wasm_bytes']['dist/meshgate.wasm']:,} bytes "
      f"(ceiling: {report['wasm_bytes']['dist/meshgate-ceiling.wasm']:,} bytes)")
stalled = [e["scenario"] for e in results if (e.get("p50_ms_median") or 0) >= 20]
if stalled:
    print(f"WARNING: p50 >= 20 ms for {', '.join(stalled)}: looks like the ~40 ms Nagle/delayed-ACK "
          "stall of large stub answers, not proxy cost")
errors = {e["scenario"]: e["errors"] for e in results if e.get("errors")}
if errors:
    print(f"WARNING: non-2xx responses or socket errors during load: {errors}")
print(f"JSON: {bench_dir}/latest.json")
failed = [e["scenario"] for e in results if not e["sanity_ok"]]
if failed:
    print(f"sanity checks failed for: {', '.join(failed)} (no numbers for them)")
    sys.exit(1)
PY
