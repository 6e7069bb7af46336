//! What the page sees: plain objects (camelCase fields, a `type` tag on
//! events), with their TypeScript declarations below. Ids are hex, device
//! addresses base64url, as in the CLI and the native bindings.

use alcove_client as sdk;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A contact: `safetyNumber` is compared out of band, then `markVerified`. */
export interface Contact {
  address: string;
  name: string;
  safetyNumber: string;
  verified: boolean;
  keyChanged: boolean;
}

/** A pointer to an encrypted document on the relay. It holds the key:
 * send it only inside messages, never log it. */
export interface Attachment {
  blobId: string;
  key: Uint8Array;
  digest: Uint8Array;
  size: number;
  mediaType: string;
  fileName: string;
}

/** What a message or notice says. */
export type Body =
  | { type: "text"; body: string; replyTo?: string }
  | { type: "homeworkAssignment"; title: string; instructions: string; dueDate?: string; attachments: Attachment[] }
  | { type: "homeworkSubmission"; assignmentId: string; body: string; attachments: Attachment[] }
  | { type: "feedback"; refersTo: string; body: string }
  | { type: "document"; attachment: Attachment }
  | { type: "readReceipt"; messageIds: string[] }
  | { type: "deliveryReceipt"; messageIds: string[] }
  | { type: "inviteAccepted"; displayName: string }
  | { type: "verifiableRecords"; enabled: boolean }
  | { type: "disappearing"; seconds: number }
  | { type: "outOfHours"; crisisText: string; replyWithinHours: number; nextOpeningMs?: number }
  | { type: "sessionReset"; reason: string }
  | { type: "resent"; messageId: string }
  | { type: "deliveryFailed"; messageId?: string; reason: string }
  | { type: "undecryptable"; reason: string }
  | { type: "inviteRefused"; reason: string }
  | { type: "groupChanged"; group: string; title: string; epoch: number; added: string[]; removed: string[]; removedMe: boolean }
  | { type: "other" };

/** Something that happened. Confirm it (`confirm(eventId)`) once the app
 * has stored or shown it; unconfirmed events come back from
 * `pendingEvents()` after a reload. */
export interface AlcoveEvent {
  eventId: string;
  messageId?: string;
  contact: string;
  contactName: string;
  atMs: number;
  group?: string;
  body: Body;
}

/** One message of a conversation, oldest first. */
export interface HistoryItem {
  direction: "sent" | "received";
  id: string;
  sentAtMs: number;
  authorSigned: boolean;
  body: Body;
}

/** A failed call: `code` names the case, `retryable` says whether the
 * same call may succeed later (the relay was unreachable, say). */
export interface AlcoveError extends Error {
  code: "offline" | "notAuthorized" | "storageLocked" | "storage" | "contactKeyChanged"
      | "verificationFailed" | "limitExceeded" | "invalidInput";
  retryable: boolean;
}
"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    address: String,
    name: String,
    safety_number: String,
    verified: bool,
    key_changed: bool,
}

impl From<sdk::Contact> for Contact {
    fn from(c: sdk::Contact) -> Self {
        Self {
            address: c.address.to_string(),
            name: c.name,
            safety_number: c.safety_number,
            verified: c.verified,
            key_changed: c.key_changed,
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    blob_id: String,
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    digest: Vec<u8>,
    size: u64,
    media_type: String,
    file_name: String,
}

impl From<&sdk::AttachmentPointer> for Attachment {
    fn from(p: &sdk::AttachmentPointer) -> Self {
        Self {
            blob_id: hex::encode(&p.blob_id),
            key: p.key.clone(),
            digest: p.digest.clone(),
            size: p.size,
            media_type: p.media_type.clone(),
            file_name: p.file_name.clone(),
        }
    }
}

impl Attachment {
    pub fn to_pointer(&self) -> Result<sdk::AttachmentPointer, String> {
        Ok(sdk::AttachmentPointer {
            blob_id: hex::decode(&self.blob_id)
                .map_err(|_| format!("not a blob id (hex): {:?}", self.blob_id))?,
            key: self.key.clone(),
            digest: self.digest.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
            file_name: self.file_name.clone(),
        })
    }
}

#[derive(Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Body {
    Text {
        body: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    HomeworkAssignment {
        title: String,
        instructions: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        due_date: Option<String>,
        attachments: Vec<Attachment>,
    },
    HomeworkSubmission {
        assignment_id: String,
        body: String,
        attachments: Vec<Attachment>,
    },
    Feedback {
        refers_to: String,
        body: String,
    },
    Document {
        attachment: Attachment,
    },
    ReadReceipt {
        message_ids: Vec<String>,
    },
    DeliveryReceipt {
        message_ids: Vec<String>,
    },
    InviteAccepted {
        display_name: String,
    },
    VerifiableRecords {
        enabled: bool,
    },
    Disappearing {
        seconds: u64,
    },
    OutOfHours {
        crisis_text: String,
        reply_within_hours: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_opening_ms: Option<i64>,
    },
    SessionReset {
        reason: String,
    },
    Resent {
        message_id: String,
    },
    DeliveryFailed {
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        reason: String,
    },
    Undecryptable {
        reason: String,
    },
    InviteRefused {
        reason: String,
    },
    GroupChanged {
        group: String,
        title: String,
        epoch: u64,
        added: Vec<String>,
        removed: Vec<String>,
        removed_me: bool,
    },
    /// A body the SDK handles itself (never shown to the app as a
    /// message).
    Other,
}

fn hexes(ids: &[Vec<u8>]) -> Vec<String> {
    ids.iter().map(hex::encode).collect()
}

impl From<sdk::Body> for Body {
    fn from(body: sdk::Body) -> Self {
        use sdk::Body as B;
        match body {
            B::Text(t) => Body::Text {
                reply_to: (!t.reply_to.is_empty()).then(|| hex::encode(&t.reply_to)),
                body: t.body,
            },
            B::HomeworkAssignment(a) => Body::HomeworkAssignment {
                title: a.title,
                instructions: a.instructions,
                due_date: (!a.due_date.is_empty()).then_some(a.due_date),
                attachments: a.attachments.iter().map(Attachment::from).collect(),
            },
            B::HomeworkSubmission(s) => Body::HomeworkSubmission {
                assignment_id: hex::encode(&s.assignment_id),
                body: s.body,
                attachments: s.attachments.iter().map(Attachment::from).collect(),
            },
            B::Feedback(f) => Body::Feedback {
                refers_to: hex::encode(&f.refers_to),
                body: f.body,
            },
            B::Attachment(a) => Body::Document {
                attachment: Attachment::from(&a),
            },
            B::ReadReceipt(r) => Body::ReadReceipt {
                message_ids: hexes(&r.message_ids),
            },
            B::DeliveryReceipt(r) => Body::DeliveryReceipt {
                message_ids: hexes(&r.message_ids),
            },
            B::InviteAccepted(i) => Body::InviteAccepted {
                display_name: i.display_name,
            },
            B::RecordSigning(r) => Body::VerifiableRecords { enabled: r.enabled },
            B::Retention(r) => Body::Disappearing { seconds: r.seconds },
            _ => Body::Other,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    contact: String,
    contact_name: String,
    at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    body: Body,
}

impl From<sdk::Event> for Event {
    fn from(e: sdk::Event) -> Self {
        use sdk::EventKind as K;
        let message_id = e.message_id().map(|i| i.to_hex());
        let body = match e.kind {
            K::Message { body, .. } => body.into(),
            K::SessionReset { reason } => Body::SessionReset { reason },
            K::Resent { id } => Body::Resent {
                message_id: id.to_hex(),
            },
            K::DeliveryFailed { id, reason } => Body::DeliveryFailed {
                message_id: id.map(|i| i.to_hex()),
                reason,
            },
            K::Undecryptable { reason } => Body::Undecryptable { reason },
            K::InviteRefused { reason } => Body::InviteRefused { reason },
            K::GroupChanged(c) => Body::GroupChanged {
                group: c.group.to_hex(),
                title: c.title,
                epoch: c.epoch,
                added: c.added.iter().map(|a| a.to_string()).collect(),
                removed: c.removed.iter().map(|a| a.to_string()).collect(),
                removed_me: c.removed_me,
            },
            K::OutOfHours(n) => Body::OutOfHours {
                crisis_text: n.crisis_text,
                reply_within_hours: n.reply_within_hours,
                next_opening_ms: n.next_opening_ms,
            },
        };
        Self {
            event_id: hex::encode(e.event_id.0),
            message_id,
            contact: e.contact.to_string(),
            contact_name: e.contact_name,
            at_ms: e.at_ms,
            group: e.group.map(|g| g.to_hex()),
            body,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    direction: &'static str,
    id: String,
    sent_at_ms: i64,
    author_signed: bool,
    body: Body,
}

impl From<sdk::HistoryItem> for HistoryItem {
    fn from(h: sdk::HistoryItem) -> Self {
        Self {
            direction: match h.direction {
                sdk::Direction::Sent => "sent",
                sdk::Direction::Received => "received",
            },
            id: h.id.to_hex(),
            sent_at_ms: h.sent_at_ms,
            author_signed: h.author_signed,
            body: h.body.into(),
        }
    }
}
