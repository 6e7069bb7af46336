#!/usr/bin/env bash
# The whole test suite: the Rust workspace, then the bindings from their own
# languages against the real relay, then the browser build (Node and
# headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser toolchain and Chromium are fetched while the Rust tests run.
mkdir -p target
bash scripts/web-setup.sh > target/web-setup.log 2>&1 &
web_setup=$!
cargo test --workspace
# Before the Kotlin test, which may use apt itself.
if ! wait "$web_setup"; then
    cat target/web-setup.log >&2
    echo "scripts/web-setup.sh failed" >&2
    exit 1
fi
cat target/web-setup.log
bash bindings/python/test.sh
bash bindings/kotlin/test.sh
bash bindings/swift/check.sh
bash scripts/test-web.sh
