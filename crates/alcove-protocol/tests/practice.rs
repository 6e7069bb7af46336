//! Clinician credentials, revocations, office hours and transcripts: the
//! formats and rules of `credential`, `availability` and `transcript`.

use alcove_protocol::availability::{is_open_at, next_opening_ms, validate};
use alcove_protocol::content::{self, Availability, Body, Content, OfficeHours, Text};
use alcove_protocol::credential::{
    digest_of, Claims, Credential, CredentialCommitment, IssuerKey, Revocation, MAX_CREDENTIAL_LEN,
    REVOCATION_LEN,
};
use alcove_protocol::error::{CredentialError, DecodeError};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::transcript::{self, Recorded, TranscriptError};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// One change to a value, for tables of bad cases.
type Edit<T> = Box<dyn Fn(&mut T)>;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(19)
}

fn claims(subject: &IdentityKeyPair) -> Claims {
    Claims {
        subject: subject.public().address(),
        display_name: "Dr. Ana Rivera".into(),
        licence_number: "PSY-20417".into(),
        jurisdiction: "Ontario, CA".into(),
        issued_at: 1_790_000_000,
        expires_at: 1_821_536_000,
    }
}

#[test]
fn a_credential_round_trips_and_every_altered_byte_is_refused() {
    let mut rng = rng();
    let issuer = IssuerKey::generate(&mut rng);
    let therapist = IdentityKeyPair::generate(&mut rng);
    let c = Credential::issue(&mut rng, &issuer, claims(&therapist)).unwrap();
    let parsed = Credential::from_bytes(c.as_bytes()).unwrap();
    assert_eq!(parsed, c);
    assert_eq!(parsed.claims(), &claims(&therapist));
    assert_eq!(parsed.issuer(), issuer.public());
    assert_eq!(parsed.digest(), digest_of(c.as_bytes()));
    assert!(!parsed.is_expired_at(1_821_535_999));
    assert!(parsed.is_expired_at(1_821_536_000));
    // Every single-bit change anywhere is refused: in a field the
    // signature no longer verifies, in a length or the version the
    // structure no longer parses.
    for i in 0..c.as_bytes().len() {
        let mut bad = c.as_bytes().to_vec();
        bad[i] ^= 0x01;
        assert!(Credential::from_bytes(&bad).is_err(), "byte {i}");
    }
    // Truncated, extended, empty.
    let b = c.as_bytes();
    assert!(matches!(
        Credential::from_bytes(&b[..b.len() - 1]),
        Err(CredentialError::BadSignature) | Err(CredentialError::Decode(_))
    ));
    assert!(Credential::from_bytes(&[b, &[0]].concat()).is_err());
    assert!(matches!(
        Credential::from_bytes(&[]),
        Err(CredentialError::Decode(DecodeError::Truncated { .. }))
    ));
    // The key's Debug never shows the secret.
    let shown = format!("{issuer:?}");
    assert!(shown.contains("redacted"));
    assert!(!shown.contains(&hex::encode(issuer.to_seed().as_slice())));
    assert_eq!(
        IssuerKey::from_seed(&issuer.to_seed()).public(),
        issuer.public()
    );
}

#[test]
fn claims_out_of_bounds_are_not_issued() {
    let mut rng = rng();
    let issuer = IssuerKey::generate(&mut rng);
    let therapist = IdentityKeyPair::generate(&mut rng);
    let cases: Vec<Edit<Claims>> = vec![
        Box::new(|c| c.display_name.clear()),
        Box::new(|c| c.display_name = "x".repeat(129)),
        Box::new(|c| c.licence_number = "1".repeat(65)),
        Box::new(|c| c.jurisdiction.clear()),
        Box::new(|c| c.expires_at = c.issued_at),
    ];
    for edit in cases {
        let mut c = claims(&therapist);
        edit(&mut c);
        assert!(matches!(
            Credential::issue(&mut rng, &issuer, c),
            Err(CredentialError::Invalid(_))
        ));
    }
    // The longest fields make the longest credential.
    let mut c = claims(&therapist);
    c.display_name = "é".repeat(64);
    c.licence_number = "1".repeat(64);
    c.jurisdiction = "j".repeat(64);
    let long = Credential::issue(&mut rng, &issuer, c).unwrap();
    assert_eq!(long.as_bytes().len(), MAX_CREDENTIAL_LEN);
}

#[test]
fn only_the_issuer_revokes_and_a_commitment_carries_its_revocation() {
    let mut rng = rng();
    let issuer = IssuerKey::generate(&mut rng);
    let other = IssuerKey::generate(&mut rng);
    let therapist = IdentityKeyPair::generate(&mut rng);
    let c = Credential::issue(&mut rng, &issuer, claims(&therapist)).unwrap();
    assert!(matches!(
        Revocation::sign(&other, &c, 1),
        Err(CredentialError::Invalid(_))
    ));
    let r = Revocation::sign(&issuer, &c, 1_800_000_000).unwrap();
    assert_eq!(r.as_bytes().len(), REVOCATION_LEN);
    let parsed = Revocation::from_bytes(r.as_bytes()).unwrap();
    assert!(parsed.revokes(&c));
    assert_eq!(parsed.revoked_at(), 1_800_000_000);
    for i in 0..REVOCATION_LEN {
        let mut bad = r.as_bytes().to_vec();
        bad[i] ^= 0x80;
        assert!(Revocation::from_bytes(&bad).is_err(), "byte {i}");
    }
    let another = Credential::issue(&mut rng, &issuer, claims(&therapist)).unwrap();
    assert!(
        !parsed.revokes(&another),
        "a new serial is a new credential"
    );

    let mut commitment = CredentialCommitment::of(&c);
    assert_eq!(commitment.to_bytes().len(), 64);
    assert_eq!(
        CredentialCommitment::from_bytes(&commitment.to_bytes()).unwrap(),
        commitment
    );
    commitment.revocation = Some(parsed.clone());
    let bytes = commitment.to_bytes();
    assert_eq!(bytes.len(), 201);
    assert_eq!(
        CredentialCommitment::from_bytes(&bytes).unwrap(),
        commitment
    );
    // A revocation of another credential, or by another key, does not fit
    // the record.
    let mut swapped = CredentialCommitment::of(&another).to_bytes();
    swapped.extend_from_slice(parsed.as_bytes());
    assert!(CredentialCommitment::from_bytes(&swapped).is_err());
    assert!(CredentialCommitment::from_bytes(&bytes[..100]).is_err());
}

fn weekdays_9_to_17(offset: i32) -> Availability {
    Availability {
        updated_at_ms: 0,
        utc_offset_minutes: offset,
        hours: (1..=5)
            .map(|weekday| OfficeHours {
                weekday,
                start_minute: 540,
                end_minute: 1020,
            })
            .collect(),
        reply_within_hours: 24,
        crisis_text: "Call 112.".into(),
    }
}

/// 2026-11-23 (a Monday) 00:00 UTC, in ms.
const MONDAY: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

#[test]
fn office_hours_hold_in_the_clinicians_time_zone() {
    let utc = weekdays_9_to_17(0);
    assert!(!is_open_at(&utc, MONDAY + 9 * HOUR - 1));
    assert!(is_open_at(&utc, MONDAY + 9 * HOUR), "start is inclusive");
    assert!(is_open_at(&utc, MONDAY + 17 * HOUR - 1));
    assert!(!is_open_at(&utc, MONDAY + 17 * HOUR), "end is exclusive");
    // Saturday noon: closed; hours open again on Monday 09:00.
    let saturday = MONDAY + 5 * 24 * HOUR + 12 * HOUR;
    assert!(!is_open_at(&utc, saturday));
    assert_eq!(
        next_opening_ms(&utc, saturday),
        Some(MONDAY + 7 * 24 * HOUR + 9 * HOUR)
    );
    // Friday 17:00 to the next Monday, across the week's end.
    assert_eq!(
        next_opening_ms(&utc, MONDAY + 4 * 24 * HOUR + 17 * HOUR),
        Some(MONDAY + 7 * 24 * HOUR + 9 * HOUR)
    );
    // UTC-5: Monday 09:00 local is 14:00 UTC; Sunday 23:00 local is
    // Monday 04:00 UTC and closed.
    let ny = weekdays_9_to_17(-300);
    assert!(!is_open_at(&ny, MONDAY + 13 * HOUR));
    assert!(is_open_at(&ny, MONDAY + 14 * HOUR));
    assert!(!is_open_at(&ny, MONDAY + 4 * HOUR));
    // UTC+14: Monday 09:00 local is Sunday 19:00 UTC.
    let kiribati = weekdays_9_to_17(840);
    assert!(is_open_at(&kiribati, MONDAY - 5 * HOUR));
    // No hours: never open, nothing to wait for.
    let none = Availability {
        hours: vec![],
        ..weekdays_9_to_17(0)
    };
    assert!(!is_open_at(&none, MONDAY + 10 * HOUR));
    assert_eq!(next_opening_ms(&none, MONDAY), None);
    validate(&utc).unwrap();
    // The extremes of time, with the extremes of offset: no overflow.
    for offset in [-720, 0, 840] {
        let a = weekdays_9_to_17(offset);
        for at in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let _ = is_open_at(&a, at);
            let _ = next_opening_ms(&a, at);
        }
    }
}

#[test]
fn availability_out_of_bounds_is_refused_by_decode() {
    let base = weekdays_9_to_17(0);
    let cases: Vec<Edit<Availability>> = vec![
        Box::new(|a| a.utc_offset_minutes = 841),
        Box::new(|a| a.utc_offset_minutes = -721),
        Box::new(|a| a.hours[0].weekday = 0),
        Box::new(|a| a.hours[0].weekday = 8),
        Box::new(|a| a.hours[0].start_minute = 1020),
        Box::new(|a| a.hours[0].end_minute = 1441),
        Box::new(|a| a.reply_within_hours = 721),
        Box::new(|a| a.crisis_text = "x".repeat(2001)),
        Box::new(|a| a.hours = vec![a.hours[0]; 29]),
    ];
    for edit in cases {
        let mut a = base.clone();
        edit(&mut a);
        let bytes = content::encode(&Content {
            message_id: vec![1; 16],
            body: Some(Body::Availability(a)),
            ..Default::default()
        });
        assert!(content::decode(&bytes).is_err());
    }
}

#[test]
fn a_transcript_of_nothing_verifies_and_author_signatures_bind_the_recipient() {
    let mut rng = rng();
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let empty = transcript::export(&a, "A", b.public(), "B", 1, &[]);
    let v = transcript::verify(&empty).unwrap();
    assert_eq!((v.count, v.by_exporter, v.by_peer), (0, 0, 0));

    let content = Content {
        message_id: vec![7; 16],
        sent_at_ms: 1_000,
        body: Some(Body::Text(Text {
            body: "hello".into(),
            reply_to: vec![],
        })),
        ..Default::default()
    };
    let sig = transcript::sign_author(&b, &a.public().address(), &content).unwrap();
    assert!(transcript::verify_author(
        b.public(),
        &a.public().address(),
        &content,
        &sig
    ));
    // The same signature does not pass for another recipient.
    let c = IdentityKeyPair::generate(&mut rng);
    assert!(!transcript::verify_author(
        b.public(),
        &c.public().address(),
        &content,
        &sig
    ));
    let t = transcript::export(
        &a,
        "A",
        b.public(),
        "B",
        2,
        &[Recorded {
            by_exporter: false,
            content: content.clone(),
            author_signature: Some(sig),
        }],
    );
    let v = transcript::verify(&t).unwrap();
    assert_eq!((v.by_peer, v.proven_by_peer), (1, 1));
    // A signature moved to the other side's name does not verify.
    let mut flipped = t.clone();
    flipped.entries[0].from = "exporter".into();
    assert!(matches!(
        transcript::verify(&flipped),
        Err(TranscriptError::BrokenChain { index: 0 })
    ));
    let mut other_format = t;
    other_format.format = "alcove-transcript/0".into();
    assert!(matches!(
        transcript::verify(&other_format),
        Err(TranscriptError::Malformed(_))
    ));
}

proptest! {
    #[test]
    fn credential_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Credential::from_bytes(&bytes);
        let _ = Revocation::from_bytes(&bytes);
        let _ = CredentialCommitment::from_bytes(&bytes);
    }

    #[test]
    fn office_hour_checks_never_panic(
        offset in -720i32..=840,
        at in any::<i64>(),
        windows in proptest::collection::vec((1u32..=7, 0u32..1440, 1u32..=1440), 0..28),
    ) {
        let a = Availability {
            utc_offset_minutes: offset,
            hours: windows
                .into_iter()
                .filter(|(_, s, e)| s < e)
                .map(|(weekday, start_minute, end_minute)| OfficeHours { weekday, start_minute, end_minute })
                .collect(),
            ..Default::default()
        };
        let open = is_open_at(&a, at);
        if let Some(next) = next_opening_ms(&a, at) {
            prop_assert!(next >= at || next == i64::MAX);
            if open { prop_assert_eq!(next, at); }
        }
    }
}
