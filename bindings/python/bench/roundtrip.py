"""Send + receive round trips per second through the Python binding and
through the Rust SDK, against the same relay, in the same run; writes the
table between the BINDINGS markers in docs/benchmarks.md.

    cargo build --release -p alcove-server -p alcove-bench --bin sdk_roundtrip
    pip install ./bindings/python
    python3 bindings/python/bench/roundtrip.py --count 500 --write docs/benchmarks.md
"""

import argparse
import asyncio
import datetime
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import alcove

ROOT = Path(__file__).resolve().parents[3]


async def python_round_trips(url, work, count):
    a = await alcove.create_profile(str(work / "a"), bytes([1]) * 32, url, "A")
    b = await alcove.create_profile(str(work / "b"), bytes([2]) * 32, url, "B")
    invite = await a.create_invite(600, 1)
    to_a = (await b.accept_invite(invite)).address
    to_b = (await a.sync())[0].contact
    await b.send_text(to_a, "warm-up")
    await a.sync()
    start = time.perf_counter()
    for i in range(count):
        want = f"message {i}"
        await a.send_text(to_b, want)
        while True:
            got = await b.sync()
            if any(isinstance(e.kind, alcove.EventKind.TEXT) and e.kind.body == want for e in got):
                for e in got:
                    await b.confirm(e.event_id)
                break
    return count / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--write")
    args = p.parse_args()
    results = [measure(args.count) for _ in range(args.runs)]
    write_table(args, results)


def measure(count):
    """One run: a fresh relay, the Rust SDK's rate, then the binding's."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        relay = subprocess.Popen(
            [str(ROOT / "target/release/alcove-server"), "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(tmp / "relay"),
             # Every round trip is several calls (send, fetch, ack, prekey
             # count): lift the per-device rate limit, which is not what
             # this measures.
             "--rate-per-sec", "1000000", "--rate-burst", "1000000",
             "--deliveries-per-sec-per-key", "1000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            rust = subprocess.run(
                [str(ROOT / "target/release/sdk_roundtrip"), "--url", url, "--dir", str(tmp / "rust"),
                 "--count", str(count)],
                check=True, capture_output=True, text=True).stdout
            rust_rate = float(rust.split()[1])
            (tmp / "py").mkdir()
            py_rate = asyncio.run(python_round_trips(url, tmp / "py", count))
        finally:
            relay.terminate()
            relay.wait()
    return rust_rate, py_rate


def write_table(args, results):
    overheads = sorted((rust / py - 1) * 100 for rust, py in results)
    # The run with the median overhead is the one shown.
    median = overheads[len(overheads) // 2]
    rust_rate, py_rate = next(r for r in results if (r[0] / r[1] - 1) * 100 == median)
    overhead = median
    verdict = "met" if overhead < 20 else "MISSED"
    table = (
        f"Measured {datetime.date.today()} with `python3 bindings/python/bench/roundtrip.py --count {args.count} "
        f"--runs {args.runs}`, release builds, a fresh relay per run (sled, per-device rate limit lifted), "
        f"{os.cpu_count()} cores shared by relay and clients. The median run is shown; the binding's added time "
        f"over all runs: {', '.join(f'{o:+.1f}%' for o in overheads)}.\n\n"
        "| Path | send + receive round trips/s | time per round trip | |\n|---|---|---|---|\n"
        f"| Rust SDK (`alcove-bench --bin sdk_roundtrip`) | {rust_rate:,.1f} | {1000 / rust_rate:.2f} ms | baseline |\n"
        f"| Python binding (`alcove`, UniFFI) | {py_rate:,.1f} | {1000 / py_rate:.2f} ms | "
        f"{overhead:+.1f}% time; target < +20%: {verdict} |\n"
    )
    print(table)
    if args.write:
        doc = Path(args.write)
        text = doc.read_text()
        block = f"<!-- BINDINGS:BEGIN -->\n{table}<!-- BINDINGS:END -->"
        if "<!-- BINDINGS:BEGIN -->" in text:
            text = re.sub(r"<!-- BINDINGS:BEGIN -->.*?<!-- BINDINGS:END -->", lambda _: block, text, flags=re.S)
        else:
            text += "\n## Bindings\n\nSee `docs/bindings.md`. One therapist/client pair exchanges texts one at a time: the sender sends, the receiver syncs until it has it and confirms it. Same relay, same run.\n\n" + block + "\n"
        doc.write_text(text)


if __name__ == "__main__":
    main()
