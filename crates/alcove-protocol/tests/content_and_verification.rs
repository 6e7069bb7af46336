//! Typed content, padding, attachments, safety numbers and invites.

mod common;

use alcove_protocol::attachment::{
    encrypted_len, AttachmentDecryptor, AttachmentEncryptor, AttachmentKey,
};
use alcove_protocol::content::{
    self, AttachmentPointer, Body, Content, DeliveryReceipt, Feedback, HomeworkAssignment,
    HomeworkSubmission, Text,
};
use alcove_protocol::error::{AttachmentError, ContentError, InviteError};
use alcove_protocol::fingerprint::SafetyNumber;
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::invite::Invite;
use alcove_protocol::limits::{ATTACHMENT_CHUNK_SIZE, PADDING_BUCKETS};
use alcove_protocol::padding;

fn msg(body: Body) -> Content {
    Content {
        message_id: vec![9; 16],
        sent_at_ms: 1,
        body: Some(body),
        ..Default::default()
    }
}

#[test]
fn content_round_trips_every_kind() {
    let pointer = AttachmentPointer {
        blob_id: b"blob-1".to_vec(),
        key: vec![1; 32],
        digest: vec![2; 32],
        size: 1234,
        media_type: "application/pdf".into(),
        file_name: "worksheet.pdf".into(),
    };
    let bodies = vec![
        Body::Text(Text {
            body: "hello".into(),
            reply_to: vec![],
        }),
        Body::HomeworkAssignment(HomeworkAssignment {
            title: "Breathing".into(),
            instructions: "4-7-8, twice a day".into(),
            due_date: "2026-12-24".into(),
            attachments: vec![pointer.clone()],
            ..Default::default()
        }),
        Body::HomeworkSubmission(HomeworkSubmission {
            assignment_id: vec![3; 16],
            body: "done".into(),
            attachments: vec![],
        }),
        Body::Feedback(Feedback {
            refers_to: vec![4; 16],
            body: "well done".into(),
        }),
        Body::Attachment(pointer),
        Body::DeliveryReceipt(DeliveryReceipt {
            message_ids: vec![vec![5; 16], vec![6; 16]],
        }),
        Body::ReadReceipt(content::ReadReceipt {
            message_ids: vec![vec![5; 16]],
        }),
    ];
    for body in bodies {
        let c = msg(body);
        assert_eq!(content::decode(&content::encode(&c)).unwrap(), c);
    }
}

#[test]
fn content_validation_names_the_problem() {
    let cases: Vec<(Content, &str)> = vec![
        (
            Content {
                message_id: vec![1; 15],
                sent_at_ms: 0,
                body: Some(Body::Text(Text::default())),
                ..Default::default()
            },
            "message_id",
        ),
        (
            Content {
                message_id: vec![1; 16],
                sent_at_ms: 0,
                body: None,
                ..Default::default()
            },
            "no body",
        ),
        (
            msg(Body::HomeworkSubmission(HomeworkSubmission {
                assignment_id: vec![],
                ..Default::default()
            })),
            "assignment_id",
        ),
        (
            msg(Body::Feedback(Feedback {
                refers_to: vec![1; 3],
                body: String::new(),
            })),
            "refers_to",
        ),
        (
            msg(Body::HomeworkAssignment(HomeworkAssignment {
                title: "t".into(),
                due_date: "next week".into(),
                ..Default::default()
            })),
            "due_date",
        ),
        (
            msg(Body::HomeworkAssignment(HomeworkAssignment::default())),
            "title",
        ),
        (
            msg(Body::Attachment(AttachmentPointer {
                blob_id: b"x".to_vec(),
                key: vec![0; 16],
                digest: vec![0; 32],
                ..Default::default()
            })),
            "key",
        ),
        (
            msg(Body::ReadReceipt(content::ReadReceipt {
                message_ids: vec![],
            })),
            "receipt",
        ),
    ];
    for (c, word) in cases {
        match content::decode(&content::encode(&c)) {
            Err(ContentError::Invalid(reason)) => {
                assert!(reason.contains(word), "{reason} vs {word}")
            }
            other => panic!("expected an error about {word}, got {other:?}"),
        }
    }
    assert_eq!(
        content::decode(&[0xff, 0xff, 0xff]),
        Err(ContentError::Protobuf)
    );
}

#[test]
fn padding_is_reversible_and_strict() {
    for len in [0, 1, 255, 256, 1000, 70_000] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let padded = padding::pad(&data).unwrap();
        assert!(PADDING_BUCKETS.contains(&padded.len()));
        assert_eq!(padding::unpad(&padded).unwrap(), &data[..]);
    }
    // Trailing zeros in the plaintext survive.
    let padded = padding::pad(&[1, 0, 0]).unwrap();
    assert_eq!(padding::unpad(&padded).unwrap(), &[1, 0, 0]);
    assert!(padding::unpad(&[0u8; 256]).is_err());
    assert!(padding::unpad(&[0x80u8; 255]).is_err());
    assert!(padding::pad(&vec![0; PADDING_BUCKETS[PADDING_BUCKETS.len() - 1]]).is_err());
}

#[test]
fn safety_number_is_the_same_on_both_sides_and_changes_with_keys() {
    let mut rng = common::rng(20);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let c = IdentityKeyPair::generate(&mut rng);
    let ab = SafetyNumber::new(a.public(), b.public());
    assert_eq!(ab, SafetyNumber::new(b.public(), a.public()));
    assert_eq!(ab.digits().len(), 60);
    assert!(ab.digits().bytes().all(|d| d.is_ascii_digit()));
    assert_eq!(ab.to_string().split(' ').count(), 12);
    assert_ne!(ab, SafetyNumber::new(a.public(), c.public()));
}

#[test]
fn invite_round_trip_and_checks() {
    let mut rng = common::rng(21);
    let therapist = IdentityKeyPair::generate(&mut rng);
    let impostor = IdentityKeyPair::generate(&mut rng);
    let invite = Invite::new(
        &mut rng,
        therapist.public(),
        "https://relay.example.org",
        2_000,
    )
    .unwrap();
    let link = invite.to_link();
    assert!(link.starts_with("alcove://invite/"));
    assert!(link.bytes().all(|b| b.is_ascii_graphic()));
    let decoded = Invite::decode(&link).unwrap();
    assert_eq!(decoded, invite);
    assert_eq!(Invite::decode(&invite.encode()).unwrap(), invite);
    decoded.verify(therapist.public(), 1_999).unwrap();
    assert_eq!(
        decoded.verify(therapist.public(), 2_001),
        Err(InviteError::Expired { expires_at: 2_000 })
    );
    // Valid strictly before its expiry: an invite made to last zero seconds
    // is never valid.
    assert_eq!(
        decoded.verify(therapist.public(), 2_000),
        Err(InviteError::Expired { expires_at: 2_000 })
    );
    assert_eq!(
        decoded.verify(impostor.public(), 1_000),
        Err(InviteError::AddressMismatch)
    );
    // Same address, other X25519 key: only the fingerprint catches it.
    let mut forged = decoded.clone();
    forged.fingerprint = impostor.public().fingerprint();
    assert_eq!(
        forged.verify(therapist.public(), 1_000),
        Err(InviteError::FingerprintMismatch)
    );
    // Bad inputs.
    assert!(Invite::new(&mut rng, therapist.public(), "ftp://x", 1).is_err());
    assert!(Invite::decode("alcove://invite/!!!").is_err());
    assert!(Invite::decode(&invite.encode()[..40]).is_err());
}

#[test]
fn an_invite_carries_the_delivery_key_and_old_invites_still_read() {
    use alcove_protocol::delivery::DeliveryKey;
    use base64::Engine as _;
    let mut rng = common::rng(23);
    let therapist = IdentityKeyPair::generate(&mut rng);
    let key = DeliveryKey::generate(&mut rng);
    let plain = Invite::new(&mut rng, therapist.public(), "https://r.example", 9).unwrap();
    let invite = plain.clone().with_delivery_key(key.clone());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(invite.encode())
        .unwrap();
    assert_eq!(raw[0], 2, "an invite with a delivery key is version 2");
    assert_eq!(&raw[89..105], key.as_bytes());
    let decoded = Invite::decode(&invite.to_link()).unwrap();
    assert_eq!(decoded.delivery_key.as_ref(), Some(&key));
    assert_eq!(decoded, invite);
    // Version 1 (no delivery key) is still read, one byte shorter than
    // version 2 by exactly the key.
    let v1 = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(plain.encode())
        .unwrap();
    assert_eq!(v1[0], 1);
    assert_eq!(v1.len() + 16, raw.len());
    assert_eq!(Invite::decode(&plain.encode()).unwrap().delivery_key, None);
    // A version-2 invite cut at the key, or with a version byte from the
    // future, is refused.
    let cut = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..100]);
    assert!(Invite::decode(&cut).is_err());
    let mut future = raw.clone();
    future[0] = 3;
    let future = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&future);
    assert!(Invite::decode(&future).is_err());
}

fn encrypt_all(data: &[u8], feed: usize) -> (Vec<u8>, AttachmentKey, [u8; 32]) {
    let mut rng = common::rng(22);
    let (mut enc, key) = AttachmentEncryptor::new(&mut rng);
    let mut blob = Vec::new();
    for piece in data.chunks(feed.max(1)) {
        blob.extend(enc.update(piece).unwrap());
    }
    let (tail, sealed) = enc.finish().unwrap();
    blob.extend(tail);
    assert_eq!(sealed.size, data.len() as u64);
    assert_eq!(sealed.encrypted_size, blob.len() as u64);
    assert_eq!(encrypted_len(data.len() as u64), blob.len() as u64);
    (blob, key, sealed.digest)
}

fn decrypt_all(
    blob: &[u8],
    key: &AttachmentKey,
    digest: [u8; 32],
    feed: usize,
) -> Result<Vec<u8>, AttachmentError> {
    let mut dec = AttachmentDecryptor::new(key, digest);
    let mut out = Vec::new();
    for piece in blob.chunks(feed.max(1)) {
        out.extend(dec.update(piece)?);
    }
    out.extend(dec.finish()?);
    Ok(out)
}

#[test]
fn attachments_round_trip_at_chunk_boundaries() {
    let c = ATTACHMENT_CHUNK_SIZE;
    for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 17] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        for feed in [1000, c, 3 * c] {
            let (blob, key, digest) = encrypt_all(&data, feed);
            assert_eq!(
                decrypt_all(&blob, &key, digest, 777).unwrap(),
                data,
                "len {len} feed {feed}"
            );
        }
    }
}

#[test]
fn attachments_detect_tampering_truncation_and_reordering() {
    let c = ATTACHMENT_CHUNK_SIZE;
    let data = vec![0x33; 3 * c + 5];
    let (blob, key, digest) = encrypt_all(&data, c);
    // A flipped bit.
    let mut bad = blob.clone();
    bad[c + 100] ^= 1;
    assert!(decrypt_all(&bad, &key, digest, c).is_err());
    // Truncated at a chunk boundary (digest recomputed, as an attacker
    // who also controls the pointer's digest would).
    let cut = 8 + 2 * (c + 16);
    let truncated = &blob[..cut];
    let d: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        truncated,
    ))
    .into();
    assert!(decrypt_all(truncated, &key, d, c).is_err());
    // Two chunks swapped.
    let mut swapped = blob.clone();
    let (x, y) = (8, 8 + c + 16);
    let first: Vec<u8> = swapped[x..y].to_vec();
    let second: Vec<u8> = swapped[y..y + c + 16].to_vec();
    swapped[x..y].copy_from_slice(&second);
    swapped[y..y + c + 16].copy_from_slice(&first);
    let d: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        &swapped,
    ))
    .into();
    assert!(matches!(
        decrypt_all(&swapped, &key, d, c),
        Err(AttachmentError::ChunkRejected { .. })
    ));
    // Wrong digest.
    assert_eq!(
        decrypt_all(&blob, &key, [0; 32], c),
        Err(AttachmentError::DigestMismatch)
    );
    // Wrong key.
    let other = AttachmentKey::from_bytes(&[7; 32]).unwrap();
    assert!(decrypt_all(&blob, &other, digest, c).is_err());
    assert_eq!(format!("{key:?}"), "AttachmentKey(<redacted>)");
}

#[test]
fn attachment_keys_never_reach_debug_output() {
    let pointer = alcove_protocol::content::AttachmentPointer {
        blob_id: vec![1; 16],
        key: vec![0xAB; 32],
        digest: vec![2; 32],
        size: 10,
        media_type: "application/pdf".into(),
        file_name: "worksheet.pdf".into(),
    };
    let shown = format!("{pointer:?}");
    assert!(shown.contains("worksheet.pdf"), "{shown}");
    assert!(!shown.contains("171"), "key bytes printed: {shown}");
    assert!(!shown.to_lowercase().contains("ab, ab"), "{shown}");
}
