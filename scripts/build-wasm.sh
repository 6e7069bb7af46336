#!/usr/bin/env bash
# Builds the browser package of the SDK (bindings/alcove-wasm) into
# bindings/alcove-wasm/pkg: installs what it needs first, pinned.
#
# rustup's toolchain has no wasm32 standard library and none can be
# fetched here, so the wasm build uses Debian's rustc-web (1.96) and builds
# std from source (rust-web-src), linking with lld-14. It calls
# /usr/bin/cargo explicitly; the workspace's own builds keep rustup's.
#
# First run on a fresh machine (2 cores): a few minutes of installs
# (scripts/web-setup.sh: Debian packages, wasm-bindgen-cli) and about two
# minutes of build; later runs rebuild only what changed. See README.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=bindings/alcove-wasm/pkg
TARGET_DIR=${ALCOVE_WASM_TARGET_DIR:-target/wasm}

bash scripts/web-setup.sh

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
