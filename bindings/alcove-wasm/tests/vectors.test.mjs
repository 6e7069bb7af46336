// The browser build computes the same bytes as the native build: the
// known-answer conversation of alcove_protocol::vectors (identities, a
// PQXDH bundle, the first message and a reply, both sessions serialised,
// a sealed envelope, an attachment, a group message) against
// crates/alcove-protocol/tests/vectors/platform.json, which the native
// test suite checks.
//
// Run: node --test bindings/alcove-wasm/tests/ (after scripts/build-wasm.sh)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import init, { protocolVectors, benchSameChain, storageKeyFromPassphrase } from "../pkg/alcove_wasm.js";

const here = (path) => new URL(path, import.meta.url);
await init({ module_or_path: readFileSync(here("../pkg/alcove_wasm_bg.wasm")) });
const committed = JSON.parse(readFileSync(here("../../../crates/alcove-protocol/tests/vectors/platform.json"), "utf8"));

test("the wasm build computes the native build's vectors byte for byte", () => {
  const seed = Uint8Array.from(Buffer.from(committed.seed, "hex"));
  const computed = protocolVectors(seed);
  assert.deepEqual(
    computed.map((v) => v.name),
    committed.vectors.map((v) => v.name),
  );
  for (const [i, expected] of committed.vectors.entries()) {
    assert.equal(computed[i].hex, expected.hex, `vector ${expected.name} differs`);
  }
  assert.ok(committed.vectors.length >= 12);
});

test("another seed gives other bytes, and bad input is a clear error", () => {
  const other = protocolVectors(new Uint8Array(32).fill(8));
  const same = protocolVectors(Uint8Array.from(Buffer.from(committed.seed, "hex")));
  for (const [i, v] of other.entries()) {
    assert.notEqual(v.hex, same[i].hex, v.name);
  }
  assert.throws(() => protocolVectors(new Uint8Array(31)), (e) => {
    assert.equal(e.name, "AlcoveError");
    assert.equal(e.code, "invalidInput");
    assert.match(e.message, /32 bytes/);
    return true;
  });
});

test("the same-chain workload runs in wasm", () => {
  const ms = benchSameChain(10, 1024);
  assert.ok(Number.isFinite(ms) && ms >= 0);
});

test("a passphrase gives the native build's storage key", () => {
  // client-lib/src/passphrase.rs: KNOWN_ANSWER (also the reference C
  // implementation's answer).
  const key = storageKeyFromPassphrase("therapy notes", new Uint8Array(16).fill(0x11));
  assert.equal(Buffer.from(key).toString("hex"),
    "4b525f269ba3bd932df762430080add9ec69f30c143afcd1186561b0392ba879");
  assert.throws(() => storageKeyFromPassphrase("therapy notes", new Uint8Array(15)), (e) => {
    assert.equal(e.code, "invalidInput");
    assert.match(e.message, /salt/);
    return true;
  });
});
