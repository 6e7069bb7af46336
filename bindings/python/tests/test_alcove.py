"""The Python binding against the real relay: every call goes through the
generated bindings into the Rust SDK and over gRPC to alcove-server."""

import asyncio
import subprocess
import threading

import pytest

import alcove
from conftest import binary

T_KEY = bytes([1]) * 32
C_KEY = bytes([2]) * 32


def run(coro):
    return asyncio.run(coro)


async def pair(relay, tmp_path):
    therapist = await alcove.create_profile(str(tmp_path / "t"), T_KEY, relay.url, "Dr. Rivera")
    client = await alcove.create_profile(str(tmp_path / "c"), C_KEY, relay.url, "Sam")
    invite = await therapist.create_invite(3600, 1)
    to_therapist = await client.accept_invite(invite)
    events = await therapist.sync()
    assert isinstance(events[0].kind, alcove.EventKind.INVITE_ACCEPTED)
    assert events[0].kind.display_name == "Sam"
    await therapist.confirm(events[0].event_id)
    to_client = (await therapist.contacts())[0]
    assert to_client.verified and to_therapist.verified
    assert to_client.safety_number == to_therapist.safety_number
    assert len(to_client.safety_number.replace(" ", "")) == 60
    return therapist, client, to_client, to_therapist


def texts(events):
    return [e.kind.body for e in events if isinstance(e.kind, alcove.EventKind.TEXT)]


def test_invite_verification_and_texts_both_ways_while_offline(relay, tmp_path):
    async def main():
        therapist, client, to_client, to_therapist = await pair(relay, tmp_path)
        # The client is offline (not syncing) while the therapist writes.
        for i in range(5):
            await therapist.send_text(to_client.address, f"message {i}")
        got = await client.sync()
        assert texts(got) == [f"message {i}" for i in range(5)]
        assert all(e.contact == to_therapist.address for e in got)
        # And back, while the therapist is offline.
        ids = [await client.send_text(to_therapist.address, f"reply {i}") for i in range(3)]
        back = await therapist.sync()
        assert texts(back) == [f"reply {i}" for i in range(3)]
        assert [e.message_id for e in back] == ids
        for e in back:
            await therapist.confirm(e.event_id)
        assert await therapist.pending_events() == []

    run(main())


def test_homework_with_a_worksheet_and_feedback(relay, tmp_path):
    async def main():
        therapist, client, to_client, to_therapist = await pair(relay, tmp_path)
        sheet = tmp_path / "thought-record.txt"
        sheet.write_text("Situation | Thought | Feeling\n" * 200)
        seen = []

        class Progress(alcove.ProgressListener):
            def on_progress(self, done, total):
                seen.append((done, total))

        pointer = await therapist.upload_file(str(sheet), "text/plain", Progress())
        assert seen and seen[-1][0] == seen[-1][1] == sheet.stat().st_size
        hw = await therapist.assign_homework(
            to_client.address, "Thought record", "One row per evening", "2026-12-01", [pointer]
        )
        got = await client.sync()
        kind = got[0].kind
        assert isinstance(kind, alcove.EventKind.HOMEWORK_ASSIGNMENT)
        assert (kind.title, kind.due_date, got[0].message_id) == ("Thought record", "2026-12-01", hw)
        out = tmp_path / "downloaded.txt"
        await client.download_file(kind.attachments[0], str(out), None)
        assert out.read_text() == sheet.read_text()
        sub = await client.submit_homework(to_therapist.address, hw, "Done, see rows", [])
        got = await therapist.sync()
        assert isinstance(got[0].kind, alcove.EventKind.HOMEWORK_SUBMISSION)
        assert got[0].kind.assignment_id == hw
        await therapist.send_feedback(to_client.address, sub, "Well done")
        got = await client.sync()
        assert isinstance(got[0].kind, alcove.EventKind.FEEDBACK)
        assert (got[0].kind.refers_to, got[0].kind.body) == (sub, "Well done")

    run(main())


def test_a_listener_receives_live_and_can_be_cancelled(relay, tmp_path):
    async def main():
        therapist, client, to_client, _ = await pair(relay, tmp_path)
        received = []
        arrived = threading.Event()

        class Listener(alcove.EventListener):
            def on_event(self, event):
                received.append(event)
                if len(texts(received)) == 3:
                    arrived.set()

            def on_error(self, error):
                received.append(error)

        subscription = await client.subscribe(Listener())
        for i in range(3):
            await therapist.send_text(to_client.address, f"live {i}")
        assert await asyncio.to_thread(arrived.wait, 20), received
        assert texts(received) == ["live 0", "live 1", "live 2"]
        subscription.cancel()
        await therapist.send_text(to_client.address, "after cancel")
        await asyncio.sleep(0.5)
        assert texts(received) == ["live 0", "live 1", "live 2"]
        assert texts(await client.sync()) == ["after cancel"]

    run(main())


def test_a_wrong_storage_key_is_storage_locked(relay, tmp_path):
    async def main():
        await pair(relay, tmp_path)
        with pytest.raises(alcove.AlcoveError.StorageLocked) as e:
            await alcove.open_profile(str(tmp_path / "c"), bytes([9]) * 32)
        assert not e.value.retryable

    run(main())


def test_a_stopped_relay_is_retryable(relay, tmp_path):
    async def main():
        therapist, client, to_client, _ = await pair(relay, tmp_path)
        relay.stop()
        with pytest.raises(alcove.AlcoveError.Offline) as e:
            await therapist.send_text(to_client.address, "while the relay is down")
        assert e.value.retryable
        relay.start()
        # The queued message goes out with the next sync.
        await therapist.sync()
        assert texts(await client.sync()) == ["while the relay is down"]

    run(main())


def test_bad_input_raises_typed_errors_never_crashes(relay, tmp_path):
    async def main():
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await alcove.create_profile(str(tmp_path / "x"), b"short", relay.url, "X")
        with pytest.raises(alcove.AlcoveError.InvalidInput) as e:
            await alcove.create_profile(str(tmp_path / "y"), T_KEY, "notaurl", "Y")
        assert "http://" in e.value.reason
        therapist, _, to_client, _ = await pair(relay, tmp_path)
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await therapist.send_text("not an address", "hi")
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await therapist.send_feedback(to_client.address, "zz", "hi")
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await therapist.upload_file(str(tmp_path / "missing.pdf"), "application/pdf", None)
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await therapist.accept_invite("alcove://invite/garbage")
        therapist.close_profile()
        with pytest.raises(alcove.AlcoveError.Closed):
            await therapist.sync()
        with pytest.raises(alcove.AlcoveError.Closed):
            therapist.address()

    run(main())


def test_a_changed_identity_key_is_flagged_and_sending_held(relay, tmp_path):
    async def main():
        therapist = await alcove.create_profile(str(tmp_path / "t"), T_KEY, relay.url, "T")
        # A peer writes, then comes back with another identity key under the
        # same address (a test helper: the SDK cannot be made to do this).
        # The invite gives the peer the therapist's delivery key.
        invite = await therapist.create_invite(3600, 1)
        peer = subprocess.run(
            [binary("key_change_peer", "ALCOVE_KEY_CHANGE_PEER_BIN"), "--url", relay.url,
             "--invite", invite],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        got = await therapist.sync()
        assert texts(got) == ["old phone", "new phone"]
        contact = await therapist.contact(peer)
        assert contact.key_changed
        with pytest.raises(alcove.AlcoveError.ContactKeyChanged) as e:
            await therapist.send_text(peer, "held")
        assert not e.value.retryable
        await therapist.accept_key_change(peer)
        contact = await therapist.contact(peer)
        assert not contact.key_changed and not contact.verified
        await therapist.send_text(peer, "after re-verification")

    run(main())


def test_a_rotated_delivery_key_cuts_off_old_invites_but_not_contacts(relay, tmp_path):
    async def main():
        therapist, client, to_client, to_therapist = await pair(relay, tmp_path)
        old_invite = await therapist.create_invite(3600, 1)
        await therapist.rotate_delivery_key()
        # Someone holding only the invite from before can no longer write.
        peer = subprocess.run(
            [binary("key_change_peer", "ALCOVE_KEY_CHANGE_PEER_BIN"), "--url", relay.url,
             "--invite", old_invite],
            capture_output=True, text=True,
        )
        assert peer.returncode != 0
        assert "not the recipient's current delivery key" in peer.stderr, peer.stderr
        assert texts(await therapist.sync()) == []
        # The contact gets the new key with its next sync and still writes.
        await client.sync()
        await client.send_text(to_therapist.address, "still here")
        assert texts(await therapist.sync()) == ["still here"]
        # Open to anyone: the old invite's holder gets through.
        await therapist.accept_messages_from_anyone(True)
        subprocess.run(
            [binary("key_change_peer", "ALCOVE_KEY_CHANGE_PEER_BIN"), "--url", relay.url,
             "--invite", old_invite],
            check=True, capture_output=True, text=True,
        )
        assert texts(await therapist.sync()) == ["old phone", "new phone"]

    run(main())


def test_a_clinicians_credential_office_hours_and_transcript(relay, tmp_path):
    """docs/therapy.md from Python: the issuer's tool (the `alcove` command)
    signs a credential, the therapist presents it, the client verifies it;
    outside office hours the notice comes from the device; the transcript
    is JSON."""
    import json

    alcove_cli = binary("alcove", "ALCOVE_CLI_BIN")

    async def main():
        therapist, client, to_client, to_therapist = await pair(relay, tmp_path)
        key_file, cred = tmp_path / "practice.key", tmp_path / "rivera.cred"
        issuer = json.loads(subprocess.run(
            [alcove_cli, "--json", "credential", "issuer-key", "--out", str(key_file)],
            check=True, capture_output=True, text=True).stdout)["issuer"]
        subprocess.run(
            [alcove_cli, "credential", "issue", "--issuer-key", str(key_file),
             "--subject", therapist.address(), "--name", "Dr. Ana Rivera",
             "--licence", "PSY-20417", "--jurisdiction", "Ontario, CA", "--out", str(cred)],
            check=True, capture_output=True)
        await therapist.present_credential(cred.read_bytes())
        await therapist.set_availability(alcove.Availability(
            utc_offset_minutes=0, hours=[], reply_within_hours=24,
            crisis_text="Call 112 in an emergency."))
        assert await client.sync() == []
        practice = alcove.TrustedIssuer(name="Northside Practice", key=bytes.fromhex(issuer))
        v = await client.verify_credential(to_therapist.address, [practice])
        assert v.badge == "licensed, verified by Northside Practice"
        assert v.licence_number == "PSY-20417"
        other = alcove.TrustedIssuer(name="Other", key=bytes(range(32)))
        with pytest.raises(alcove.AlcoveError.CredentialRefused) as e:
            await client.verify_credential(to_therapist.address, [other])
        assert e.value.problem == "untrusted_issuer"

        notice = client.out_of_hours_notice(to_therapist.address)
        assert notice.crisis_text == "Call 112 in an emergency."
        await client.send_text(to_therapist.address, "Are you there?")
        kinds = [e.kind for e in await client.sync()]
        assert any(isinstance(k, alcove.EventKind.OUT_OF_HOURS) for k in kinds), kinds

        await therapist.sync()
        transcript = json.loads(await therapist.export_transcript(to_client.address))
        assert transcript["format"] == "alcove-transcript/1"
        assert [e["text"] for e in transcript["entries"]] == ["Are you there?"]

    run(main())


def test_a_group_across_the_boundary(relay, tmp_path):
    """Group therapy from Python (docs/groups.md): create, group texts,
    homework to the group with submissions to the therapist only, a
    removal; events name their group."""

    async def main():
        therapist = await alcove.create_profile(str(tmp_path / "t"), T_KEY, relay.url, "Dr. Rivera")
        invite = await therapist.create_invite(3600, 2)
        members = []
        for i, name in enumerate(["Alex", "Sam"]):
            m = await alcove.create_profile(str(tmp_path / name), bytes([10 + i]) * 32, relay.url, name)
            await m.accept_invite(invite)
            members.append(m)
        await therapist.sync()
        addresses = [m.address() for m in members]
        group = await therapist.create_group("Couples", addresses)
        assert len(group) == 64
        for m in members:
            got = await m.sync()
            change = [e for e in got if isinstance(e.kind, alcove.EventKind.GROUP_CHANGED)]
            assert change[0].kind.group == group and change[0].kind.epoch == 1
            assert len(change[0].kind.added) == 3
            info = (await m.groups())[0]
            assert (info.id, info.title, info.is_admin) == (group, "Couples", False)
        await therapist.send_group_text(group, "Welcome, both of you.")
        hw = await therapist.assign_group_homework(group, None, "Gratitude list", "Three things", None, [], False)
        for m in members:
            got = await m.sync()
            assert texts(got) == ["Welcome, both of you."]
            assert all(e.group == group for e in got)
        await members[0].submit_group_homework(group, hw, "Sunshine, tea, a walk", [])
        got = await therapist.sync()
        assert isinstance(got[0].kind, alcove.EventKind.HOMEWORK_SUBMISSION) and got[0].group == group
        assert await members[1].sync() == []
        with pytest.raises(alcove.AlcoveError.InvalidInput):
            await members[0].remove_group_members(group, [addresses[1]])
        await therapist.remove_group_members(group, [addresses[1]])
        got = await members[1].sync()
        assert got[0].kind.removed_me
        assert (await members[1].groups())[0].removed

    run(main())
