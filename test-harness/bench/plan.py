#!/usr/bin/env python3
"""The benchmark plan of scripts/bench.sh: which Envoys run, with which configuration, and
which load cases each one gets.

    python3 test-harness/bench/plan.py DEMO_YAML OUT_DIR ISSUER_PORT UPSTREAM_PORT

Environment: MESHGATE_BENCH_MATRIX (quick|full), MESHGATE_BENCH_SCENARIOS (optional list of
scenarios to keep, space or comma separated).

Writes to OUT_DIR:
  <instance>.json   an Envoy bootstrap per instance (JSON, which Envoy reads like YAML)
  plan.json         instances and cases, for report.py
  instances.tsv     instance, scenario, rules, listen port, admin port, base id, config, kind
  cases.tsv         case id, instance, scenario, mix, alg, rules, connections

The meshgate policy is the one in envoy/meshgate-demo.yaml (its `configuration.value`
block), so the bench measures the demo's rules. The native scenarios translate that same
policy into `jwt_authn` + `rbac` (see `rbac_policy`): same issuer, audience, keys (remote
JWKS from the same mock issuer), groups claim, and the same allow rule decides the
benchmarked request. No PyYAML: the policy block is cut out of the YAML text by indentation.
"""

import json
import os
import re
import sys
import textwrap

SCENARIOS = ["none", "ceiling", "native", "native_cached", "meshgate", "meshgate_nocache"]
# Scenarios whose configuration has rules; only these get a 10,000-rule variant.
RULED = ["native", "native_cached", "meshgate", "meshgate_nocache"]
ALGS = ["RS256", "ES256", "EdDSA"]
MIXES = ["hot", "cold"]
DEMO_RULES = 10
MANY_RULES = 10_000
DESCRIPTIONS = {
    "none": "Envoy router only, no filter",
    "ceiling": "smallest Rust proxy-wasm filter (dist/meshgate-ceiling.wasm): reads one header",
    "native": "Envoy jwt_authn (remote_jwks, no jwt_cache_config) + rbac on payload_in_metadata",
    "native_cached": "as native, with jwt_cache_config {jwt_cache_size: 1024}",
    "meshgate": "dist/meshgate.wasm, demo policy, verified-token cache on (1024, the default)",
    "meshgate_nocache": "as meshgate, with jwt_cache_config {jwt_cache_size: 0}",
}
WASM = {"ceiling": "dist/meshgate-ceiling.wasm", "meshgate": "dist/meshgate.wasm",
        "meshgate_nocache": "dist/meshgate.wasm"}
# The request under load, and the rule of the demo policy that allows it.
REQ_HOST = "airflow.internal"
REQ_PATH = "/api/v1/dags"
DECIDING_RULE = "airflow-read"
# A second route, chosen by this request header, goes to the tool stubs (which echo the
# request) so the sanity check can see what meshgate injected. Every other request gets a
# direct_response from Envoy: no upstream in the measured path.
ECHO_HEADER = "x-bench-echo"
NATIVE_CACHE_SIZE = 1024
LISTEN_BASE, ADMIN_BASE, BASE_ID_BASE, MAX_INSTANCES = 10100, 9910, 100, 20


def fail(message):
    sys.exit(f"bench: plan.py: {message}")


# --- the demo policy --------------------------------------------------------------------------

def demo_policy(yaml_path, issuer_port):
    """The meshgate plugin configuration of the demo, with the issuer moved to ISSUER_PORT."""
    lines = open(yaml_path, encoding="utf-8").read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "value: |"), None)
    if start is None:
        fail(f"{yaml_path}: no `value: |` block (the meshgate configuration)")
    indent = len(lines[start]) - len(lines[start].lstrip())
    block = []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    text = textwrap.dedent("\n".join(block))
    text, count = re.subn(r"127\.0\.0\.1:18080\b", f"127.0.0.1:{issuer_port}", text)
    if count < 2:
        fail(f"{yaml_path}: expected the issuer 127.0.0.1:18080 at least twice, found {count}x")
    try:
        policy = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{yaml_path}: the meshgate configuration is not JSON: {err}")
    # The bench measures the demo issuer's tokens; other providers (the demo's Backstage) have
    # no issuer running here.
    if "demo" not in policy.get("providers", {}):
        fail(f"{yaml_path}: expected a provider named `demo`")
    policy["providers"] = {"demo": policy["providers"]["demo"]}
    # The bench measures tokens and rules, not the catalog: no control plane runs, and RBAC
    # has nothing like an ownership condition, so those rules (not on the benchmarked route)
    # are left out of both sides.
    policy.pop("snapshot", None)
    policy["rules"] = [r for r in policy["rules"] if "owns" not in r.get("when", {})]
    if sum(1 for rule in policy["rules"] if rule.get("id") == DECIDING_RULE) != 1:
        fail(f"{yaml_path}: expected one rule `{DECIDING_RULE}`")
    return policy


def extra_rules(count):
    """Rules that never match the benchmarked request but cost something to rule out: even
    ones share its path on another host, odd ones its host on another path. Placed before the
    demo's rules, so a rule-by-rule evaluator goes through all of them first."""
    rules = []
    for i in range(count):
        rule = {"id": f"extra-{i:05}", "action": "allow", "methods": ["GET"],
                "when": {"groups_any": [f"team-{i:05}"]}}
        if i % 2 == 0:
            rule["hosts"] = [f"tool-{i:05}.bench.internal"]
            rule["paths"] = [REQ_PATH]
        else:
            rule["hosts"] = [REQ_HOST]
            rule["paths"] = [f"/bench/{i:05}/items/{{id}}"]
        rules.append(rule)
    return rules


def meshgate_policy(policy, rules, cache_size):
    policy = json.loads(json.dumps(policy))
    if rules == MANY_RULES:
        policy["rules"] = extra_rules(MANY_RULES) + policy["rules"]
    if cache_size is not None:
        policy["jwt_cache_config"] = {"jwt_cache_size": cache_size}
    return policy


# --- the same policy for jwt_authn + rbac ---------------------------------------------------------

def path_regex(template):
    """A meshgate path template (`{name}` or `*` for one segment, trailing `/**` for any rest)
    as an RE2 regex over the whole path."""
    rest = ""
    if template.endswith("/**"):
        template, rest = template[:-3], "(/.*)?"
    parts = []
    for segment in template.split("/"):
        if segment == "*" or re.fullmatch(r"\{[^/{}]+\}", segment):
            parts.append("[^/]+")
        elif "*" in segment or "{" in segment:
            fail(f"path template `{template}`: only whole-segment wildcards are translated")
        else:
            parts.append(re.escape(segment))
    return "^" + "/".join(parts) + rest + "$"


def is_literal(template):
    return isinstance(template, str) and not re.search(r"[*{]", template)


def path_permission(path):
    if isinstance(path, dict) and "exact" in path:
        matcher = {"exact": path["exact"]}
    elif isinstance(path, dict) and "prefix" in path:
        matcher = {"prefix": path["prefix"]}
    elif is_literal(path):
        matcher = {"exact": path}
    else:
        matcher = {"safe_regex": {"regex": path_regex(path)}}
    return {"url_path": {"path": matcher}}


def route_match(path):
    """A jwt_authn rule match (a RouteMatch) for a meshgate path."""
    if isinstance(path, dict) and "exact" in path:
        return {"path": path["exact"]}
    if isinstance(path, dict) and "prefix" in path:
        return {"prefix": path["prefix"]}
    if is_literal(path):
        return {"path": path}
    return {"safe_regex": {"regex": path_regex(path)}}


def host_permission(host):
    if host == "*":
        return {"any": True}
    if host.startswith("*."):
        match = {"suffix": host[1:], "ignore_case": True}
    else:
        match = {"exact": host, "ignore_case": True}
    return {"header": {"name": ":authority", "string_match": match}}


def any_of(items, make):
    made = [make(item) for item in items]
    return made[0] if len(made) == 1 else {"or_rules": {"rules": made}}


def group_principal(group, groups_claim):
    path = [{"key": "jwt_payload"}] + [{"key": part} for part in groups_claim.split(".")]
    return {"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": path,
                         "value": {"list_match": {"one_of": {"string_match": {"exact": group}}}}}}


def rbac_policy(rule, groups_claim):
    """One meshgate rule as an RBAC policy. Only what the demo uses (and the extra rules) is
    translated; anything else stops the plan rather than being silently dropped."""
    unknown = set(rule) - {"id", "action", "public", "hosts", "methods", "paths", "when"}
    if unknown:
        fail(f"rule `{rule.get('id')}`: fields {sorted(unknown)} are not translated to rbac")
    when = rule.get("when", {})
    if set(when) - {"groups_any", "groups_all"}:
        fail(f"rule `{rule['id']}`: only groups_any and groups_all are translated to rbac")
    permission = []
    if rule.get("hosts"):
        permission.append(any_of(rule["hosts"], host_permission))
    if rule.get("methods"):
        permission.append(any_of(rule["methods"], lambda m: {
            "header": {"name": ":method", "string_match": {"exact": m}}}))
    if rule.get("paths"):
        permission.append(any_of(rule["paths"], path_permission))
    principals = []
    if when.get("groups_any"):
        made = [group_principal(g, groups_claim) for g in when["groups_any"]]
        principals.append(made[0] if len(made) == 1 else {"or_ids": {"ids": made}})
    if when.get("groups_all"):
        principals.append({"and_ids": {"ids": [group_principal(g, groups_claim)
                                                for g in when["groups_all"]]}})
    return {
        "permissions": [{"and_rules": {"rules": permission}} if permission else {"any": True}],
        "principals": [{"and_ids": {"ids": principals}} if principals else {"any": True}],
    }


def native_filters(policy, rules, cached, issuer_port):
    """jwt_authn then rbac (a DENY filter for the deny rules, an ALLOW filter for the rest)."""
    (name, provider), = policy["providers"].items()
    remote = provider["remote_jwks"]
    jwt_provider = {
        "issuer": provider["issuer"],
        "audiences": provider.get("audiences", []),
        "remote_jwks": {
            "http_uri": {"uri": remote["uri"], "cluster": remote["cluster"], "timeout": "5s"},
            "cache_duration": f"{remote.get('cache_duration_s', 300)}s",
            # Fetched at startup, and the listener waits for it (as meshgate's first tick).
            "async_fetch": {},
        },
        "forward": False,
        "payload_in_metadata": "jwt_payload",
        "claim_to_headers": provider.get("claim_to_headers", []),
        "clock_skew_seconds": provider.get("clock_skew_s", 60),
        # meshgate requires exp by default; jwt_authn does not.
        "require_expiration": provider.get("require_expiration", True),
    }
    if cached:
        jwt_provider["jwt_cache_config"] = {"jwt_cache_size": NATIVE_CACHE_SIZE}
    all_rules = meshgate_policy(policy, rules, None)["rules"]
    # Public rules need no token; every other path needs a valid one.
    requirements = [{"match": route_match(path)}
                    for rule in all_rules if rule.get("public") for path in rule.get("paths", [])]
    requirements.append({"match": {"prefix": "/"}, "requires": {"provider_name": name}})
    groups_claim = provider.get("groups_claim", "groups")
    # RBAC keeps policies in a map sorted by name: `extra-*` come before `rule-*`, so the
    # extra rules are evaluated first, as in meshgate.
    deny = {f"rule-{r['id']}": rbac_policy(r, groups_claim)
            for r in all_rules if r["action"] == "deny"}
    allow = {(r["id"] if r["id"].startswith("extra-") else f"rule-{r['id']}"):
             rbac_policy(r, groups_claim) for r in all_rules if r["action"] == "allow"}
    filters = [{"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {name: jwt_provider},
        "rules": requirements,
    }}]
    for action, policies in (("DENY", deny), ("ALLOW", allow)):
        if policies:
            filters.append({"name": "envoy.filters.http.rbac", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": action, "policies": policies},
            }})
    return filters


# --- Envoy bootstraps -------------------------------------------------------------------------

def wasm_filter(name, filename, configuration):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": name, "root_id": name,
            "failure_policy": "FAIL_CLOSED",
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": configuration},
            "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": filename}}},
        },
    }}


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def bootstrap(http_filters, listen, admin, issuer_port, upstream_port, jwks_cluster):
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "edge",
        "normalize_path": True,
        "merge_slashes": True,
        "route_config": {"name": "bench", "virtual_hosts": [{
            "name": "bench",
            "domains": ["*"],
            # The tool stub echoes request headers, and its answers above ~1 KB stall ~40 ms
            # behind Envoy (Nagle/delayed ACK): never forward the token to it.
            "request_headers_to_remove": ["authorization"],
            "routes": [
                {"match": {"prefix": "/", "headers": [
                    {"name": ECHO_HEADER, "present_match": True}]},
                 "route": {"cluster": "tools"}},
                {"match": {"prefix": "/"},
                 "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}},
            ],
        }]},
        "http_filters": http_filters + [router],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "edge",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm}]}],
            }],
            "clusters": [cluster("tools", upstream_port), cluster(jwks_cluster, issuer_port)],
        },
    }


# --- the matrix -------------------------------------------------------------------------------

def matrix(kind):
    """(scenario, mix, alg, rules, connections); rules is None for scenarios without rules."""
    def rules_of(scenario, rules):
        return rules if scenario in RULED else None

    cases = []
    if kind == "quick":
        for mix in MIXES:
            cases += [(s, mix, "RS256", rules_of(s, DEMO_RULES), 16) for s in SCENARIOS]
        for alg in ["ES256", "EdDSA"]:
            cases += [(s, "cold", alg, rules_of(s, DEMO_RULES), 16)
                      for s in ["ceiling", "native", "meshgate"]]
        cases += [("native_cached", "hot", "RS256", MANY_RULES, 16),
                  ("meshgate", "hot", "RS256", MANY_RULES, 16),
                  ("native", "cold", "RS256", MANY_RULES, 16),
                  ("meshgate", "cold", "RS256", MANY_RULES, 16)]
    elif kind == "full":
        for connections in [16, 64]:
            for rules in [DEMO_RULES, MANY_RULES]:
                for mix in MIXES:
                    for alg in ALGS:
                        cases += [(s, mix, alg, rules_of(s, rules), connections)
                                  for s in SCENARIOS if rules == DEMO_RULES or s in RULED]
    else:
        fail(f"MESHGATE_BENCH_MATRIX={kind}: expected quick or full")
    return cases


def instance_name(scenario, rules):
    return f"{scenario}_10k" if rules == MANY_RULES else scenario


def case_id(scenario, mix, alg, rules, connections):
    return f"{scenario}.{mix}.{alg}.r{rules if rules is not None else '-'}.c{connections}"


def main():
    yaml_path, out_dir, issuer_port, upstream_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    kind = os.environ.get("MESHGATE_BENCH_MATRIX", "") or "quick"
    keep = set(re.split(r"[\s,]+", os.environ.get("MESHGATE_BENCH_SCENARIOS", "").strip())) - {""}
    if keep - set(SCENARIOS):
        fail(f"MESHGATE_BENCH_SCENARIOS: unknown {sorted(keep - set(SCENARIOS))}; "
             f"expected some of {SCENARIOS}")
    cases = [c for c in matrix(kind) if not keep or c[0] in keep]
    policy = demo_policy(yaml_path, issuer_port)
    jwks_cluster = next(iter(policy["providers"].values()))["remote_jwks"]["cluster"]

    instances = []
    for scenario, _, _, rules, _ in cases:
        name = instance_name(scenario, rules)
        if name not in [i["name"] for i in instances]:
            instances.append({"name": name, "scenario": scenario, "rules": rules})
    if len(instances) > MAX_INSTANCES:
        fail(f"{len(instances)} Envoys planned, only {MAX_INSTANCES} port pairs reserved")
    for index, inst in enumerate(instances):
        scenario, rules = inst["scenario"], inst["rules"]
        inst.update(listen=LISTEN_BASE + index, admin=ADMIN_BASE + index,
                    base_id=BASE_ID_BASE + index, config=f"{out_dir}/{inst['name']}.json",
                    kind="auth" if scenario in RULED else "open",
                    description=DESCRIPTIONS[scenario], wasm=WASM.get(scenario))
        if scenario == "none":
            filters = []
        elif scenario == "ceiling":
            filters = [wasm_filter("meshgate_ceiling", WASM[scenario], "{}")]
        elif scenario.startswith("meshgate"):
            cache = 0 if scenario == "meshgate_nocache" else None
            plugin = meshgate_policy(policy, rules, cache)
            filters = [wasm_filter("meshgate", WASM[scenario], json.dumps(
                plugin, indent=None if rules == MANY_RULES else 1,
                separators=(",", ":") if rules == MANY_RULES else None))]
        else:
            filters = native_filters(policy, rules, scenario == "native_cached", issuer_port)
        config = bootstrap(filters, inst["listen"], inst["admin"], issuer_port, upstream_port,
                           jwks_cluster)
        with open(inst["config"], "w", encoding="utf-8") as out:
            # Compact when large: 10,000 RBAC policies are ~18 MB indented.
            json.dump(config, out, indent=None if rules == MANY_RULES else 1,
                      separators=(",", ":") if rules == MANY_RULES else None)
            out.write("\n")

    plan = {
        "matrix": kind,
        "request": {"method": "GET", "host": REQ_HOST, "path": REQ_PATH,
                    "deciding_rule": DECIDING_RULE, "echo_header": ECHO_HEADER},
        "instances": instances,
        "cases": [{"id": case_id(*c), "instance": instance_name(c[0], c[3]), "scenario": c[0],
                   "mix": c[1], "alg": c[2], "rules": c[3], "connections": c[4]} for c in cases],
    }
    with open(f"{out_dir}/plan.json", "w", encoding="utf-8") as out:
        json.dump(plan, out, indent=2)
        out.write("\n")
    with open(f"{out_dir}/instances.tsv", "w", encoding="utf-8") as out:
        for i in instances:
            out.write("\t".join(str(v) for v in [
                i["name"], i["scenario"], i["rules"] or "-", i["listen"], i["admin"],
                i["base_id"], i["config"], i["kind"]]) + "\n")
    with open(f"{out_dir}/cases.tsv", "w", encoding="utf-8") as out:
        for c in plan["cases"]:
            out.write("\t".join(str(v) for v in [
                c["id"], c["instance"], c["scenario"], c["mix"], c["alg"], c["rules"] or "-",
                c["connections"]]) + "\n")


if __name__ == "__main__":
    main()
