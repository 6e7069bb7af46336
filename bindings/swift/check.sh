#!/usr/bin/env bash
# The Swift bindings are generated, not compiled here (no Swift compiler on
# this machine). The generated files are committed in bindings/swift/
# generated/; this check regenerates them and fails if they differ, so the
# committed copy always matches the Rust API. `--update` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet -p alcove-ffi
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
target/debug/uniffi-bindgen generate --no-format --library target/debug/libalcove_ffi.so \
  --language swift --out-dir "$fresh" > /dev/null
if [ "${1:-}" = "--update" ]; then
  rm -rf bindings/swift/generated && cp -r "$fresh" bindings/swift/generated
  echo "bindings/swift/generated updated"
  exit 0
fi
if ! diff -r bindings/swift/generated "$fresh"; then
  echo "bindings/swift/generated is stale: run bash bindings/swift/check.sh --update" >&2
  exit 1
fi
echo "swift bindings: generated files match the Rust API ($(ls "$fresh" | tr '\n' ' '))"
