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

# Practice features: a credential, revocation and credential record of the
# documented layouts (signatures zeroed: the signature check is the last
# step, so the decoders run through every field), a content carrying
# office hours, and a transcript file's skeleton.
def field(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b

credential = (b"\x01" + b"\x33" * 32 + b"\x44" * 32 + b"\x55" * 16 + struct.pack(">QQ", 1_790_000_000, 1_821_536_000)
              + field("Dr. Ana Rivera") + field("PSY-20417") + field("Ontario, CA") + b"\x00" * 64)
revocation = b"\x01" + b"\x33" * 32 + b"\x66" * 32 + struct.pack(">Q", 1_800_000_000) + b"\x00" * 64
write("practice", "credential", credential)
write("practice", "revocation", revocation)
write("practice", "record", b"\x66" * 32 + b"\x33" * 32)
write("practice", "record-revoked", b"\x66" * 32 + b"\x33" * 32 + revocation)
write("practice", "slot", b"\x01" + struct.pack(">QQH", 4, 1, 1) + b"\x66" * 32 + b"\x66" * 32 + b"\x33" * 32)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vi(num, n):
    return varint(num << 3) + varint(n)


hours = b"".join(ld(3, vi(1, d) + vi(2, 540) + vi(3, 1020)) for d in range(1, 6))
availability = vi(1, 1_800_000_000_000) + vi(2, 120) + hours + vi(4, 24) + ld(5, b"Call 112.")
write("practice", "availability", ld(1, b"\x07" * 16) + vi(2, 1_795_424_400_000) + ld(22, availability))
write("practice", "transcript", json.dumps({
    "format": "alcove-transcript/1",
    "exporter": {"address": "A" * 43, "identity": "00" * 128, "name": "Dr. Rivera"},
    "peer": {"address": "B" * 43, "identity": "00" * 128, "name": "Sam"},
    "exported_at_ms": 1_800_000_000_000,
    "entries": [{"index": 0, "from": "exporter", "message_id": "07" * 16, "sent_at_ms": 1, "kind": "text",
                 "text": "hello", "title": "", "refers_to": "", "attachments": [], "body": "UgcKBWhlbGxv",
                 "author_signature": None, "hash": "00" * 32}],
    "count": 1, "head": "00" * 32, "signature": "00" * 64}).encode())


# Groups: a group message's shape, and content carrying a sender key and a
# roster (field numbers of proto/alcove/v1/content.proto).
def field(number, payload):
    tag = (number << 3) | 2
    out = bytearray()
    while tag >= 0x80:
        out.append((tag & 0x7F) | 0x80)
        tag >>= 7
    out.append(tag)
    n = len(payload)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


write("groups", "group-message", b"\x24" + bytes(range(16)) + struct.pack(">I", 3) + bytes(24) + bytes(48))
sender_key = field(1, b"\x07" * 32) + b"\x10\x01" + field(3, b"\x01" * 16) + b"\x20\x00" + field(5, b"\x02" * 32)
write("groups", "content-sender-key", field(1, b"\x03" * 16) + field(26, sender_key))
roster = field(1, b"\x07" * 32) + field(2, b"\x05" * 16) + b"\x18\x02" + field(4, b"Group") + field(5, b"\x09" * 32) + field(6, field(1, ident) + field(2, b"Sam")) + field(7, b"\x09" * 32)
update = field(1, roster) + field(2, b"\x00" * 64)
write("groups", "update", update)
write("groups", "content-update", field(1, b"\x03" * 16) + field(25, update))
