#!/usr/bin/env bash
# Fuzzes meshgate-core with cargo-fuzz / libFuzzer (issue 6: bad input never crashes and
# never passes). The targets and their invariants are in fuzz/fuzz_targets/*.rs.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]     default 60
#
# Installs cargo-fuzz if it is missing (from crates.io), builds every target once, then runs
# each one for SECONDS_PER_TARGET. libFuzzer needs nightly-only rustc flags: a rustup
# `nightly` toolchain is used when there is one, otherwise the default (stable) toolchain with
# RUSTC_BOOTSTRAP=1. Prints a table (target, executions, exec/s, crashes) and writes it to
# target/fuzz/latest.json. Exits non-zero if any target crashed (a panic, a failed
# invariant, a timeout or running out of memory), naming the input that did it.
#
# Corpora: libFuzzer reads the committed seeds in fuzz/corpus/<target>/ but writes what it
# finds to target/fuzz/corpus/<target>/ (the first directory it is given), so the work tree
# stays clean and later runs start from everything earlier runs found. Delete that directory
# to start from the seeds only. Crash inputs go to target/fuzz/artifacts/<target>/, full
# libFuzzer output to target/fuzz/logs/<target>.log.
#
# Knobs (environment):
#   MESHGATE_FUZZ_TOOLCHAIN   auto (default), nightly, or stable (stable + RUSTC_BOOTSTRAP=1)
#   MESHGATE_FUZZ_SANITIZER   none (default) or address. meshgate-core forbids unsafe code,
#                             so the default buys ~2x executions; ASan checks dependencies too.
#   MESHGATE_FUZZ_TARGETS     space-separated subset (default: token jwks path config authorize)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "fuzz: $*"; }
die() {
  echo "fuzz: error: $*" >&2
  exit 1
}

SECONDS_PER_TARGET="${1:-60}"
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || die "SECONDS_PER_TARGET must be a positive integer, not '$SECONDS_PER_TARGET'"
read -r -a TARGETS <<<"${MESHGATE_FUZZ_TARGETS:-token jwks path config authorize}"
SANITIZER="${MESHGATE_FUZZ_SANITIZER:-none}"
[[ "$SANITIZER" == none || "$SANITIZER" == address ]] || die "MESHGATE_FUZZ_SANITIZER is none or address"
CARGO_FUZZ_VERSION=0.13.2
OUT=target/fuzz

# Largest input per target: a little over each limit in core, so the limits get tested.
declare -A MAX_LEN=([token]=9000 [jwks]=16384 [path]=9000 [config]=16384 [authorize]=4096)
for t in "${TARGETS[@]}"; do
  [[ -f "fuzz/fuzz_targets/$t.rs" ]] || die "no fuzz target '$t' (fuzz/fuzz_targets/$t.rs)"
done

# --- cargo-fuzz and a toolchain that takes libFuzzer's flags -----------------------------------

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

toolchain="${MESHGATE_FUZZ_TOOLCHAIN:-auto}"
if [[ "$toolchain" == auto ]]; then
  toolchain=stable
  if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    toolchain=nightly
  fi
fi
case "$toolchain" in
  nightly)
    cargo=(cargo +nightly)
    rustc=(rustc +nightly)
    ;;
  # The toolchain the workspace builds with; RUSTC_BOOTSTRAP=1 lets it take -Z flags.
  stable)
    cargo=(env RUSTC_BOOTSTRAP=1 cargo)
    rustc=(rustc)
    ;;
  *) die "MESHGATE_FUZZ_TOOLCHAIN is auto, nightly or stable, not '$toolchain'" ;;
esac
rustc_version="$("${rustc[@]}" --version)"
host="$("${rustc[@]}" -vV | sed -n 's/^host: //p')"
# One target directory per toolchain and sanitizer, so switching doesn't rebuild everything.
target_dir="fuzz/target/$toolchain-$SANITIZER"
bin_dir="$target_dir/$host/release"

say "building ${TARGETS[*]} ($rustc_version, $toolchain toolchain, sanitizer $SANITIZER)"
build_start=$SECONDS
for t in "${TARGETS[@]}"; do
  "${cargo[@]}" fuzz build --fuzz-dir fuzz --sanitizer "$SANITIZER" --target "$host" \
    --target-dir "$target_dir" "$t" || die "building fuzz target '$t' failed"
done
say "built in $((SECONDS - build_start)) s"

# --- run -----------------------------------------------------------------------------------------

# stat NAME LOG: the value of libFuzzer's final `stat::NAME:` line (-print_final_stats=1).
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }
# last_match REGEX LOG: the last match of REGEX in LOG, or nothing.
last_match() { grep -Eo "$1" "$2" | tail -1 || true; }

mkdir -p "$OUT/logs"
failed=()
rows=()
json_targets=()
for t in "${TARGETS[@]}"; do
  scratch="$OUT/corpus/$t"
  artifacts="$OUT/artifacts/$t/"
  log="$OUT/logs/$t.log"
  mkdir -p "$scratch" "$artifacts"
  args=(
    -max_total_time="$SECONDS_PER_TARGET"
    -print_final_stats=1
    -timeout=10
    -rss_limit_mb=2048
    -max_len="${MAX_LEN[$t]:-4096}"
    -artifact_prefix="$artifacts"
  )
  [[ -f "fuzz/dict/$t.dict" ]] && args+=(-dict="fuzz/dict/$t.dict")
  say "running $t for ${SECONDS_PER_TARGET}s"
  status=0
  "$bin_dir/$t" "${args[@]}" "$scratch" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?

  execs="$(stat number_of_executed_units "$log")"
  rate="$(stat average_exec_per_sec "$log")"
  new_units="$(stat new_units_added "$log")"
  rss="$(stat peak_rss_mb "$log")"
  cov="$(last_match '^#[0-9]+.*cov: [0-9]+' "$log" | sed 's/.*cov: //')"
  if [[ -z "$execs" ]]; then # no final stats: take libFuzzer's last progress line
    execs="$(last_match '^#[0-9]+' "$log" | tr -d '#')"
    rate="$(last_match 'exec/s: [0-9]+' "$log" | sed 's/exec\/s: //')"
  fi
  artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
  crashes=0
  result=ok
  if ((status != 0)) || [[ -n "$artifact" ]]; then
    crashes=1
    result=crash
    case "$(basename "${artifact:-x}")" in
      timeout-*) result=timeout ;;
      oom-*) result=oom ;;
      leak-*) result=leak ;;
    esac
    failed+=("$t")
    say "$t: $result (libFuzzer exit $status); log: $log"
    if grep -q "panicked at" "$log"; then
      # The panic location and message (assert_eq! messages take a few lines).
      grep -m1 -A4 "panicked at" "$log" | sed -e '/^stack backtrace:/,$d' -e 's/^/fuzz:   /'
    else
      grep -m1 -E "ERROR: libFuzzer|ALARM|out-of-memory" "$log" | sed 's/^/fuzz:   /' || true
    fi
    if [[ -n "$artifact" && -f "$artifact" ]]; then
      say "  input: $artifact"
      say "  input (base64): $(base64 -w0 "$artifact" | cut -c1-2000)"
      say "  reproduce: $bin_dir/$t $artifact"
    fi
  fi
  rows+=("$(printf '%-10s %12s %9s %7s %8s %9s  %s' "$t" "${execs:-?}" "${rate:-?}" "$crashes" \
    "${cov:-?}" "${new_units:-?}" "$result")")
  json_targets+=("$(printf '{"target":"%s","executions":%s,"exec_per_s":%s,"crashes":%s,"result":"%s","coverage":%s,"new_units":%s,"peak_rss_mb":%s,"artifact":%s,"log":"%s"}' \
    "$t" "${execs:-null}" "${rate:-null}" "$crashes" "$result" "${cov:-null}" "${new_units:-null}" \
    "${rss:-null}" "$([[ -n "$artifact" ]] && printf '"%s"' "$artifact" || echo null)" "$log")")
done

# --- report --------------------------------------------------------------------------------------

echo
printf '%-10s %12s %9s %7s %8s %9s  %s\n' target executions exec/s crashes coverage new-units result
printf '%s\n' "${rows[@]}"

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=false
[[ -n "$(git status --porcelain 2>/dev/null)" ]] && dirty=true
{
  printf '{\n  "date": "%s",\n  "commit": "%s",\n  "dirty": %s,\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$dirty"
  printf '  "toolchain": "%s",\n  "rustc": "%s",\n  "sanitizer": "%s",\n' "$toolchain" "$rustc_version" "$SANITIZER"
  printf '  "seconds_per_target": %s,\n  "targets": [\n' "$SECONDS_PER_TARGET"
  for i in "${!json_targets[@]}"; do
    sep=,
    ((i == ${#json_targets[@]} - 1)) && sep=
    printf '    %s%s\n' "${json_targets[$i]}" "$sep"
  done
  printf '  ]\n}\n'
} >"$OUT/latest.json"
say "wrote $OUT/latest.json"

if ((${#failed[@]} > 0)); then
  die "${failed[*]} crashed; inputs in $OUT/artifacts/, logs in $OUT/logs/"
fi
