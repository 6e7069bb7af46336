//! Verifiable transcripts: a conversation exported for the clinical
//! record as a hash chain signed by the exporting device, checkable
//! offline by anyone (`alcove-audit transcript`).
//!
//! Each entry's hash covers the previous hash, who wrote it, its id, its
//! time, its canonical body ([`crate::content::canonical_body`]: attachment
//! keys removed, digests kept) and its author signature if it has one. The
//! exporter signs the last hash with the entry count, both parties and the
//! export time. So an edited, reordered, truncated or spliced transcript
//! does not verify. The exporter's signature shows what the exporter's
//! device recorded; that the *other* side wrote its messages is shown only
//! by their author signatures, which exist only for messages that side
//! sent while it had verifiable records turned on (see `docs/therapy.md`
//! on deniability).
//!
//! The file is JSON ([`TranscriptFile`]); its readable fields (`kind`,
//! `text`, `attachments`) are derived from the signed bodies and checked
//! against them, so what a reader sees is what was signed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::content::{self, Body, Content};
use crate::identity::{IdentityKeyPair, PublicIdentity};
use crate::keys::DeviceAddress;

/// The `format` of a transcript file this version writes and reads.
pub const FORMAT: &str = "alcove-transcript/1";
const ENTRY_LABEL: &[u8] = b"Alcove/v1/transcript-entry";
const HEAD_LABEL: &[u8] = b"Alcove/v1/transcript-head";
const AUTHOR_LABEL: &[u8] = b"Alcove/v1/author-signature";

/// What an author signature covers (see `Content.author_signature` in
/// `content.proto`).
pub fn author_message(
    sender: &DeviceAddress,
    recipient: &DeviceAddress,
    message_id: &[u8; 16],
    sent_at_ms: i64,
    canonical_body: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTHOR_LABEL.len() + 32 * 3 + 24);
    m.extend_from_slice(AUTHOR_LABEL);
    m.extend_from_slice(sender.as_bytes());
    m.extend_from_slice(recipient.as_bytes());
    m.extend_from_slice(message_id);
    m.extend_from_slice(&sent_at_ms.to_be_bytes());
    m.extend_from_slice(&Sha256::digest(canonical_body));
    m
}

/// Signs `content` (its id, time and canonical body) as its author.
pub fn sign_author(
    identity: &IdentityKeyPair,
    recipient: &DeviceAddress,
    content: &Content,
) -> Option<[u8; 64]> {
    let id: [u8; 16] = content.message_id.as_slice().try_into().ok()?;
    let body = content::canonical_body(content.body.as_ref()?);
    let m = author_message(
        &identity.public().address(),
        recipient,
        &id,
        content.sent_at_ms,
        &body,
    );
    Some(identity.sign(&m).to_bytes())
}

/// Whether `signature` is `sender`'s author signature over `content`.
pub fn verify_author(
    sender: &PublicIdentity,
    recipient: &DeviceAddress,
    content: &Content,
    signature: &[u8],
) -> bool {
    let (Ok(id), Ok(sig), Some(body)) = (
        <[u8; 16]>::try_from(content.message_id.as_slice()),
        <[u8; 64]>::try_from(signature),
        content.body.as_ref(),
    ) else {
        return false;
    };
    let m = author_message(
        &sender.address(),
        recipient,
        &id,
        content.sent_at_ms,
        &content::canonical_body(body),
    );
    sender
        .signing_key()
        .verify_strict(&m, &Signature::from_bytes(&sig))
        .is_ok()
}

/// One party of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Device address, unpadded base64url.
    pub address: String,
    /// The 128-byte public identity, hex.
    pub identity: String,
    /// The name the exporter's device knows them by.
    pub name: String,
}

/// An attachment as a transcript names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentDigest {
    /// Suggested file name.
    pub file_name: String,
    /// Media type.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the encrypted blob as uploaded, hex.
    pub digest: String,
}

/// One message of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Position, from 0.
    pub index: u64,
    /// `"exporter"` or `"peer"`: who wrote it.
    pub from: String,
    /// Message id, hex.
    pub message_id: String,
    /// The author's clock when written, ms since the Unix epoch.
    pub sent_at_ms: i64,
    /// Readable: `text`, `homework_assignment`, `homework_submission`,
    /// `feedback` or `attachment`.
    pub kind: String,
    /// Readable: the text, instructions, answer or feedback.
    pub text: String,
    /// Readable: a homework title, empty otherwise.
    pub title: String,
    /// Readable: the message it refers to (assignment or feedback), hex.
    pub refers_to: String,
    /// Readable: attachments by digest.
    pub attachments: Vec<AttachmentDigest>,
    /// The canonical body, base64: what the hash and signatures cover.
    pub body: String,
    /// The author's signature (hex), when the author had verifiable
    /// records on.
    pub author_signature: Option<String>,
    /// This entry's chain hash, hex.
    pub hash: String,
}

/// A transcript file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptFile {
    /// [`FORMAT`].
    pub format: String,
    /// The device that exported and signed it.
    pub exporter: Party,
    /// The other side of the conversation.
    pub peer: Party,
    /// When it was exported, ms since the Unix epoch.
    pub exported_at_ms: i64,
    /// The messages, oldest first.
    pub entries: Vec<FileEntry>,
    /// Number of entries.
    pub count: u64,
    /// The last entry's hash (of the empty chain: all zero), hex.
    pub head: String,
    /// The exporter's Ed25519 signature over the head, hex.
    pub signature: String,
}

/// A message as the exporter's device recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Written by the exporter (else by the peer).
    pub by_exporter: bool,
    /// The content (id, time, body).
    pub content: Content,
    /// The author's signature, if it came with one that verified.
    pub author_signature: Option<[u8; 64]>,
}

/// Why a transcript does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// Not a transcript of this format, or a field does not parse.
    #[error("malformed transcript: {0}")]
    Malformed(String),
    /// An entry's hash does not follow from the previous one and its
    /// content: edited, reordered, removed or inserted entries.
    #[error("entry {index}: its hash does not match its content and the entry before it (edited, reordered or spliced)")]
    BrokenChain {
        /// The first entry that does not match.
        index: u64,
    },
    /// An entry's readable fields differ from its signed body.
    #[error("entry {index}: the readable text differs from the signed content")]
    AlteredText {
        /// The entry.
        index: u64,
    },
    /// The count or head differ from the entries: truncated or extended.
    #[error("the entries do not end where the signature says (truncated or extended)")]
    Truncated,
    /// The exporter's signature does not verify.
    #[error("the exporter's signature does not verify")]
    BadSignature,
    /// An author signature does not verify.
    #[error("entry {index}: the author signature does not verify")]
    BadAuthorSignature {
        /// The entry.
        index: u64,
    },
}

/// What a verified transcript shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Entries.
    pub count: u64,
    /// Exporter's address.
    pub exporter: String,
    /// Peer's address.
    pub peer: String,
    /// Entries by the exporter / by the peer.
    pub by_exporter: u64,
    /// Entries by the peer.
    pub by_peer: u64,
    /// Entries whose authorship is proven by the author's own signature,
    /// by the exporter and by the peer.
    pub proven_by_exporter: u64,
    /// As above, for the peer.
    pub proven_by_peer: u64,
}

fn entry_hash(
    prev: &[u8; 32],
    by_exporter: bool,
    id: &[u8; 16],
    at: i64,
    body: &[u8],
    sig: Option<&[u8; 64]>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ENTRY_LABEL);
    h.update(prev);
    h.update([u8::from(by_exporter)]);
    h.update(id);
    h.update(at.to_be_bytes());
    h.update((body.len() as u64).to_be_bytes());
    h.update(body);
    match sig {
        Some(s) => {
            h.update([1]);
            h.update(s);
        }
        None => h.update([0]),
    }
    h.finalize().into()
}

fn head_message(t: &TranscriptFile, head: &[u8; 32]) -> Vec<u8> {
    let mut m = HEAD_LABEL.to_vec();
    for part in [
        &t.exporter.address,
        &t.exporter.name,
        &t.peer.address,
        &t.peer.name,
    ] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part.as_bytes());
    }
    m.extend_from_slice(&t.exported_at_ms.to_be_bytes());
    m.extend_from_slice(&t.count.to_be_bytes());
    m.extend_from_slice(head);
    m
}

/// The readable fields of a body: kind, text, title, refers-to, attachments.
fn readable(body: &Body) -> (String, String, String, String, Vec<AttachmentDigest>) {
    let digests = |list: &[content::AttachmentPointer]| {
        list.iter()
            .map(|p| AttachmentDigest {
                file_name: p.file_name.clone(),
                media_type: p.media_type.clone(),
                size: p.size,
                digest: hex::encode(&p.digest),
            })
            .collect()
    };
    match body {
        Body::Text(t) => (
            "text".into(),
            t.body.clone(),
            String::new(),
            hex::encode(&t.reply_to),
            vec![],
        ),
        Body::HomeworkAssignment(a) => (
            "homework_assignment".into(),
            a.instructions.clone(),
            a.title.clone(),
            String::new(),
            digests(&a.attachments),
        ),
        Body::HomeworkSubmission(s) => (
            "homework_submission".into(),
            s.body.clone(),
            String::new(),
            hex::encode(&s.assignment_id),
            digests(&s.attachments),
        ),
        Body::Feedback(f) => (
            "feedback".into(),
            f.body.clone(),
            String::new(),
            hex::encode(&f.refers_to),
            vec![],
        ),
        Body::Attachment(p) => (
            "attachment".into(),
            String::new(),
            String::new(),
            String::new(),
            digests(std::slice::from_ref(p)),
        ),
        _ => (
            "other".into(),
            String::new(),
            String::new(),
            String::new(),
            vec![],
        ),
    }
}

fn party(identity: &PublicIdentity, name: &str) -> Party {
    Party {
        address: identity.address().to_string(),
        identity: hex::encode(identity.to_bytes()),
        name: name.to_string(),
    }
}

/// Builds and signs a transcript of `messages` (oldest first).
pub fn export(
    exporter: &IdentityKeyPair,
    exporter_name: &str,
    peer: &PublicIdentity,
    peer_name: &str,
    exported_at_ms: i64,
    messages: &[Recorded],
) -> TranscriptFile {
    let mut prev = [0u8; 32];
    let mut entries = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let Some(body) = m.content.body.as_ref() else {
            continue;
        };
        let Ok(id) = <[u8; 16]>::try_from(m.content.message_id.as_slice()) else {
            continue;
        };
        let canonical = content::canonical_body(body);
        let hash = entry_hash(
            &prev,
            m.by_exporter,
            &id,
            m.content.sent_at_ms,
            &canonical,
            m.author_signature.as_ref(),
        );
        let (kind, text, title, refers_to, attachments) = readable(body);
        entries.push(FileEntry {
            index: i as u64,
            from: if m.by_exporter { "exporter" } else { "peer" }.into(),
            message_id: hex::encode(id),
            sent_at_ms: m.content.sent_at_ms,
            kind,
            text,
            title,
            refers_to,
            attachments,
            body: B64.encode(&canonical),
            author_signature: m.author_signature.map(hex::encode),
            hash: hex::encode(hash),
        });
        prev = hash;
    }
    for (i, e) in entries.iter_mut().enumerate() {
        e.index = i as u64;
    }
    let mut file = TranscriptFile {
        format: FORMAT.into(),
        exporter: party(exporter.public(), exporter_name),
        peer: party(peer, peer_name),
        exported_at_ms,
        count: entries.len() as u64,
        entries,
        head: hex::encode(prev),
        signature: String::new(),
    };
    file.signature = hex::encode(exporter.sign(&head_message(&file, &prev)).to_bytes());
    file
}

fn identity_of(p: &Party, who: &str) -> Result<PublicIdentity, TranscriptError> {
    let bad = |what: &str| TranscriptError::Malformed(format!("{who}: {what}"));
    let bytes = hex::decode(&p.identity).map_err(|_| bad("identity is not hex"))?;
    let identity = PublicIdentity::from_bytes(&bytes).map_err(|_| bad("not an identity key"))?;
    if identity.address().to_string() != p.address {
        return Err(bad("the identity key does not hash to the address"));
    }
    Ok(identity)
}

fn fixed<const N: usize>(hex_text: &str, what: &str) -> Result<[u8; N], TranscriptError> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TranscriptError::Malformed(format!("{what} is not {N} bytes of hex")))
}

/// Verifies a transcript offline: the chain, the readable fields against
/// the signed bodies, the exporter's signature and every author
/// signature.
pub fn verify(t: &TranscriptFile) -> Result<Verified, TranscriptError> {
    if t.format != FORMAT {
        return Err(TranscriptError::Malformed(format!(
            "format {:?}, expected {FORMAT:?}",
            t.format
        )));
    }
    let exporter = identity_of(&t.exporter, "exporter")?;
    let peer = identity_of(&t.peer, "peer")?;
    let mut prev = [0u8; 32];
    let mut out = Verified {
        count: t.count,
        exporter: t.exporter.address.clone(),
        peer: t.peer.address.clone(),
        by_exporter: 0,
        by_peer: 0,
        proven_by_exporter: 0,
        proven_by_peer: 0,
    };
    for (i, e) in t.entries.iter().enumerate() {
        let index = i as u64;
        let by_exporter = match e.from.as_str() {
            "exporter" => true,
            "peer" => false,
            _ => return Err(TranscriptError::Malformed(format!("entry {i}: from"))),
        };
        let id: [u8; 16] = fixed(&e.message_id, "message_id")?;
        let canonical = B64
            .decode(&e.body)
            .map_err(|_| TranscriptError::Malformed(format!("entry {i}: body is not base64")))?;
        let signature = e
            .author_signature
            .as_deref()
            .map(|s| fixed::<64>(s, "author_signature"))
            .transpose()?;
        let hash = entry_hash(
            &prev,
            by_exporter,
            &id,
            e.sent_at_ms,
            &canonical,
            signature.as_ref(),
        );
        if e.index != index || fixed::<32>(&e.hash, "hash")? != hash {
            return Err(TranscriptError::BrokenChain { index });
        }
        // The canonical body: a Content holding only the body, attachment
        // keys cleared (so content::decode's key check does not apply).
        let mut content: Content = prost::Message::decode(canonical.as_slice())
            .map_err(|_| TranscriptError::Malformed(format!("entry {i}: body")))?;
        content.message_id = id.to_vec();
        content.sent_at_ms = e.sent_at_ms;
        let body = content
            .body
            .as_ref()
            .ok_or_else(|| TranscriptError::Malformed(format!("entry {i}: no body")))?;
        if content::canonical_body(body) != canonical {
            return Err(TranscriptError::Malformed(format!(
                "entry {i}: body is not in canonical form"
            )));
        }
        let (kind, text, title, refers_to, attachments) = readable(body);
        if (kind, text, title, refers_to, attachments)
            != (
                e.kind.clone(),
                e.text.clone(),
                e.title.clone(),
                e.refers_to.clone(),
                e.attachments.clone(),
            )
        {
            return Err(TranscriptError::AlteredText { index });
        }
        let (author, recipient) = if by_exporter {
            (&exporter, &peer)
        } else {
            (&peer, &exporter)
        };
        if let Some(sig) = &signature {
            if !verify_author(author, &recipient.address(), &content, sig) {
                return Err(TranscriptError::BadAuthorSignature { index });
            }
        }
        match (by_exporter, signature.is_some()) {
            (true, proven) => {
                out.by_exporter += 1;
                out.proven_by_exporter += u64::from(proven);
            }
            (false, proven) => {
                out.by_peer += 1;
                out.proven_by_peer += u64::from(proven);
            }
        }
        prev = hash;
    }
    if t.count != t.entries.len() as u64 || fixed::<32>(&t.head, "head")? != prev {
        return Err(TranscriptError::Truncated);
    }
    let sig: [u8; 64] = fixed(&t.signature, "signature")?;
    exporter
        .signing_key()
        .verify_strict(&head_message(t, &prev), &Signature::from_bytes(&sig))
        .map_err(|_| TranscriptError::BadSignature)?;
    Ok(out)
}
