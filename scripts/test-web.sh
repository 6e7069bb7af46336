#!/usr/bin/env bash
# The browser side of the test suite: builds the wasm package, checks it
# against the native build's vectors in Node, then runs the web example in
# headless Chromium against the real relay (and the native CLI).
# Installs what it needs first (scripts/web-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
cargo build --quiet -p alcove-server -p alcove-cli --bin alcove-server --bin alcove
echo "== Node: the wasm package against the native vectors"
node --test bindings/alcove-wasm/tests/
echo "== Chromium: the web example (screenshots in target/browser-screenshots)"
node --test tests/browser/
