#!/usr/bin/env bash
# The whole test suite: the Rust workspace, then the bindings from their own
# languages against the real relay.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
bash bindings/python/test.sh
bash bindings/kotlin/test.sh
bash bindings/swift/check.sh
