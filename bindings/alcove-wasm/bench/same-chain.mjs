// The browser build's ratchet against the native build's, in one run: the
// same workload (alcove_protocol::vectors::same_chain, 1 KiB messages on one
// sending chain, each encrypted and decrypted) in wasm under Node and in a
// native release binary, alternating, five runs each; the medians go into
// docs/benchmarks.md between the WASM markers, with the package's size.
//
//   bash scripts/build-wasm.sh
//   cargo build --release -p alcove-bench --bin same_chain
//   node bindings/alcove-wasm/bench/same-chain.mjs
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import os from "node:os";
import init, { benchSameChain } from "../pkg/alcove_wasm.js";

const here = (p) => new URL(p, import.meta.url);
const wasmBytes = readFileSync(here("../pkg/alcove_wasm_bg.wasm"));
await init({ module_or_path: wasmBytes });
const native = new URL("../../../target/release/same_chain", import.meta.url).pathname;
const MESSAGES = 20000;
const SIZE = 1024;
const RUNS = 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
benchSameChain(1000, SIZE); // warm up the wasm code
const wasmMs = [];
const nativeMs = [];
for (let i = 0; i < RUNS; i++) {
  wasmMs.push(benchSameChain(MESSAGES, SIZE));
  nativeMs.push(JSON.parse(execFileSync(native, [String(MESSAGES), String(SIZE)], { encoding: "utf8" })).ms);
}
const rate = (ms) => (MESSAGES / ms) * 1000;
const wasmRate = rate(median(wasmMs));
const nativeRate = rate(median(nativeMs));
const ratio = wasmRate / nativeRate;
const gz = gzipSync(wasmBytes, { level: 9 }).length;
const fmt = (n) => Math.round(n).toLocaleString("en-US");
const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const date = new Date().toISOString().slice(0, 10);

const table = `Measured ${date} at commit \`${commit}\` on ${cpu} (${os.cpus().length} cores) with \`node bindings/alcove-wasm/bench/same-chain.mjs\` (Node ${process.version}); ${MESSAGES} messages of ${SIZE} bytes per run, medians of ${RUNS} alternating runs.

| | wasm (Node) | native | wasm / native | target | |
|---|---|---|---|---|---|
| Same chain, 1 KiB enc+dec | ${fmt(wasmRate)}/s | ${fmt(nativeRate)}/s | ${ratio.toFixed(2)}x | >= 0.3x | ${ratio >= 0.3 ? "met" : "MISSED"} |

| Package (\`bindings/alcove-wasm/pkg/alcove_wasm_bg.wasm\`) | bytes | target | |
|---|---|---|---|
| raw | ${fmt(wasmBytes.length)} | reported | – |
| gzip -9 | ${fmt(gz)} | <= 1.5 MB | ${gz <= 1.5e6 ? "met" : "MISSED"} |

Runs (ms): wasm ${wasmMs.map((m) => m.toFixed(0)).join(", ")}; native ${nativeMs.map((m) => m.toFixed(0)).join(", ")}.
`;
const doc = new URL("../../../docs/benchmarks.md", import.meta.url);
const text = readFileSync(doc, "utf8");
const block = `<!-- WASM:BEGIN -->\n${table}<!-- WASM:END -->`;
if (!text.includes("<!-- WASM:BEGIN -->")) {
  throw new Error("docs/benchmarks.md has no WASM markers");
}
writeFileSync(doc, text.replace(/<!-- WASM:BEGIN -->[\s\S]*?<!-- WASM:END -->/, block));
console.log(table);
