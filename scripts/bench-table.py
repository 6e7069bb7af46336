#!/usr/bin/env python3
"""Turn criterion's estimates for the protocol bench into the table in
docs/benchmarks.md (between the PROTOCOL markers).

Usage: cargo bench -p alcove-protocol --bench protocol && python3 scripts/bench-table.py
"""
import json
import os
import platform
import re
import subprocess
import sys
from datetime import date

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRIT = os.path.join(ROOT, "target", "criterion")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")


def mean_ns(*parts):
    path = os.path.join(CRIT, *parts, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"]


def rate(ns, per_iter=1):
    return per_iter * 1e9 / ns


def fmt(r):
    return f"{r/1000:,.1f}k/s" if r >= 10_000 else f"{r:,.0f}/s"


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


rows = []
verdicts = []


def add(name, ours, peer, floor, target_text, ok):
    vs_peer = f"{ours/peer:.2f}x" if peer else "–"
    vs_floor = f"{ours/floor:.2f}x" if floor else "–"
    rows.append(
        f"| {name} | {fmt(ours)} | {fmt(peer) if peer else '–'} | {fmt(floor) if floor else '–'} "
        f"| {vs_peer} | {vs_floor} | {target_text} | {'met' if ok else 'MISSED'} |"
    )
    verdicts.append(ok)


setup_ours = rate(mean_ns("setup", "alcove_x3dh"))
setup_olm = rate(mean_ns("setup", "olm"))
add("Session setup (X3DH + first message)", setup_ours, setup_olm, None, ">= 0.8x Olm", setup_ours >= 0.8 * setup_olm)
setup_verified = rate(mean_ns("setup", "alcove_x3dh_with_bundle_verification"))
add("Session setup, plus bundle parse + verify", setup_verified, setup_olm, None, "reported", True)
pq = rate(mean_ns("setup", "alcove_pqxdh"))
add("Session setup, PQXDH (X3DH + ML-KEM-768)", pq, setup_olm, None,
    f">= 0.6x X3DH (is {pq/setup_ours:.2f}x)", pq >= 0.6 * setup_ours)
pq_verified = rate(mean_ns("setup", "alcove_pqxdh_with_bundle_verification"))
add("Session setup, PQXDH, plus bundle parse + verify", pq_verified, setup_olm, None,
    f"reported ({pq_verified/setup_verified:.2f}x X3DH)", True)

for size in ["1KiB", "64KiB", "1MiB"]:
    ours = rate(mean_ns("same_chain", "alcove", size))
    olm = rate(mean_ns("same_chain", "olm", size))
    floor = rate(mean_ns("same_chain", "raw_aead", size))
    if size == "1KiB":
        ok = ours >= 2 * olm and ours >= 0.5 * floor
        target = ">= 2x Olm and >= 0.5x AEAD"
    elif size == "64KiB":
        ok = ours >= 1.8 * olm
        target = ">= 1.8x Olm"
    else:
        ok = True
        target = "reported"
    add(f"Same chain, {size} enc+dec", ours, olm, floor, target, ok)

alt_ours = rate(mean_ns("alternating", "alcove_1KiB"), 2)
alt_olm = rate(mean_ns("alternating", "olm_1KiB"), 2)
add("Alternating (DH step per message), 1KiB", alt_ours, alt_olm, None, ">= 1x Olm", alt_ours >= alt_olm)

sealed = rate(mean_ns("sealed_sender", "seal_open_1KiB"))
rows.append(f"| Sealed sender seal+open, 1KiB | {fmt(sealed)} | – | – | – | – | reported | – |")

with open(os.path.join(CRIT, "sizes.json")) as f:
    sizes = json.load(f)
size_rows = [
    "| Bytes | X3DH (before) | PQXDH (now) |",
    "|---|---|---|",
]
for key, label in [
    ("bundle_with_one_time_prekey", "Bundle with a one-time prekey"),
    ("bundle_without", "Bundle without (last resort)"),
    ("initial_prefix", "Initial-message prefix"),
    ("initial_message_5_byte_text", "Initial message, 5-byte text"),
    ("sealed_envelope", "Its sealed envelope (padded as every message is now)"),
]:
    size_rows.append(f"| {label} | {sizes['x3dh'][key]:,} | {sizes['pqxdh'][key]:,} |")

rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
table = "\n".join(
    [
        f"Measured {date.today().isoformat()} at commit `{rev}` on {cpu()} "
        f"({os.cpu_count()} cores), one thread, messages per second (higher is better).",
        "",
        "| Operation | Alcove | Olm (vodozemac 0.9) | Raw ChaCha20-Poly1305 | vs Olm | vs AEAD | Target | |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Sizes (the same run):",
        "",
        *size_rows,
    ]
)

with open(DOC) as f:
    doc = f.read()
new = re.sub(
    r"(<!-- PROTOCOL:BEGIN -->\n).*?(\n<!-- PROTOCOL:END -->)",
    lambda m: m.group(1) + table + m.group(2),
    doc,
    flags=re.S,
)
with open(DOC, "w") as f:
    f.write(new)
print(table)
sys.exit(0 if all(verdicts) else 1)
