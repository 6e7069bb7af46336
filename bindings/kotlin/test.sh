#!/usr/bin/env bash
# Generates the Kotlin bindings, compiles them with the conversation test
# (kotlinc from the npm package `kotlin-compiler`, JNA from Debian's
# `libjna-java`, the machine's JDK), and runs the test against a real
# alcove-server on 127.0.0.1. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
KOTLIN_VERSION=2.4.20
tools="$PWD/target/kotlin-tools"
kc="$tools/node_modules/kotlin-compiler"
if [ ! -x "$kc/bin/kotlinc" ]; then
  npm install --silent --no-audit --no-fund --prefix "$tools" "kotlin-compiler@$KOTLIN_VERSION"
fi
if [ ! -f /usr/share/java/jna.jar ]; then
  apt-get update -qq && apt-get install -y -qq libjna-java > /dev/null
fi
command -v java > /dev/null || { echo "kotlin test: no java (JDK 17) on this machine" >&2; exit 1; }

cargo build --quiet -p alcove-ffi -p alcove-server
out="$PWD/target/kotlin"
rm -rf "$out" && mkdir -p "$out"
target/debug/uniffi-bindgen generate --no-format --library target/debug/libalcove_ffi.so \
  --language kotlin --out-dir "$out/gen" > /dev/null
cp="/usr/share/java/jna.jar:$kc/lib/kotlinx-coroutines-core-jvm.jar"
JAVA_OPTS="-Xmx1g" "$kc/bin/kotlinc" -nowarn "$out/gen/uniffi/alcove_ffi/alcove_ffi.kt" \
  bindings/kotlin/src/ConversationTest.kt -cp "$cp" -d "$out/test.jar"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/alcove-server --listen "127.0.0.1:$port" --data-dir "$work/relay" > "$work/relay.log" 2>&1 &
relay=$!
trap 'kill $relay 2>/dev/null; wait $relay 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
java -Djna.library.path="$PWD/target/debug" -cp "$out/test.jar:$cp:$kc/lib/kotlin-stdlib.jar" \
  ConversationTestKt "http://127.0.0.1:$port" "$work"
