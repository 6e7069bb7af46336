#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the committed test
vectors (crates/alcove-protocol/tests/vectors/conversation-v2.json) into
crates/alcove-fuzz/seeds/<target>/. Run by scripts/fuzz.sh."""
import json
import os
import struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
vectors = json.load(open(os.path.join(root, "crates/alcove-protocol/tests/vectors/conversation-v2.json")))
out = os.path.join(root, "crates/alcove-fuzz/seeds")


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


h = bytes.fromhex
for i, m in enumerate(vectors["messages"]):
    write("sealed_envelope", f"envelope-{i}", h(m["envelope"]))
    write("ratchet_message", f"message-{i}", h(m["ratchet_message"]))
    write("content", f"content-{i}", h(m["plaintext"]))
    if m["ratchet_message"].startswith("23"):
        write("pqxdh", f"initial-{i}", h(m["ratchet_message"]))
for who in ("client",):
    write("prekey_bundle", "bundle", h(vectors[who]["bundle"]))
    write("prekey_bundle", "identity", h(vectors[who]["identity"]))
write("invite", "invite", vectors["invite"].encode())
write("invite", "invite-link", ("alcove://invite/" + vectors["invite"]).encode())
write("stored_records", "session", h(vectors["therapist_session_state"]))
# A device record and a key-log entry of the documented layouts.
ident = h(vectors["client"]["identity"])
bundle = h(vectors["client"]["bundle"])
spk = bundle[1 + 128:1 + 128 + 1292]  # a hybrid (PQXDH) signed prekey
write("stored_records", "device", b"\x01" + struct.pack(">q", 1_800_000_000_000) + ident + spk + struct.pack(">QQ", 3, 1))
write("stored_records", "blob", b"\x01\x01" + struct.pack(">QIq", 70_000, 2, 1_800_000_000_000))
write("stored_records", "keylog", b"\x08" + b"\x00" * 7 + b"\x01" + b"\x11" * 32 + struct.pack(">Q", 0) + b"\x22" * 32 + struct.pack(">q", 1) + ident + spk)
# Key-log: sizes and a proof of a few hashes.
write("keylog_proofs", "sizes", struct.pack(">QQQ", 5, 8, 6) + bytes(range(96)))
write("keylog_proofs", "head", struct.pack(">Q", 8) + b"\x33" * 32 + struct.pack(">Q", 1) + b"\x44" * 64)
print("seeds written to", os.path.relpath(out, root))
