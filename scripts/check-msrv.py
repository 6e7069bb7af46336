#!/usr/bin/env python3
"""Checks that the workspace's declared rust-version is at least what every
resolved dependency declares (cargo metadata), so the MSRV in Cargo.toml is
not a promise the dependency tree breaks. Prints the dependencies that need
the most; exits 1 if any needs more than the workspace declares."""
import json
import subprocess
import sys


def parse(v):
    return tuple(int(x) for x in v.split("."))[:3] + (0,) * (3 - len(v.split(".")))


meta = json.loads(
    subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked",
     "--filter-platform", "x86_64-unknown-linux-gnu"])
)
members = set(meta["workspace_members"])
declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(declared) != 1 or None in declared:
    sys.exit(f"workspace members declare rust-version {sorted(map(str, declared))}; expected one value")
msrv = declared.pop()
needs = sorted(
    ((parse(p["rust_version"]), p["name"], p["version"], p["rust_version"])
     for p in meta["packages"]
     if p["id"] not in members and p.get("rust_version")),
    reverse=True,
)
top = [n for n in needs if n[0] == needs[0][0]] if needs else []
print(f"declared rust-version {msrv}; highest dependency requirement "
      + (", ".join(f"{n[1]} {n[2]} ({n[3]})" for n in top[:5]) if top else "none"))
too_new = [n for n in needs if n[0] > parse(msrv)]
if too_new:
    for n in too_new:
        print(f"  {n[1]} {n[2]} needs Rust {n[3]}")
    sys.exit(f"rust-version {msrv} is below what {len(too_new)} dependencies need")
