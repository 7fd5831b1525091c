#!/usr/bin/env python3
"""The report of scripts/bench.sh: reads what the run left in $BENCH_DIR (plan.json,
startup.tsv, sane.tsv, sanity/*.tsv, runs/*.txt), writes latest.json and latest.md there
and prints the table. Exits 1 when any Envoy failed its sanity check or startup.

latest.json (schema 2): run metadata, one object per Envoy instance (sanity, startup, .wasm
size) and one object per case, i.e. per (scenario, mix, alg, rules, connections), with its
rounds, medians and ratios. A ratio is this case's figure divided by the reference's:
  native   native_cached for hot mixes, native (no cache) for cold ones; same mix, alg,
           rules and connections
  ceiling  the ceiling filter; same mix, alg and connections (it has no rules)
"""

import datetime
import json
import os
import re
import statistics
import subprocess
import sys

env = os.environ
bench_dir = env["BENCH_DIR"]
rounds = int(env["ROUNDS"])
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
# Figures that get ratios, with the direction that is better.
FIGURES = ["rps", "p50_ms", "p99_ms", "envoy_cpu_us_per_request", "envoy_rss_kib",
           "startup_ms", "wasm_bytes"]


def read_tsv(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def latency_ms(text, pct):
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(match.group(1)) * UNIT_MS[match.group(2)] if match else None


def parse_run(path):
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        return None
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    wall = re.search(r"^bench: wall seconds ([\d.]+) ([\d.]+)$", text, re.M)
    ticks = re.search(r"^bench: envoy cpu ticks (\d+) (\d+) at (\d+)/s$", text, re.M)
    rss = re.search(r"^bench: envoy rss kib (\d+)$", text, re.M)
    cache = re.search(r"^bench: cache hits misses (\d+) (\d+) (\d+) (\d+)$", text, re.M)
    requests = int(total.group(1)) if total else None
    run = {
        "rps": float(rps.group(1)) if rps else None,
        "p50_ms": latency_ms(text, 50),
        "p99_ms": latency_ms(text, 99),
        "requests": requests,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sock.groups()) if sock else 0,
        "envoy_cpu_share": None,
        "envoy_cpu_us_per_request": None,
        "envoy_rss_kib": int(rss.group(1)) if rss and int(rss.group(1)) else None,
        "cache_hits": None,
        "cache_misses": None,
    }
    if wall and ticks:
        cpu_s = (int(ticks.group(2)) - int(ticks.group(1))) / int(ticks.group(3))
        wall_s = float(wall.group(2)) - float(wall.group(1))
        run["envoy_cpu_share"] = round(cpu_s / wall_s, 3) if wall_s > 0 else None
        if requests:
            run["envoy_cpu_us_per_request"] = round(cpu_s / requests * 1e6, 1)
    if cache:
        h0, m0, h1, m1 = (int(g) for g in cache.groups())
        run["cache_hits"], run["cache_misses"] = h1 - h0, m1 - m0
    return run


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(mine, theirs):
    return round(mine / theirs, 3) if mine is not None and theirs else None


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


plan = json.load(open(f"{bench_dir}/plan.json", encoding="utf-8"))
startup = {row[0]: (int(row[1]) if row[1] != "-" else None) for row in read_tsv(f"{bench_dir}/startup.tsv")}
sane = {row[0]: row[1] == "1" for row in read_tsv(f"{bench_dir}/sane.tsv")}

instances = []
for inst in plan["instances"]:
    name = inst["name"]
    checks = {row[0]: {"want": row[1], "got": row[2],
                       "seconds": float(row[3]) if len(row) > 3 and row[3] != "-" else None}
              for row in read_tsv(f"{bench_dir}/sanity/{name}.tsv")}
    wasm = inst.get("wasm")
    instances.append({
        "name": name, "scenario": inst["scenario"], "rules": inst["rules"],
        "description": inst["description"], "config": inst["config"],
        "listen": f"127.0.0.1:{inst['listen']}", "admin": f"127.0.0.1:{inst['admin']}",
        "wasm": wasm, "wasm_bytes": os.path.getsize(wasm) if wasm else None,
        "startup_ms": startup.get(name),
        "sanity_ok": sane.get(name, False) and startup.get(name) is not None,
        "sanity": checks,
    })
by_instance = {i["name"]: i for i in instances}

cases = []
for case in plan["cases"]:
    inst = by_instance[case["instance"]]
    entry = dict(case)
    entry["description"] = inst["description"]
    entry["sanity_ok"] = inst["sanity_ok"]
    entry["status"] = "ok" if inst["sanity_ok"] else "failed_sanity"
    entry["startup_ms"] = inst["startup_ms"]
    entry["wasm_bytes"] = inst["wasm_bytes"]
    entry["rounds"] = []
    entry["median"] = None
    if inst["sanity_ok"]:
        runs = [parse_run(f"{bench_dir}/runs/{case['id']}.{r}.txt") for r in range(1, rounds + 1)]
        entry["rounds"] = [dict(round=r, **run) for r, run in enumerate(runs, 1) if run]
        rs = entry["rounds"]
        hits = sum(r["cache_hits"] or 0 for r in rs)
        misses = sum(r["cache_misses"] or 0 for r in rs)
        entry["median"] = {
            "rps": median(r["rps"] for r in rs),
            # (max - min) / median of the rounds' req/s: how much the rounds disagree.
            "rps_spread": (round((max(v) - min(v)) / statistics.median(v), 3)
                           if (v := [r["rps"] for r in rs if r["rps"]]) else None),
            "p50_ms": median(r["p50_ms"] for r in rs),
            "p99_ms": median(r["p99_ms"] for r in rs),
            "envoy_cpu_share": median(r["envoy_cpu_share"] for r in rs),
            "envoy_cpu_us_per_request": median(r["envoy_cpu_us_per_request"] for r in rs),
            # After the case's last round (the process also served the cases before it).
            "envoy_rss_kib": rs[-1]["envoy_rss_kib"] if rs else None,
            "cache_hit_ratio": round(hits / (hits + misses), 3) if hits + misses else None,
        }
        entry["errors"] = sum(r["non_2xx"] + r["socket_errors"] for r in rs)
    cases.append(entry)

by_key = {(c["scenario"], c["mix"], c["alg"], c["rules"], c["connections"]): c for c in cases}


def figure(entry, name):
    if entry is None:
        return None
    if name in ("startup_ms", "wasm_bytes"):
        return entry[name]
    return entry["median"].get(name) if entry.get("median") else None


for c in cases:
    native_scenario = "native_cached" if c["mix"] == "hot" else "native"
    rules = c["rules"] if c["rules"] is not None else 10
    refs = {
        "native": by_key.get((native_scenario, c["mix"], c["alg"], rules, c["connections"])),
        "ceiling": by_key.get(("ceiling", c["mix"], c["alg"], None, c["connections"])),
    }
    c["references"] = {k: (v["id"] if v else None) for k, v in refs.items()}
    for ref_name, ref in refs.items():
        c[f"ratio_vs_{ref_name}"] = {
            f: (ratio(figure(c, f), figure(ref, f)) if c["median"] and ref and ref["median"] else None)
            for f in FIGURES}

cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), "unknown")
commit = git("rev-parse", "--short=12", "HEAD")
dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
report = {
    "schema": 2,
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "run_started_at": env.get("RUN_STARTED"),
    "run_ended_at": env.get("RUN_ENDED"),
    "command": "./build.sh bench",
    "git_commit": f"{commit}{'-dirty' if dirty else ''}" if commit else None,
    "matrix": plan["matrix"],
    "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model,
                "loadavg_before_run": env["LOADAVG_AT_START"],
                "loadavg_after_run": env.get("LOADAVG_AT_END")},
    "envoy_version": env["ENVOY_VERSION"],
    "pinning": env["PINNING"],
    "load": {"tool": "wrk", "threads": 1, "duration": env["DURATION"], "warmup": env["WARMUP"],
             "rounds": rounds, "order": "interleaved, starting case rotates each round",
             "request": (f"{plan['request']['method']} {plan['request']['path']} "
                         f"Host: {plan['request']['host']}, direct_response 200"),
             "mixes": {"hot": "one valid token on every request",
                       "cold": f"{env['COLD_TOKENS']} distinct valid tokens, round robin "
                               "(test-harness/bench/cold.lua)"},
             "envoy": "--concurrency 1 --disable-hot-restart"},
    "instances": instances,
    "cases": cases,
}
with open(f"{bench_dir}/latest.json", "w", encoding="utf-8") as out:
    json.dump(report, out, indent=2)
    out.write("\n")


# --- tables -----------------------------------------------------------------------------------

def num(value, spec):
    return "—" if value is None else f"{value:{spec}}"


def cell(c, name, spec):
    """`value (×native, ×ceiling)`."""
    value = figure(c, name)
    if value is None:
        return "—"
    rn, rc = c["ratio_vs_native"][name], c["ratio_vs_ceiling"][name]
    if rn is None and rc is None:
        return num(value, spec)
    return f"{num(value, spec)} ({num(rn, '.2f')}, {num(rc, '.2f')})"


COLUMNS = [("req/s", "rps", ",.0f"), ("spread", "rps_spread", ".0%"), ("p50 ms", "p50_ms", ".2f"), ("p99 ms", "p99_ms", ".2f"),
           ("CPU µs/req", "envoy_cpu_us_per_request", ".0f"), ("RSS MiB", "envoy_rss_mib", ".1f")]


def row(c):
    label = [c["scenario"], c["mix"], c["alg"], "—" if c["rules"] is None else f"{c['rules']:,}",
             str(c["connections"])]
    if not c["sanity_ok"]:
        return label + ["FAILED sanity check: no numbers"] + [""] * (len(COLUMNS) - 1) + [""]
    cells = []
    for _, name, spec in COLUMNS:
        if name == "rps_spread":
            spread = c["median"]["rps_spread"] if c["median"] else None
            cells.append(num(spread, spec))
        elif name == "envoy_rss_mib":
            kib = figure(c, "envoy_rss_kib")
            rn, rc = c["ratio_vs_native"]["envoy_rss_kib"], c["ratio_vs_ceiling"]["envoy_rss_kib"]
            cells.append("—" if kib is None else
                         f"{kib / 1024:.1f}" + ("" if rn is None and rc is None else
                                                f" ({num(rn, '.2f')}, {num(rc, '.2f')})"))
        else:
            cells.append(cell(c, name, spec))
    hit = c["median"]["cache_hit_ratio"] if c["median"] else None
    return label + cells + [num(hit * 100 if hit is not None else None, ".0f")
                            + ("%" if hit is not None else "")]


HEADER = ["scenario", "mix", "alg", "rules", "conn"] + [c[0] for c in COLUMNS] + ["cache hits"]
rows = [row(c) for c in cases]
inst_header = ["instance", "startup ms", ".wasm bytes", "sanity"]
inst_rows = []
for i in instances:
    ref_native = by_instance.get("native_10k" if i["rules"] == 10_000 else "native")
    ref_ceiling = by_instance.get("ceiling")
    startup_cell = num(i["startup_ms"], ",d")
    if i["startup_ms"] is not None:
        rn = ratio(i["startup_ms"], ref_native["startup_ms"]) if ref_native else None
        rc = ratio(i["startup_ms"], ref_ceiling["startup_ms"]) if ref_ceiling else None
        startup_cell += f" ({num(rn, '.2f')}, {num(rc, '.2f')})"
    wasm_cell = num(i["wasm_bytes"], ",d")
    if i["wasm_bytes"] and ref_ceiling:
        wasm_cell += f" (—, {num(ratio(i['wasm_bytes'], ref_ceiling['wasm_bytes']), '.2f')})"
    checks = len(i["sanity"])
    inst_rows.append([i["name"], startup_cell, wasm_cell,
                      f"{checks} checks passed" if i["sanity_ok"] else "FAILED"])


def text_table(header, body):
    widths = [max(len(r[k]) for r in [header] + body) for k in range(len(header))]
    lines = ["  ".join(h.ljust(w) if k < 5 else h.rjust(w) for k, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(v.ljust(w) if k < 5 else v.rjust(w)
                               for k, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def md_table(header, body, left):
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if k < left else "---:" for k in range(len(header))) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


LEGEND = [
    "Each figure is the median over the rounds; in brackets its ratio to native and to the",
    "ceiling from the same run (native = native_cached for hot, native without cache for cold;",
    "same mix, alg, rules, connections). req/s: higher is better; everything else lower.",
    "spread: (max - min) / median of the rounds' req/s.",
    "CPU µs/req: the Envoy process's CPU time (utime+stime) per completed request.",
    "RSS: VmRSS of that Envoy after the case's last round. cache hits: verified-token cache",
    "hits / (hits + misses) during the rounds (meshgate.token_cache.*, jwt_authn jwt_cache_*).",
    "startup: process start until the first 200 for a valid token (ratios to native, ceiling).",
]
load = report["load"]
intro = (f"Envoy {report['envoy_version']}, --concurrency 1; {report['pinning']}. "
         f"wrk -t1 -d{load['duration']} after {load['warmup']} warm-up, {rounds} interleaved "
         f"rounds; {load['request']}. Matrix `{plan['matrix']}`.")
print()
print(intro)
print()
print(text_table(HEADER, rows))
print()
print(text_table(inst_header, inst_rows))
print()
print("\n".join(LEGEND))
with open(f"{bench_dir}/latest.md", "w", encoding="utf-8") as out:
    out.write(intro + "\n\n" + md_table(HEADER, rows, 5) + "\n\n"
              + md_table(inst_header, inst_rows, 1) + "\n")

saturated = [c["id"] for c in cases if c["median"] and (c["median"]["envoy_cpu_share"] or 0) < 0.9]
if saturated:
    print("NOTE: Envoy used less than 90% of a CPU (so the load generator or other processes "
          f"on CPU 0 limited the rate, not Envoy's own work): {', '.join(saturated)}")
slow = [f"{i['name']} {check} {c['seconds']:.1f} s" for i in instances
        for check, c in i["sanity"].items() if (c["seconds"] or 0) > 1]
if slow:
    print(f"NOTE: sanity requests that took over 1 s: {'; '.join(slow)}")
errors = {c["id"]: c["errors"] for c in cases if c.get("errors")}
if errors:
    print(f"WARNING: non-2xx responses or socket errors during load: {errors}")
print(f"JSON: {bench_dir}/latest.json  Markdown: {bench_dir}/latest.md")
failed = [i["name"] for i in instances if not i["sanity_ok"]]
if failed:
    print(f"sanity checks or startup failed for: {', '.join(failed)} (no numbers for them)")
    sys.exit(1)
