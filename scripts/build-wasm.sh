#!/usr/bin/env bash
# Builds the browser package of the SDK (bindings/alcove-wasm) into
# bindings/alcove-wasm/pkg: installs what it needs first, pinned.
#
# rustup's toolchain has no wasm32 standard library and none can be
# fetched here, so the wasm build uses Debian's rustc-web (1.96) and builds
# std from source (rust-web-src), linking with lld-14. It calls
# /usr/bin/cargo explicitly; the workspace's own builds keep rustup's.
#
# First run on a fresh machine: about 3 minutes of apt and cargo install,
# then about 4 minutes of build (2 cores). Later runs rebuild only what
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
OUT=bindings/alcove-wasm/pkg
TARGET_DIR=${ALCOVE_WASM_TARGET_DIR:-target/wasm}

need_apt=()
[ -x /usr/bin/rustc ] && /usr/bin/rustc --version | grep -q "^rustc 1\.9[6-9]" || need_apt+=(rustc-web cargo-web rust-web-src)
[ -x /usr/bin/wasm-ld-14 ] || need_apt+=(lld-14)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]} (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# rustc-web must not stand in for rustup's toolchain anywhere else.
case "$(command -v cargo)" in
    /usr/bin/cargo) echo "cargo on PATH is Debian's; install rustup's toolchain first" >&2; exit 1 ;;
esac

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    echo "== installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

echo "== building alcove-wasm (wasm32-unknown-unknown, std from source)"
(
    cd bindings/alcove-wasm
    RUSTC_BOOTSTRAP=1 \
    RUSTC=/usr/bin/rustc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-14 \
    RUSTFLAGS='--cfg getrandom_backend="wasm_js"' \
    /usr/bin/cargo build --release --locked \
        --target wasm32-unknown-unknown \
        -Zbuild-std=std,panic_abort \
        --target-dir "../../$TARGET_DIR"
)
rm -rf "$OUT"
wasm-bindgen --target web --out-dir "$OUT" \
    "$TARGET_DIR/wasm32-unknown-unknown/release/alcove_wasm.wasm"
# An ES module package, so Node can import what the browser imports.
cat > "$OUT/package.json" <<JSON
{ "name": "alcove-wasm", "version": "0.1.0", "type": "module", "main": "alcove_wasm.js", "types": "alcove_wasm.d.ts" }
JSON
raw=$(stat -c %s "$OUT/alcove_wasm_bg.wasm")
gz=$(gzip -9 -c "$OUT/alcove_wasm_bg.wasm" | wc -c)
echo "== $OUT: alcove_wasm_bg.wasm $raw bytes, $gz gzipped"
