//! Typed content: what a message says, once decrypted.
//!
//! The types are generated from `proto/alcove/v1/content.proto`, so an app
//! in any language decodes the same bytes. [`decode`] checks more than the
//! protobuf grammar: ids have their fixed length, exactly one body is set,
//! attachment pointers carry a 32-byte key and digest.

use std::fmt;

use rand_core::{CryptoRng, RngCore};

use crate::error::ContentError;

/// Generated protobuf types (`alcove.v1`).
#[allow(missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/alcove.v1.rs"));
}

pub use pb::content::Body;
pub use pb::{
    AttachmentPointer, Availability, Content, CredentialPresentation, DeliveryKeyChanged,
    DeliveryReceipt, Feedback, GroupKeyUpdate, GroupLeave, GroupMember, GroupRoster,
    GroupSenderKey, GroupUpdate, HomeworkAssignment, HomeworkSubmission, InviteAccepted,
    OfficeHours, ReadReceipt, RecordSigning, Retention, RetryRequest, RetryUnavailable, Text,
};

/// Length of the envelope digest a [`RetryRequest`] names.
pub const ENVELOPE_DIGEST_LEN: usize = 16;

/// The digest a [`RetryRequest`] names an envelope by: the first 16 bytes
/// of SHA-256 over the sealed envelope as sent and delivered.
pub fn envelope_digest(envelope: &[u8]) -> [u8; ENVELOPE_DIGEST_LEN] {
    use sha2::Digest;
    let full = sha2::Sha256::digest(envelope);
    let mut out = [0u8; ENVELOPE_DIGEST_LEN];
    out.copy_from_slice(&full[..ENVELOPE_DIGEST_LEN]);
    out
}

/// Prints everything but the key, which must never reach a log.
impl fmt::Debug for AttachmentPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachmentPointer")
            .field("blob_id", &self.blob_id)
            .field("key", &"<redacted>")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("media_type", &self.media_type)
            .field("file_name", &self.file_name)
            .finish()
    }
}

/// Prints the chain's name and position, never its key.
impl fmt::Debug for GroupSenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSenderKey")
            .field("group_id", &hex::encode(&self.group_id))
            .field("epoch", &self.epoch)
            .field("chain_id", &hex::encode(&self.chain_id))
            .field("iteration", &self.iteration)
            .field("chain_key", &"<redacted>")
            .field("rotate", &self.rotate)
            .finish()
    }
}

/// The shortest disappearing-message period, seconds.
pub const MIN_RETENTION_SECS: u64 = 3_600;
/// The longest disappearing-message period, seconds (5 years).
pub const MAX_RETENTION_SECS: u64 = 5 * 365 * 86_400;

/// Whether a body is something a person wrote (text, homework, feedback,
/// a document), as opposed to receipts and control messages: what a
/// conversation's history, transcripts and notices are about.
pub fn is_written(body: &Body) -> bool {
    matches!(
        body,
        Body::Text(_)
            | Body::HomeworkAssignment(_)
            | Body::HomeworkSubmission(_)
            | Body::Feedback(_)
            | Body::Attachment(_)
    )
}

/// The canonical bytes of a body, as author signatures and transcripts
/// cover it: a `Content` holding only the body, with every attachment
/// key cleared (a transcript names a document by its digest, and must not
/// carry the key that opens it).
pub fn canonical_body(body: &Body) -> Vec<u8> {
    let mut body = body.clone();
    let clear = |list: &mut Vec<AttachmentPointer>| list.iter_mut().for_each(|p| p.key.clear());
    match &mut body {
        Body::HomeworkAssignment(a) => clear(&mut a.attachments),
        Body::HomeworkSubmission(s) => clear(&mut s.attachments),
        Body::Attachment(p) => p.key.clear(),
        _ => {}
    }
    encode(&Content {
        body: Some(body),
        ..Default::default()
    })
}

/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// The most message ids one receipt may list.
pub const MAX_RECEIPT_IDS: usize = 1_000;
/// The most attachments one homework message may carry.
pub const MAX_ATTACHMENTS: usize = 32;
/// The longest blob id the relay may assign.
pub const MAX_BLOB_ID_LEN: usize = 64;

/// A client-generated message id (16 random bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// A fresh random id.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut id = [0u8; MESSAGE_ID_LEN];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// Parses 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Lowercase hex, as shown in logs and the CLI.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Serializes content to protobuf bytes.
pub fn encode(content: &Content) -> Vec<u8> {
    prost::Message::encode_to_vec(content)
}

/// Parses and validates content.
pub fn decode(bytes: &[u8]) -> Result<Content, ContentError> {
    let content: Content = prost::Message::decode(bytes).map_err(|_| ContentError::Protobuf)?;
    validate(&content)?;
    Ok(content)
}

fn id_ok(id: &[u8]) -> bool {
    id.len() == MESSAGE_ID_LEN
}

fn optional_id_ok(id: &[u8]) -> bool {
    id.is_empty() || id_ok(id)
}

/// Checks the rules [`decode`] enforces (also useful before sending).
pub fn validate(content: &Content) -> Result<(), ContentError> {
    if !id_ok(&content.message_id) {
        return Err(ContentError::Invalid("message_id must be 16 bytes"));
    }
    if !(content.delivery_key.is_empty()
        || content.delivery_key.len() == crate::delivery::DELIVERY_KEY_LEN)
    {
        return Err(ContentError::Invalid(
            "delivery_key must be empty or 16 bytes",
        ));
    }
    if !(content.author_signature.is_empty() || content.author_signature.len() == 64) {
        return Err(ContentError::Invalid(
            "author_signature must be empty or 64 bytes",
        ));
    }
    if !(content.group_id.is_empty() || content.group_id.len() == crate::group::GROUP_ID_LEN) {
        return Err(ContentError::Invalid("group_id must be empty or 32 bytes"));
    }
    match &content.body {
        None => Err(ContentError::Invalid("no body")),
        Some(Body::GroupUpdate(u)) => {
            if u.roster.is_empty() || u.roster.len() > crate::group::MAX_ROSTER_LEN {
                Err(ContentError::Invalid("a group roster is 1 byte to 256 KiB"))
            } else if u.signature.len() != 64 {
                Err(ContentError::Invalid(
                    "a group roster signature is 64 bytes",
                ))
            } else {
                Ok(())
            }
        }
        Some(Body::GroupSenderKey(k)) => {
            if k.group_id.len() != crate::group::GROUP_ID_LEN
                || k.chain_id.len() != crate::group::CHAIN_ID_LEN
                || k.chain_key.len() != 32
            {
                Err(ContentError::Invalid(
                    "a sender key has a 32-byte group id, a 16-byte chain id and a 32-byte key",
                ))
            } else {
                Ok(())
            }
        }
        Some(Body::GroupKeyUpdate(u)) => {
            if u.group_id.len() != crate::group::GROUP_ID_LEN || !(1..=2).contains(&u.phase) {
                Err(ContentError::Invalid(
                    "a key update has a 32-byte group id and phase 1 or 2",
                ))
            } else {
                Ok(())
            }
        }
        Some(Body::GroupLeave(l)) => {
            if l.group_id.len() != crate::group::GROUP_ID_LEN {
                Err(ContentError::Invalid("group_id must be 32 bytes"))
            } else {
                Ok(())
            }
        }
        Some(Body::RecordSigning(_)) => Ok(()),
        Some(Body::Retention(r)) => {
            if r.seconds == 0 || (MIN_RETENTION_SECS..=MAX_RETENTION_SECS).contains(&r.seconds) {
                Ok(())
            } else {
                Err(ContentError::Invalid(
                    "retention is 0 (off) or 1 hour to 5 years",
                ))
            }
        }
        Some(Body::Text(t)) => {
            if optional_id_ok(&t.reply_to) {
                Ok(())
            } else {
                Err(ContentError::Invalid("reply_to must be empty or 16 bytes"))
            }
        }
        Some(Body::HomeworkAssignment(a)) => {
            if a.title.is_empty() {
                return Err(ContentError::Invalid("homework assignment needs a title"));
            }
            if !a.due_date.is_empty() && !is_iso_date(&a.due_date) {
                return Err(ContentError::Invalid("due_date must be YYYY-MM-DD"));
            }
            if !(a.assignee.is_empty() || a.assignee.len() == 32) {
                return Err(ContentError::Invalid("assignee must be empty or 32 bytes"));
            }
            attachments_ok(&a.attachments)
        }
        Some(Body::HomeworkSubmission(s)) => {
            if !id_ok(&s.assignment_id) {
                return Err(ContentError::Invalid("assignment_id must be 16 bytes"));
            }
            attachments_ok(&s.attachments)
        }
        Some(Body::Feedback(f)) => {
            if id_ok(&f.refers_to) {
                Ok(())
            } else {
                Err(ContentError::Invalid("refers_to must be 16 bytes"))
            }
        }
        Some(Body::Attachment(a)) => attachment_ok(a),
        Some(Body::DeliveryKeyChanged(_)) => {
            if content.delivery_key.is_empty() {
                Err(ContentError::Invalid(
                    "DeliveryKeyChanged needs a delivery_key",
                ))
            } else {
                Ok(())
            }
        }
        Some(Body::InviteAccepted(i)) => {
            if i.invite_nonce.len() == 16 {
                Ok(())
            } else {
                Err(ContentError::Invalid("invite_nonce must be 16 bytes"))
            }
        }
        Some(Body::RetryRequest(RetryRequest { envelope_digest }))
        | Some(Body::RetryUnavailable(RetryUnavailable { envelope_digest })) => {
            if envelope_digest.len() == ENVELOPE_DIGEST_LEN {
                Ok(())
            } else {
                Err(ContentError::Invalid("envelope_digest must be 16 bytes"))
            }
        }
        Some(Body::CredentialPresentation(p)) => {
            if p.credential.is_empty() || p.credential.len() > crate::credential::MAX_CREDENTIAL_LEN
            {
                Err(ContentError::Invalid("credential must be 1 to 423 bytes"))
            } else {
                Ok(())
            }
        }
        Some(Body::Availability(a)) => crate::availability::validate(a),
        Some(Body::DeliveryReceipt(DeliveryReceipt { message_ids }))
        | Some(Body::ReadReceipt(ReadReceipt { message_ids })) => {
            if message_ids.is_empty() || message_ids.len() > MAX_RECEIPT_IDS {
                return Err(ContentError::Invalid(
                    "a receipt lists 1 to 1000 message ids",
                ));
            }
            if message_ids.iter().all(|id| id_ok(id)) {
                Ok(())
            } else {
                Err(ContentError::Invalid("receipt ids must be 16 bytes"))
            }
        }
    }
}

fn attachments_ok(list: &[AttachmentPointer]) -> Result<(), ContentError> {
    if list.len() > MAX_ATTACHMENTS {
        return Err(ContentError::Invalid("too many attachments"));
    }
    list.iter().try_for_each(attachment_ok)
}

fn attachment_ok(a: &AttachmentPointer) -> Result<(), ContentError> {
    if a.blob_id.is_empty() || a.blob_id.len() > MAX_BLOB_ID_LEN {
        return Err(ContentError::Invalid("blob_id must be 1 to 64 bytes"));
    }
    if a.key.len() != 32 {
        return Err(ContentError::Invalid("attachment key must be 32 bytes"));
    }
    if a.digest.len() != 32 {
        return Err(ContentError::Invalid("attachment digest must be 32 bytes"));
    }
    Ok(())
}

/// `YYYY-MM-DD` with plausible month and day.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        s.get(r)?
            .chars()
            .try_fold(0u32, |acc, c| Some(acc * 10 + c.to_digit(10)?))
    };
    matches!(
        (digits(0..4), digits(5..7), digits(8..10)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}
