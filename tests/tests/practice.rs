//! What a practice needs beyond chat, through the real relay: clinician
//! credentials (issued, presented, verified, revoked; each bad credential
//! refused with its own error) and office hours with the out-of-hours
//! notice and auto-reply. Each test once on sled and once on PostgreSQL
//! (skipped without `ALCOVE_TEST_POSTGRES_URL`).

mod common;

use std::time::Duration;

use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::{
    CommitCredentialRequest, GetCredentialProofRequest, GetTreeHeadRequest, RevokeCredentialRequest,
};
use alcove_client::{
    Availability, Body, Client, Credential, CredentialClaims, CredentialProblem, DeviceAddress,
    Error, EventKind, IssuerKey, OfficeHours, Revocation, TrustedIssuer,
};
use alcove_protocol::content::CredentialPresentation;
use common::sdk::{on_clock, texts, url, MovedClock};
use common::{now_secs, Backend, Device, TestRelay};
use tonic::Code;

on_every_backend!(
    credentials_verify_and_each_bad_one_is_refused_with_its_own_error,
    the_relay_refuses_bad_credential_calls_and_changes_nothing,
    out_of_hours_the_notice_shows_on_the_device_and_the_auto_reply_is_a_sealed_message,
    the_relay_deletes_envelopes_past_the_retention_period_and_the_audit_reports_them,
    transcripts_verify_offline_and_every_tampering_is_refused,
    disappearing_messages_are_deleted_on_both_devices_with_their_keys,
);

const HOUR_MS: i64 = 3_600_000;

fn issue(issuer: &IssuerKey, subject: DeviceAddress, valid_secs: u64) -> Credential {
    let now = now_secs();
    Credential::issue(
        &mut rand::rngs::OsRng,
        issuer,
        CredentialClaims {
            subject,
            display_name: "Dr. Ana Rivera".into(),
            licence_number: "PSY-20417".into(),
            jurisdiction: "Ontario, CA".into(),
            issued_at: now - 60,
            expires_at: now + valid_secs,
        },
    )
    .unwrap()
}

fn problem(r: Result<alcove_client::VerifiedCredential, Error>) -> CredentialProblem {
    match r {
        Err(Error::Credential(p)) => p,
        other => panic!("expected a credential problem, got {other:?}"),
    }
}

/// Sends raw bytes as a credential presentation, as a dishonest or broken
/// clinician app could (the SDK's `present_credential` would refuse them).
async fn present_raw(therapist: &Client, to: &DeviceAddress, bytes: Vec<u8>) {
    therapist
        .send(
            to,
            Body::CredentialPresentation(CredentialPresentation { credential: bytes }),
        )
        .await
        .unwrap();
}

async fn credentials_verify_and_each_bad_one_is_refused_with_its_own_error(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let practice = IssuerKey::generate(&mut rand::rngs::OsRng);
    let trusted = [TrustedIssuer {
        name: "Northside Practice".into(),
        key: practice.public().0,
    }];
    // The therapist presents a credential before it has any contact; a
    // client who accepts an invite later gets it all the same. The
    // client's clock can be moved, to see the credential expire.
    let therapist = Client::create(&dir.path().join("t"), &[1; 32], &url(&relay), "T")
        .await
        .unwrap();
    let good = issue(&practice, therapist.address(), 90 * 86_400);
    therapist.present_credential(good.as_bytes()).await.unwrap();
    let clock = MovedClock::default();
    let client = on_clock(&relay, &dir.path().join("c"), 2, "C", &clock).await;
    let invite = therapist
        .create_invite(Duration::from_secs(3600))
        .await
        .unwrap();
    let to_therapist = client.accept_invite(&invite).await.unwrap().address;
    let to_client = client.address();
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::NotPresented
    );
    therapist.sync().await.unwrap();
    let events = client.sync().await.unwrap();
    assert!(
        events.is_empty(),
        "a presentation is not a message: {events:?}"
    );
    let v = client
        .verify_credential(&to_therapist, &trusted)
        .await
        .unwrap();
    assert_eq!(v.badge(), "licensed, verified by Northside Practice");
    assert_eq!(
        (
            v.display_name.as_str(),
            v.licence_number.as_str(),
            v.jurisdiction.as_str()
        ),
        ("Dr. Ana Rivera", "PSY-20417", "Ontario, CA")
    );

    // Untrusted: signed by a key the app does not trust.
    assert!(matches!(
        problem(client.verify_credential(&to_therapist, &[]).await),
        CredentialProblem::UntrustedIssuer { .. }
    ));

    // Forged: the name changed after signing. The therapist's own SDK
    // refuses to present it; sent raw, the client refuses it.
    let mut forged = good.as_bytes().to_vec();
    let at = forged.windows(3).position(|w| w == b"Ana").unwrap();
    forged[at] = b'E';
    assert_eq!(
        problem(
            therapist
                .present_credential(&forged)
                .await
                .map(|_| unreachable!())
        ),
        CredentialProblem::Forged
    );
    present_raw(&therapist, &to_client, forged).await;
    client.sync().await.unwrap();
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::Forged
    );

    // Wrong identity: a genuine credential, for another device.
    let someone_else = issue(&practice, to_client, 90 * 86_400);
    assert_eq!(
        problem(
            therapist
                .present_credential(someone_else.as_bytes())
                .await
                .map(|_| unreachable!())
        ),
        CredentialProblem::WrongIdentity
    );
    present_raw(&therapist, &to_client, someone_else.as_bytes().to_vec()).await;
    client.sync().await.unwrap();
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::WrongIdentity
    );

    // Not committed: genuine and for this therapist, but not the one the
    // therapist committed in the key log.
    let uncommitted = issue(&practice, to_therapist, 90 * 86_400);
    present_raw(&therapist, &to_client, uncommitted.as_bytes().to_vec()).await;
    client.sync().await.unwrap();
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::NotCommitted
    );

    // Expired: a credential valid for an hour, checked two hours later.
    let short = issue(&practice, to_therapist, 3600);
    therapist
        .present_credential(short.as_bytes())
        .await
        .unwrap();
    client.sync().await.unwrap();
    client
        .verify_credential(&to_therapist, &trusted)
        .await
        .unwrap();
    clock.advance(2 * HOUR_MS);
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::Expired {
            expired_at: short.claims().expires_at
        }
    );
    clock.advance(-2 * HOUR_MS);

    // Revoked: the issuer revokes the credential the therapist presents;
    // the client refuses it from its next check, and the relay will not
    // take it again.
    therapist.present_credential(good.as_bytes()).await.unwrap();
    client.sync().await.unwrap();
    client
        .verify_credential(&to_therapist, &trusted)
        .await
        .unwrap();
    let revoked_at = now_secs();
    let revocation = Revocation::sign(&practice, &good, revoked_at).unwrap();
    alcove_client::revoke_credential(&url(&relay), &to_therapist, &revocation)
        .await
        .unwrap();
    // Revoking again changes nothing.
    alcove_client::revoke_credential(&url(&relay), &to_therapist, &revocation)
        .await
        .unwrap();
    assert_eq!(
        problem(client.verify_credential(&to_therapist, &trusted).await),
        CredentialProblem::Revoked { revoked_at }
    );
    assert!(matches!(
        therapist.present_credential(good.as_bytes()).await,
        Err(Error::NotAuthorized(m)) if m.contains("revoked")
    ));

    // A new credential from the issuer: sent to the existing contact at
    // once, and verified.
    let renewed = issue(&practice, to_therapist, 365 * 86_400);
    therapist
        .present_credential(renewed.as_bytes())
        .await
        .unwrap();
    client.sync().await.unwrap();
    let v = client
        .verify_credential(&to_therapist, &trusted)
        .await
        .unwrap();
    assert_eq!(v.expires_at, renewed.claims().expires_at);
    let _ = to_client;
}

async fn the_relay_refuses_bad_credential_calls_and_changes_nothing(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let device = Device::registered(&relay, 0).await;
    let other = Device::registered(&relay, 0).await;
    let me = device.identity.public().address();
    let mut keys = KeysClient::new(relay.channel().await);
    let mut log = KeyLogClient::new(relay.channel().await);
    let size = |log: &mut KeyLogClient<_>| {
        let mut log = log.clone();
        async move {
            log.get_tree_head(GetTreeHeadRequest { known_tree_size: 0 })
                .await
                .unwrap()
                .into_inner()
                .head
                .unwrap()
                .size
        }
    };
    let practice = IssuerKey::generate(&mut rand::rngs::OsRng);
    let credential = issue(&practice, me, 86_400);
    let commit =
        |digest: Vec<u8>, issuer: Vec<u8>| device.req(CommitCredentialRequest { digest, issuer });
    let before = size(&mut log).await;

    // Malformed commits, and one without a token.
    for (req, code) in [
        (
            commit(vec![1; 31], practice.public().0.to_vec()),
            Code::InvalidArgument,
        ),
        (
            commit(credential.digest().to_vec(), vec![2; 33]),
            Code::InvalidArgument,
        ),
        // Not a point on the curve.
        (
            commit(credential.digest().to_vec(), not_a_point()),
            Code::InvalidArgument,
        ),
        // A small-order point (the identity).
        (
            commit(credential.digest().to_vec(), small_order()),
            Code::InvalidArgument,
        ),
        (
            tonic::Request::new(CommitCredentialRequest {
                digest: credential.digest().to_vec(),
                issuer: practice.public().0.to_vec(),
            }),
            Code::Unauthenticated,
        ),
    ] {
        let status = keys.commit_credential(req).await.unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
    }
    // Nothing to revoke yet; no record to read.
    let revocation = Revocation::sign(&practice, &credential, now_secs()).unwrap();
    let revoke = |address: &DeviceAddress, bytes: Vec<u8>| RevokeCredentialRequest {
        address: address.as_bytes().to_vec(),
        revocation: bytes,
    };
    let status = log
        .revoke_credential(revoke(&me, revocation.as_bytes().to_vec()))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    let status = log
        .get_credential_proof(GetCredentialProofRequest {
            address: me.as_bytes().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(size(&mut log).await, before, "refusals logged nothing");

    // A genuine commit: one entry; the same again: none.
    let proof = keys
        .commit_credential(commit(
            credential.digest().to_vec(),
            practice.public().0.to_vec(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((proof.epoch, proof.record.len()), (0, 64));
    keys.commit_credential(commit(
        credential.digest().to_vec(),
        practice.public().0.to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(size(&mut log).await, before + 1);

    // Revocations the relay refuses: forged signature, another issuer,
    // another credential, another device's record.
    let mut forged = revocation.as_bytes().to_vec();
    forged[70] ^= 1;
    let impostor = IssuerKey::generate(&mut rand::rngs::OsRng);
    let by_impostor = issue(&impostor, me, 86_400);
    let impostor_rev = Revocation::sign(&impostor, &by_impostor, now_secs()).unwrap();
    let other_cred = issue(&practice, me, 86_400);
    let other_rev = Revocation::sign(&practice, &other_cred, now_secs()).unwrap();
    let other_address = other.identity.public().address();
    for (req, code) in [
        (revoke(&me, forged), Code::InvalidArgument),
        (revoke(&me, vec![1; 10]), Code::InvalidArgument),
        (
            revoke(&me, impostor_rev.as_bytes().to_vec()),
            Code::FailedPrecondition,
        ),
        (
            revoke(&me, other_rev.as_bytes().to_vec()),
            Code::FailedPrecondition,
        ),
        (
            revoke(&other_address, revocation.as_bytes().to_vec()),
            Code::FailedPrecondition,
        ),
        (
            RevokeCredentialRequest {
                address: vec![1; 31],
                revocation: revocation.as_bytes().to_vec(),
            },
            Code::InvalidArgument,
        ),
    ] {
        let status = log.revoke_credential(req).await.unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
    }
    assert_eq!(size(&mut log).await, before + 1, "refusals logged nothing");
    let current = log
        .get_credential_proof(GetCredentialProofRequest {
            address: me.as_bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((current.epoch, current.record), (0, proof.record));

    // The genuine revocation: logged once, with the record it revokes.
    let revoked = log
        .revoke_credential(revoke(&me, revocation.as_bytes().to_vec()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((revoked.epoch, revoked.record.len()), (1, 201));
    log.revoke_credential(revoke(&me, revocation.as_bytes().to_vec()))
        .await
        .unwrap();
    assert_eq!(size(&mut log).await, before + 2);
    // The revoked credential cannot come back.
    let status = keys
        .commit_credential(commit(
            credential.digest().to_vec(),
            practice.public().0.to_vec(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert_eq!(size(&mut log).await, before + 2);
}

fn not_a_point() -> Vec<u8> {
    (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .unwrap()
        .to_vec()
}

fn small_order() -> Vec<u8> {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    identity.to_vec()
}

/// The UTC offset (minutes, -720..=840) at which real now is 12:00 local.
fn offset_for_local_noon() -> i32 {
    let minute_of_day = ((now_secs() / 60) % 1440) as i32;
    let offset = 720 - minute_of_day;
    if offset < -720 {
        offset + 1440
    } else {
        offset
    }
}

async fn out_of_hours_the_notice_shows_on_the_device_and_the_auto_reply_is_a_sealed_message(
    backend: Backend,
) {
    let mut relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let t_clock = MovedClock::default();
    let c_clock = MovedClock::default();
    let therapist = on_clock(&relay, &dir.path().join("t"), 1, "Therapist", &t_clock).await;
    let client = on_clock(&relay, &dir.path().join("c"), 2, "Client", &c_clock).await;
    // Office hours 09:00-17:00 every day, in a time zone where it is noon
    // now; checked again eight hours later (20:00 local).
    let crisis = "If you are in danger, call 112 or go to the nearest emergency department.";
    therapist
        .set_availability(Availability {
            updated_at_ms: 0,
            utc_offset_minutes: offset_for_local_noon(),
            hours: (1..=7)
                .map(|weekday| OfficeHours {
                    weekday,
                    start_minute: 9 * 60,
                    end_minute: 17 * 60,
                })
                .collect(),
            reply_within_hours: 24,
            crisis_text: crisis.into(),
        })
        .await
        .unwrap();
    therapist
        .set_auto_reply(Some(
            "I am out of the office and will reply during office hours.",
        ))
        .await
        .unwrap();
    let invite = therapist
        .create_invite(Duration::from_secs(3600))
        .await
        .unwrap();
    let to_therapist = client.accept_invite(&invite).await.unwrap().address;
    therapist.sync().await.unwrap();
    assert!(client.sync().await.unwrap().is_empty());
    assert!(client
        .contact_availability(&to_therapist)
        .unwrap()
        .is_some());

    // Within hours: no notice, no auto-reply.
    assert_eq!(client.out_of_hours_notice(&to_therapist).unwrap(), None);
    client
        .send_text(&to_therapist, "See you Tuesday.")
        .await
        .unwrap();
    assert!(client.sync().await.unwrap().is_empty());
    let got = therapist.sync().await.unwrap();
    assert_eq!(texts(&got), vec!["See you Tuesday."]);
    assert!(
        client.sync().await.unwrap().is_empty(),
        "no auto-reply in hours"
    );

    // 20:00 local for both. The relay is down: the notice still comes at
    // once, from the device alone.
    t_clock.advance(8 * HOUR_MS);
    c_clock.advance(8 * HOUR_MS);
    relay.config.listen = relay.addr();
    relay.stop().await;
    let notice = client
        .out_of_hours_notice(&to_therapist)
        .unwrap()
        .expect("outside office hours");
    assert_eq!(notice.crisis_text, crisis);
    assert_eq!(notice.reply_within_hours, 24);
    let opens = notice.next_opening_ms.unwrap();
    let now = c_clock_now(&c_clock);
    assert!(
        opens > now + 12 * HOUR_MS && opens <= now + 13 * HOUR_MS + 60_000,
        "hours open again at 09:00 local, 13 hours on: {}",
        opens - now
    );
    assert!(matches!(
        client
            .send_text(&to_therapist, "I had a hard evening.")
            .await,
        Err(Error::Offline(_))
    ));
    let pending = client.pending_events().await.unwrap();
    let shown: Vec<_> = pending
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::OutOfHours(n) => Some((e.event_id, n.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].1, notice);
    assert!(shown[0].1.to_string().contains(crisis));

    // Relay back; a second message in the same evening: no second notice.
    relay.restart().await;
    for e in client.pending_events().await.unwrap() {
        client.confirm(&e).await.unwrap();
    }
    client
        .send_text(&to_therapist, "Still awake.")
        .await
        .unwrap();
    // The notice given while offline comes with the next sync too (as
    // every notice does); no second one is made.
    let events = client.sync().await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| !matches!(e.kind, EventKind::OutOfHours(_)) || e.event_id == shown[0].0),
        "one notice per closed period: {events:?}"
    );

    // The therapist's device, outside its hours, sends the auto-reply once,
    // as an ordinary sealed message.
    let got = therapist.sync().await.unwrap();
    assert_eq!(texts(&got), vec!["I had a hard evening.", "Still awake."]);
    let replies = client.sync().await.unwrap();
    assert_eq!(
        texts(&replies),
        vec!["I am out of the office and will reply during office hours."]
    );
    client
        .send_text(&to_therapist, "Good night.")
        .await
        .unwrap();
    therapist.sync().await.unwrap();
    assert!(
        texts(&client.sync().await.unwrap()).is_empty(),
        "one auto-reply per evening"
    );
}

fn c_clock_now(clock: &MovedClock) -> i64 {
    alcove_client::Clock::now_ms(clock)
}

/// The store audit with a 30-day retention period: the retention findings.
async fn retention_findings(relay: &TestRelay) -> Vec<String> {
    let report = match &relay.config.store {
        None => alcove_audit::store::audit(relay.dir.path(), &[], Some(30)).unwrap(),
        Some(url) => alcove_audit::postgres::audit(url, &[], Some(30))
            .await
            .unwrap(),
    };
    report
        .findings
        .iter()
        .filter(|f| f.reason.contains("retention"))
        .map(|f| f.reason.clone())
        .collect()
}

async fn the_relay_deletes_envelopes_past_the_retention_period_and_the_audit_reports_them(
    backend: Backend,
) {
    let mut relay = TestRelay::start_on(backend, |c| c.limits.mailbox_retention_days = 30).await;
    let mut recipient = Device::registered(&relay, 0).await;
    let sender = Device::registered(&relay, 0).await;
    let to = recipient.address();
    sender
        .send_envelope(&to, common::id16(1), sender.seal_to(&recipient, b"fresh"))
        .await;
    // An envelope that has waited 31 days, as if the relay had taken it
    // then (written to the stopped relay's store).
    relay.stop().await;
    {
        let store = relay.open_store().await;
        let old = common::now_secs() as i64 * 1000 - 31 * 86_400_000;
        store
            .enqueue(&to, &[2; 16], &sender.seal_to(&recipient, b"old"), old, 100)
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let found = retention_findings(&relay).await;
    assert_eq!(
        found,
        vec!["an envelope waiting longer than the retention period (30 days)".to_string()]
    );
    // The relay's sweep runs at start: the old envelope goes, the fresh
    // one stays.
    relay.restart().await;
    recipient.channel = relay.channel().await;
    recipient.login().await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..100 {
        waiting = recipient
            .mailbox()
            .fetch(recipient.req(alcove_api::v1::FetchRequest {
                after_sequence: 0,
                limit: 10,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .envelopes;
        if waiting.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting.len(), 1, "only the fresh envelope is left");
    relay.stop().await;
    assert!(retention_findings(&relay).await.is_empty());
}

/// A therapist and a client on clocks the test moves, paired through an
/// invite; returns (therapist, client, client's address as the therapist
/// knows it, therapist's address as the client knows it).
async fn pair_on_clocks(
    relay: &TestRelay,
    dir: &std::path::Path,
    t_clock: &MovedClock,
    c_clock: &MovedClock,
) -> (Client, Client, DeviceAddress, DeviceAddress) {
    let therapist = on_clock(relay, &dir.join("t"), 1, "Dr. Rivera", t_clock).await;
    let client = on_clock(relay, &dir.join("c"), 2, "Sam", c_clock).await;
    let invite = therapist
        .create_invite(Duration::from_secs(3600))
        .await
        .unwrap();
    let to_therapist = client.accept_invite(&invite).await.unwrap().address;
    therapist.sync().await.unwrap();
    let to_client = client.address();
    (therapist, client, to_client, to_therapist)
}

fn kinds(events: &[alcove_client::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.body() {
            Some(Body::RecordSigning(r)) => format!("records {}", r.enabled),
            Some(Body::Retention(r)) => format!("disappearing {}", r.seconds),
            Some(Body::Text(t)) => format!("text {}", t.body),
            Some(other) => format!("{other:?}").chars().take(20).collect(),
            None => format!("{:?}", e.kind).chars().take(20).collect(),
        })
        .collect()
}

async fn transcripts_verify_offline_and_every_tampering_is_refused(backend: Backend) {
    use alcove_client::TranscriptError as T;
    use alcove_protocol::transcript::verify;
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = MovedClock::default();
    let (therapist, client, to_client, to_therapist) =
        pair_on_clocks(&relay, dir.path(), &clock, &clock).await;

    // The client turns verifiable records on for what it writes; the
    // therapist is told.
    client
        .set_verifiable_records(&to_therapist, true)
        .await
        .unwrap();
    assert_eq!(
        kinds(&therapist.sync().await.unwrap()),
        vec!["records true"]
    );
    assert_eq!(
        therapist.verifiable_records(&to_client).await.unwrap(),
        (false, true)
    );
    assert_eq!(
        client.verifiable_records(&to_therapist).await.unwrap(),
        (true, false)
    );

    // A session: a text, homework with a worksheet, a submission, feedback.
    let sheet = dir.path().join("thought-record.txt");
    std::fs::write(&sheet, b"Situation / Thought / Feeling / Evidence").unwrap();
    let pointer = therapist
        .upload_file(&sheet, "text/plain", |_, _| {})
        .await
        .unwrap();
    therapist
        .send_text(&to_client, "Welcome. How was your week?")
        .await
        .unwrap();
    let assignment = therapist
        .assign_homework(
            &to_client,
            "Thought record",
            "Fill in one row a day.",
            Some("2026-12-07"),
            vec![pointer.clone()],
        )
        .await
        .unwrap();
    client.sync().await.unwrap();
    client
        .send_text(&to_therapist, "Better, thanks.")
        .await
        .unwrap();
    client
        .submit_homework(
            &to_therapist,
            &assignment,
            "Done for Monday and Tuesday.",
            vec![],
        )
        .await
        .unwrap();
    let got = therapist.sync().await.unwrap();
    let submission = got
        .iter()
        .find(|e| matches!(e.body(), Some(Body::HomeworkSubmission(_))))
        .and_then(|e| e.message_id())
        .unwrap();
    therapist
        .send_feedback(
            &to_client,
            &submission,
            "Good start: notice the evidence column.",
        )
        .await
        .unwrap();

    let history = therapist.history(&to_client).await.unwrap();
    assert_eq!(history.len(), 5);
    let t = therapist.export_transcript(&to_client).await.unwrap();
    let v = verify(&t).unwrap();
    assert_eq!(
        (
            v.count,
            v.by_exporter,
            v.by_peer,
            v.proven_by_exporter,
            v.proven_by_peer
        ),
        (5, 3, 2, 0, 2),
        "the client's messages carry its signature; the therapist's do not"
    );
    // The worksheet is named by its digest; the key that opens it is not
    // in the transcript.
    let hw = &t.entries[1];
    assert_eq!(hw.attachments[0].digest, hex::encode(&pointer.digest));
    let json = serde_json_string(&t);
    assert!(!json.contains(&hex::encode(&pointer.key)));
    assert!(!json.contains(&base64_of(&pointer.key)));
    // The client's own export agrees on the content.
    client.sync().await.unwrap();
    let mine = client.export_transcript(&to_therapist).await.unwrap();
    verify(&mine).unwrap();
    assert_eq!(mine.count, 5);

    // Through the auditor's command, from a file.
    let file = dir.path().join("transcript.json");
    std::fs::write(&file, &json).unwrap();
    assert!(alcove_audit::transcript::audit(&file).unwrap().verified);

    // Every tampering is refused.
    let refused = |edit: &dyn Fn(&mut alcove_client::TranscriptFile)| {
        let mut bad = t.clone();
        edit(&mut bad);
        verify(&bad).unwrap_err()
    };
    assert_eq!(
        refused(&|b| b.entries[0].text = "Welcome. Stop the medication.".into()),
        T::AlteredText { index: 0 }
    );
    assert_eq!(
        refused(&|b| b.entries[2].body = b.entries[0].body.clone()),
        T::BrokenChain { index: 2 }
    );
    assert_eq!(
        refused(&|b| {
            b.entries.swap(1, 2);
            b.entries[1].index = 1;
            b.entries[2].index = 2;
        }),
        T::BrokenChain { index: 1 }
    );
    assert_eq!(
        refused(&|b| {
            b.entries.pop();
        }),
        T::Truncated
    );
    assert_eq!(
        refused(&|b| {
            b.entries.pop();
            b.count = 4;
            b.head = b.entries[3].hash.clone();
        }),
        T::BadSignature
    );
    // Spliced: an entry of the client's own export put in.
    assert_eq!(
        refused(&|b| b.entries[3] = mine.entries[3].clone()),
        T::BrokenChain { index: 3 }
    );
    assert_eq!(
        refused(&|b| b.peer.name = "Someone else".into()),
        T::BadSignature
    );
    let mut bad = t.clone();
    bad.entries[0].text.push('!');
    std::fs::write(&file, serde_json_string(&bad)).unwrap();
    let report = alcove_audit::transcript::audit(&file).unwrap();
    assert!(!report.verified);
    assert!(report.refused.unwrap().contains("entry 0"));
}

fn serde_json_string(t: &alcove_client::TranscriptFile) -> String {
    alcove_audit::transcript::to_json(t)
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Records of a stopped profile whose names start with `prefix`.
fn records_named(dir: &std::path::Path, prefix: &[u8]) -> usize {
    use alcove_client::ProfileStore;
    alcove_client::SledProfileStore::open(dir)
        .unwrap()
        .scan_prefix(prefix)
        .unwrap()
        .len()
}

async fn disappearing_messages_are_deleted_on_both_devices_with_their_keys(backend: Backend) {
    let relay = TestRelay::start_on(backend, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = MovedClock::default();
    let (therapist, client, to_client, to_therapist) =
        pair_on_clocks(&relay, dir.path(), &clock, &clock).await;
    client
        .set_disappearing(&to_therapist, Some(Duration::from_secs(86_400)))
        .await
        .unwrap();
    assert_eq!(
        kinds(&therapist.sync().await.unwrap()),
        vec!["disappearing 86400"],
        "the therapist is told"
    );
    assert_eq!(
        therapist.disappearing(&to_client).await.unwrap(),
        Some(Duration::from_secs(86_400))
    );
    therapist
        .send_text(&to_client, "Session notes follow.")
        .await
        .unwrap();
    client.sync().await.unwrap();
    client.send_text(&to_therapist, "Thank you.").await.unwrap();
    therapist.sync().await.unwrap();
    assert_eq!(therapist.history(&to_client).await.unwrap().len(), 2);
    assert_eq!(client.history(&to_therapist).await.unwrap().len(), 2);

    // A day and an hour later: gone on both sides; a new message stays.
    clock.advance(25 * HOUR_MS);
    therapist
        .send_text(&to_client, "A new week.")
        .await
        .unwrap();
    client.sync().await.unwrap();
    therapist.sync().await.unwrap();
    let left: Vec<_> = therapist
        .history(&to_client)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.body)
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(client.history(&to_therapist).await.unwrap().len(), 1);
    assert_eq!(
        therapist.export_transcript(&to_client).await.unwrap().count,
        1
    );

    // The entries and their keys are gone from the profiles' storage.
    drop((therapist, client));
    for sub in ["t", "c"] {
        assert_eq!(
            records_named(&dir.path().join(sub), b"history/"),
            1,
            "{sub}"
        );
        assert_eq!(
            records_named(&dir.path().join(sub), b"history-key/"),
            1,
            "{sub}"
        );
    }
}
