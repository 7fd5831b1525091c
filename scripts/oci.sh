#!/usr/bin/env bash
# Packs the filter as an OCI image layout that Istio can pull (WasmPlugin / TrafficExtension
# `url: oci://...`), without a Docker daemon or a registry:
#
#   dist/oci/oci-layout                 {"imageLayoutVersion": "1.0.0"}
#   dist/oci/index.json                 one image manifest, tagged with the crate version
#   dist/oci/blobs/sha256/<digest>...   manifest, config and layer blobs
#
# usage: scripts/oci.sh [--variant compat|wasm] [--wasm FILE] [--out DIR] [--tag TAG]
#
#   --variant compat  (default) the "compat" Wasm image: ONE layer, a tar+gzip
#                     (application/vnd.oci.image.layer.v1.tar+gzip) holding only `plugin.wasm`
#                     at its root; an ordinary OCI image config (os wasip1, arch wasm); the
#                     manifest annotation module.wasm.image/variant=compat. Every registry
#                     and tool that handles container images handles this one.
#   --variant wasm    the Wasm-artifact ("oci") variant: the manifest config is
#                     runtime-config.json (application/vnd.module.wasm.config.v1+json) and the
#                     layers are that same runtime-config.json plus the raw module
#                     (application/vnd.module.wasm.content.layer.v1+wasm). Istio requires
#                     exactly these TWO layers for this variant (pkg/wasm/imagefetcher.go,
#                     "number of layers must be 2"), so the config is also listed as a layer.
#                     Needs a registry that accepts OCI artifacts with custom media types.
#   --wasm FILE       the module to pack (default dist/meshgate.wasm; build it with ./build.sh)
#   --out DIR         the layout directory (default dist/oci). An existing DIR is replaced,
#                     but only if it is empty or already an OCI layout.
#   --tag TAG         org.opencontainers.image.ref.name in index.json (default: the
#                     workspace version in Cargo.toml). It is not part of the manifest, so
#                     it does not change the manifest digest.
#
# Istio's agent tries compat first, then the Wasm-artifact variant (and Docker-media-type
# images), so either works; see docs/istio.md.
#
# Reproducible: the tar entry has mtime 0, uid/gid 0, no user/group names, mode 0644, ustar
# format; gzip runs with -n (no name, no timestamp); JSON is written with a fixed key order
# and no whitespace. The same wasm (and the same gzip build) gives the same manifest digest.
#
# Printed at the end (stdout):
#   manifest digest: sha256:<hex>   -> WasmPlugin/TrafficExtension `sha256` for `url: oci://...`
#                                      (Istio compares it with the pulled image's MANIFEST digest)
#   wasm sha256: <hex>              -> `sha256` for `url: https://...` or `file://...` (module bytes)
#
# Push with any OCI client that reads an image layout and keeps the manifest bytes, e.g.
#   crane push dist/oci registry.example.com/platform/meshgate:0.1.0
#   oras cp --from-oci-layout dist/oci:0.1.0 registry.example.com/platform/meshgate:0.1.0
#   skopeo copy --preserve-digests oci:dist/oci:0.1.0 docker://registry.example.com/platform/meshgate:0.1.0
# (none of these ships with this repo; they were not run here). crane pushes the one image of
# the layout as a plain manifest, so the tag's digest is the manifest digest printed below.
#
# Tools: bash, GNU tar, gzip, python3 (stdlib only). No network.
set -euo pipefail

die() {
  echo "oci.sh: error: $*" >&2
  exit 1
}
log() { echo "oci.sh: $*" >&2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Paths given on the command line are relative to the caller's directory.
abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "$1" ;;
  esac
}

variant=compat
wasm="$root/dist/meshgate.wasm"
out="$root/dist/oci"
tag=""
while (($# > 0)); do
  case "$1" in
    --variant)
      (($# >= 2)) || die "--variant needs a value (compat or wasm)"
      variant="$2"
      shift 2
      ;;
    --wasm)
      (($# >= 2)) || die "--wasm needs a file"
      wasm="$(abspath "$2")"
      shift 2
      ;;
    --out)
      (($# >= 2)) || die "--out needs a directory"
      out="$(abspath "$2")"
      shift 2
      ;;
    --tag)
      (($# >= 2)) || die "--tag needs a value"
      tag="$2"
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument \`$1\` (see --help)" ;;
  esac
done

case "$variant" in
  compat | wasm) ;;
  *) die "--variant must be compat or wasm, not \`$variant\`" ;;
esac
for tool in tar gzip python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (for --owner/--mtime/--format)"

[[ -f "$wasm" ]] || die "$wasm is missing; build it with ./build.sh"
[[ "$(head -c 4 "$wasm" | od -An -tx1 | tr -d ' \n')" == "0061736d" ]] ||
  die "$wasm is not a WebAssembly module (no \\0asm magic)"

if [[ -z "$tag" ]]; then
  tag="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml")"
  [[ -n "$tag" ]] || die "no version under [workspace.package] in Cargo.toml; pass --tag"
fi
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]] || die "\`$tag\` is not a valid image tag"

# Refuse to delete anything that is not a layout we could have written.
if [[ -e "$out" ]]; then
  [[ -d "$out" ]] || die "$out exists and is not a directory"
  if [[ -n "$(ls -A "$out")" && ! -f "$out/oci-layout" ]]; then
    die "$out is not empty and is not an OCI layout; refusing to replace it"
  fi
fi

# Build next to the destination, then swap it in with a rename.
parent="$(dirname "$out")"
mkdir -p "$parent"
staging="$(mktemp -d "$parent/.oci-staging.XXXXXX")"
work="$(mktemp -d)"
cleanup() { rm -rf "$staging" "$work"; }
trap cleanup EXIT

if [[ "$variant" == compat ]]; then
  # The single layer: plugin.wasm at the root of a tar+gzip, with nothing host-specific in
  # the tar header.
  mkdir "$work/rootfs"
  cp "$wasm" "$work/rootfs/plugin.wasm"
  tar --create --file "$work/layer.tar" --directory "$work/rootfs" \
    --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 \
    plugin.wasm
  gzip -n -9 -c "$work/layer.tar" >"$work/layer.tar.gz"
fi

# Blobs, config, manifest, index: written by python3 so digests and JSON are exact.
summary="$(
  python3 - "$variant" "$wasm" "$work" "$staging" "$tag" <<'PY'
import hashlib
import json
import os
import sys

variant, wasm_path, work, layout, tag = sys.argv[1:6]
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)


def dump(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def put(data, media_type, annotations=None):
    """Stores a blob and returns its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    desc = {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}
    if annotations:
        desc["annotations"] = annotations
    return desc


def exports(module):
    """Export names of a Wasm module (to record the proxy-wasm ABI it implements)."""

    def leb(i):
        value = shift = 0
        while True:
            byte = module[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, i

    names, i = [], 8
    while i < len(module):
        section = module[i]
        size, i = leb(i + 1)
        end = i + size
        if section == 7:
            count, j = leb(i)
            for _ in range(count):
                length, j = leb(j)
                names.append(module[j : j + length].decode("utf-8", "replace"))
                j += length + 1  # name, then the export kind byte
                _, j = leb(j)  # the index
        i = end
    return names


with open(wasm_path, "rb") as f:
    module = f.read()
wasm_sha = hashlib.sha256(module).hexdigest()

if variant == "compat":
    with open(os.path.join(work, "layer.tar"), "rb") as f:
        diff_id = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(work, "layer.tar.gz"), "rb") as f:
        layer = put(f.read(), "application/vnd.oci.image.layer.v1.tar+gzip")
    # GOOS/GOARCH names for WebAssembly outside a browser; no creation time, no history.
    image_config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config = put(dump(image_config), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
        "annotations": {"module.wasm.image/variant": "compat"},
    }
else:
    abi = sorted(name for name in exports(module) if name.startswith("proxy_abi_version_"))
    runtime_config = {
        "type": "envoy_proxy",
        "abiVersions": abi,
        "config": {"root_ids": ["meshgate"]},
    }
    runtime = dump(runtime_config)
    config_type = "application/vnd.module.wasm.config.v1+json"
    config = put(runtime, config_type)
    config_layer = put(runtime, config_type, {"org.opencontainers.image.title": "runtime-config.json"})
    wasm_layer = put(
        module,
        "application/vnd.module.wasm.content.layer.v1+wasm",
        {"org.opencontainers.image.title": "plugin.wasm"},
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [config_layer, wasm_layer],
    }

manifest_desc = put(
    dump(manifest),
    "application/vnd.oci.image.manifest.v1+json",
    {"org.opencontainers.image.ref.name": tag},
)
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [manifest_desc],
}
with open(os.path.join(layout, "index.json"), "wb") as f:
    f.write(dump(index))
with open(os.path.join(layout, "oci-layout"), "wb") as f:
    f.write(dump({"imageLayoutVersion": "1.0.0"}))

print(manifest_desc["digest"], wasm_sha, manifest_desc["size"])
PY
)"
read -r manifest_digest wasm_sha manifest_size <<<"$summary"

# Swap the new layout in.
if [[ -e "$out" ]]; then
  rm -rf "$out"
fi
mv "$staging" "$out"
chmod 0755 "$out"

display="$out"
[[ "$out" == "$root/"* ]] && display="${out#"$root/"}"
log "wrote $display ($variant variant, tag $tag, manifest $manifest_size bytes)"
echo "variant: $variant"
echo "layout: $display (tag $tag)"
echo "manifest digest: $manifest_digest"
echo "wasm sha256: $wasm_sha"
echo "WasmPlugin sha256 for url: oci://...:$tag  ->  ${manifest_digest#sha256:}"
