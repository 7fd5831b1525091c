#!/usr/bin/env bash
# The npm package @meshgate/policy: meshgate-core's decision engine compiled to
# wasm32-unknown-unknown with wasm-bindgen (crate `js/`), plus a hand-written wrapper and types.
#
#   bash scripts/js.sh build   # dist/npm/ (a Node package; never published)
#   bash scripts/js.sh test    # build, then `node --test js/test/`
#   bash scripts/js.sh clippy  # clippy for wasm32 (native clippy runs in ./build.sh test)
#
# Installs what is missing: the rustup target, and wasm-bindgen-cli of exactly the version
# js/Cargo.toml pins (a few minutes, once). Needs Node >= 18 for the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

started=$SECONDS
say() { echo "js.sh [$((SECONDS - started)) s]: $*" >&2; }
die() { echo "js.sh: $*" >&2; exit 1; }

TARGET=wasm32-unknown-unknown
OUT="$root/dist/npm"

# The CLI must be the exact version of the `wasm-bindgen` crate: the glue it writes is
# specific to it.
wb_version="$(sed -n 's/^wasm-bindgen = "=\([0-9][0-9.]*\)".*/\1/p' js/Cargo.toml)"
[[ -n "$wb_version" ]] || die "js/Cargo.toml does not pin wasm-bindgen to an exact version (\"=x.y.z\")"
# Where the CLI goes when a different wasm-bindgen is already on PATH (left alone).
tools="${CARGO_HOME:-$HOME/.cargo}/meshgate-tools/wasm-bindgen-$wb_version"

ensure_target() {
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    say "adding rust target $TARGET"
    rustup target add "$TARGET" >/dev/null
  fi
}

# Prints the path of a wasm-bindgen of the pinned version, if there is one.
find_wasm_bindgen() {
  local candidate
  for candidate in "$(command -v wasm-bindgen || true)" "$tools/bin/wasm-bindgen"; do
    if [[ -n "$candidate" && -x "$candidate" ]] &&
      [[ "$("$candidate" --version 2>/dev/null)" == "wasm-bindgen $wb_version" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

ensure_wasm_bindgen() {
  if wasm_bindgen="$(find_wasm_bindgen)"; then
    return 0
  fi
  local root_args=()
  if command -v wasm-bindgen >/dev/null 2>&1; then
    root_args=(--root "$tools")
    say "$(wasm-bindgen --version 2>/dev/null || echo 'another wasm-bindgen') is on PATH; installing $wb_version into $tools"
  fi
  say "installing wasm-bindgen-cli $wb_version (takes a few minutes, once)"
  local t0=$SECONDS
  # --locked builds what upstream tested; a registry mirror may lack one of the locked
  # versions, and then the dependencies are resolved afresh.
  if ! cargo install --quiet wasm-bindgen-cli --version "$wb_version" --locked "${root_args[@]}"; then
    say "--locked install failed; retrying with freshly resolved dependencies"
    cargo install --quiet wasm-bindgen-cli --version "$wb_version" "${root_args[@]}"
  fi
  say "wasm-bindgen-cli installed in $((SECONDS - t0)) s"
  wasm_bindgen="$(find_wasm_bindgen)" || die "wasm-bindgen $wb_version is still not found after installing it"
}

target_dir() {
  cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).target_directory))'
}

crate_version() {
  cargo metadata --format-version 1 --no-deps |
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).packages.find(p => p.name === "meshgate-js").version))'
}

ensure_node() {
  command -v node >/dev/null 2>&1 || die "node not found (Node >= 18 builds the package metadata and runs the tests)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= 18)) || die "Node $(node --version) is too old; need >= 18"
}

# The workspace release profile (LTO, panic = abort, overflow checks) optimized for size:
# a preview is not on any hot path, and a Backstage bundle is smaller for it.
PROFILE_ARGS=(--config 'profile.js.inherits="release"' --config 'profile.js.opt-level="z"' --profile js)

# wasm-bindgen INPUT: the JS glue and the final module, named meshgate_js* whatever INPUT is.
bindgen() {
  local staged="$OUT/wasm/meshgate_js.wasm"
  rm -f "$OUT"/wasm/*
  cp "$1" "$staged"
  "$wasm_bindgen" --target nodejs --out-dir "$OUT/wasm" "$staged"
  rm -f "$staged" "$OUT/wasm/meshgate_js_bg.wasm.d.ts"
}

# True when the generated module instantiates and answers.
loads() {
  node -e 'process.exit(require(process.argv[1]).version() ? 0 : 1)' "$OUT/wasm/meshgate_js.js" 2>/dev/null
}

build() {
  ensure_node
  ensure_target
  ensure_wasm_bindgen
  say "cargo build -p meshgate-js --target $TARGET (release, opt-level z)"
  cargo build --quiet -p meshgate-js --target "$TARGET" "${PROFILE_ARGS[@]}"
  local wasm
  wasm="$(target_dir)/$TARGET/js/meshgate_js.wasm"
  [[ -f "$wasm" ]] || die "cargo did not produce $wasm"

  rm -rf "$OUT"
  mkdir -p "$OUT/wasm"
  # wasm-opt runs before wasm-bindgen: binaryen releases before ~116 (Debian's is 108) rewrite
  # the externref table wasm-bindgen adds, and the module then fails to instantiate. If the
  # optimized module doesn't load anyway, the unoptimized one is used.
  local input="$wasm" optimized
  optimized="$(target_dir)/$TARGET/js/meshgate_js.opt.wasm"
  if [[ "$optimized" -nt "$wasm" ]]; then
    input="$optimized" # optimized on an earlier run, from this very build
  elif command -v wasm-opt >/dev/null 2>&1; then
    say "wasm-opt -Oz"
    if wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
      --enable-mutable-globals --enable-multivalue --enable-reference-types \
      -o "$optimized" "$wasm" 2>/dev/null; then
      input="$optimized"
    else
      say "wasm-opt could not process $wasm; using cargo's output"
    fi
  fi
  # Node is the target the tests run. For a bundler (webpack, Vite; e.g. a Backstage
  # frontend plugin) use `--target bundler`, and `--target web` for plain browser ESM.
  bindgen "$input"
  if ! loads; then
    [[ "$input" != "$wasm" ]] || die "the package built from $wasm does not load in Node"
    say "the wasm-opt output does not load in Node; using cargo's output"
    bindgen "$wasm"
    loads || die "the package built from $wasm does not load in Node"
  fi
  cp js/npm/index.js js/npm/index.d.ts js/npm/README.md "$OUT/"
  MESHGATE_VERSION="$(crate_version)" node -e '
    const fs = require("fs");
    const pkg = JSON.parse(fs.readFileSync("js/npm/package.json", "utf8"));
    pkg.version = process.env.MESHGATE_VERSION;
    fs.writeFileSync(process.argv[1], JSON.stringify(pkg, null, 2) + "\n");
  ' "$OUT/package.json"

  # Every file package.json lists must exist.
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const missing = pkg.files.filter(f => !fs.existsSync(path.join(dir, f)));
    if (missing.length) { console.error("js.sh: missing from dist/npm: " + missing.join(", ")); process.exit(1); }
  ' "$OUT"
  local unpacked packed
  unpacked="$(find "$OUT" -type f -printf '%s\n' | awk '{s += $1} END {print s}')"
  packed="$(tar -czf - -C "$(dirname "$OUT")" "$(basename "$OUT")" | wc -c)"
  say "dist/npm: $((unpacked / 1024)) KiB unpacked, $((packed / 1024)) KiB as .tgz (wasm $(($(stat -c %s "$OUT/wasm/meshgate_js_bg.wasm") / 1024)) KiB)"
}

run_tests() {
  build
  say "node --test js/test/"
  MESHGATE_POLICY_DIR="$OUT" node --test js/test/*.test.mjs
}

# Separate from `test`: it check-builds every dependency for wasm32 once more (minutes when
# cold), to lint the few lines that only exist on that target.
clippy_wasm() {
  ensure_target
  say "cargo clippy -p meshgate-js --target $TARGET"
  # --no-deps: this lints the glue; core is linted by ./build.sh test.
  cargo clippy --quiet --no-deps -p meshgate-js --target "$TARGET" -- -D warnings
}

case "${1:-build}" in
  build) build ;;
  test) run_tests ;;
  clippy) clippy_wasm ;;
  *)
    echo "usage: bash scripts/js.sh [build|test|clippy]" >&2
    exit 2
    ;;
esac
say "done"
