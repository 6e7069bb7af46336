#!/usr/bin/env bash
# Installs what the browser build and its tests need, pinned, on a fresh
# Debian machine; does nothing that is already done.
# - Debian: rustc-web, cargo-web, rust-web-src (Rust 1.96 with the standard
#   library's source, built for wasm32 by scripts/build-wasm.sh), lld-14
#   (wasm-ld) and chromium (the headless browser of tests/browser);
# - crates.io: wasm-bindgen-cli, the exact version of the wasm-bindgen crate;
# - npm: playwright-core (tests/browser/package-lock.json), which drives
#   Debian's Chromium (it downloads no browser of its own).
# The embedded relay and the native SDK need none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

packages=()
/usr/bin/rustc --version 2>/dev/null | grep -q "^rustc 1\.9[6-9]" || packages+=(rustc-web cargo-web rust-web-src)
[ -x /usr/bin/wasm-ld-14 ] || packages+=(lld-14)
[ -x /usr/bin/chromium ] || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
    echo "== apt: ${packages[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
# Debian's cargo must not stand in for rustup's anywhere else.
case "$(command -v cargo)" in
    /usr/bin/cargo) echo "cargo on PATH is Debian's; rustup's toolchain must come first" >&2; exit 1 ;;
esac

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    echo "== cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "== npm ci (tests/browser)"
    npm ci --prefix tests/browser --no-audit --no-fund --silent
fi
