//! Every record a profile stores, named in one place.
//!
//! | Name | Value | Written by |
//! |---|---|---|
//! | `check` | the profile format, `alcove profile v2` | [`crate::vault`] on creation |
//! | `identity` | the identity key pair's secret bytes | creation |
//! | `state` | [`ProfileState`]: relay URL, pinned server id, name, prekey counters | creation, prekeys |
//! | `contacts` | every contact record | contacts, inbound |
//! | `delivery` | this device's delivery key, whether it accepts anyone, whether the relay has the policy | creation, [`crate::delivery`] |
//! | `delivery-keys` | the delivery key each contact gave this device (address, key) | inbound, invites |
//! | `spk/<id>` | a signed prekey's secret (decimal id) | creation, rotation |
//! | `otk/<id>` | a one-time prekey's secret (10-digit id) | creation, replenishing |
//! | `basekeys/<spk id>` | X3DH base keys accepted under that signed prekey | inbound (deleted with the signed prekey) |
//! | `session/<HMAC(address)>` | a contact's sessions: current, archived, recently seen ids | outbound, inbound |
//! | `keylog/pin`, `keylog/head` | the pinned log key, the newest verified tree head | transparency |
//! | `keylog-epoch/<HMAC(address)>` | the highest key epoch seen for a contact | transparency |
//! | `invite/<HMAC(nonce)>` | an open invite: expiry and uses left | invites |
//! | `inbox/<event id>` | an event not yet confirmed by the app | inbound, outbound |
//! | `outbox/<sequence>` | a sealed envelope not yet accepted by the relay (u64 BE, in send order) | outbound |
//! | `resend/<envelope digest>` | a sent message kept for retry requests | outbound |
//! | `attachment/<blob id>` | a received attachment pointer | inbound |
//! | `own/credential` | this device's clinician credential, as presented | [`crate::credentials`] |
//! | `own/availability`, `own/auto-reply` | this device's office hours and notice, and its auto-reply text | [`crate::availability`] |
//! | `credential/<HMAC(address)>` | the credential a contact presented, the highest credential epoch and the revocations seen | credentials, inbound |
//! | `availability/<HMAC(address)>` | a contact's newest office hours and notice | availability, inbound |
//! | `auto-replied/<HMAC(address)>` | when this device last auto-replied to a contact (ms) | availability |
//! | `conversation/<HMAC(address)>` | a conversation's settings: verifiable records (mine, theirs), disappearing period, next history number | [`crate::history`] |
//! | `history/<HMAC(address)>/<n>` | a message either side wrote: when stored, and the entry sealed under its own key (u64 BE n) | outbound, inbound |
//! | `history-key/<HMAC(address)>/<n>` | the key of that entry, deleted with it (crypto-shredding) | outbound, inbound, history |
//!
//! No name contains a contact's address or an invite nonce: those are
//! replaced by an HMAC under a key derived from the storage key
//! ([`crate::vault::Vault::hashed_name`]). Blob ids and message ids are
//! random values the relay sees anyway; envelope digests are hashes of
//! ciphertext the relay stored.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) const CHECK: &[u8] = b"check";
pub(crate) const IDENTITY: &[u8] = b"identity";
pub(crate) const STATE: &[u8] = b"state";
pub(crate) const CONTACTS: &[u8] = b"contacts";
pub(crate) const DELIVERY: &[u8] = b"delivery";
pub(crate) const DELIVERY_KEYS: &[u8] = b"delivery-keys";
pub(crate) const KEYLOG_PIN: &[u8] = b"keylog/pin";
pub(crate) const KEYLOG_HEAD: &[u8] = b"keylog/head";
pub(crate) const INBOX: &[u8] = b"inbox/";
pub(crate) const OUTBOX: &[u8] = b"outbox/";
pub(crate) const RESEND: &[u8] = b"resend/";
pub(crate) const SPK: &[u8] = b"spk/";
pub(crate) const OTK: &[u8] = b"otk/";

/// Prefix of HMAC-named per-contact session records.
pub(crate) const SESSION: &str = "session";
/// Prefix of HMAC-named per-contact key epochs.
pub(crate) const KEYLOG_EPOCH: &str = "keylog-epoch";
/// Prefix of HMAC-named invite records.
pub(crate) const INVITE: &str = "invite";
/// Prefix of HMAC-named records of a contact's credential.
pub(crate) const CREDENTIAL: &str = "credential";
/// Prefix of HMAC-named records of a contact's availability.
pub(crate) const AVAILABILITY: &str = "availability";
/// Prefix of HMAC-named conversation settings.
pub(crate) const CONVERSATION: &str = "conversation";
/// Prefix of HMAC-named history entries.
pub(crate) const HISTORY: &str = "history";
/// Prefix of HMAC-named history entry keys.
pub(crate) const HISTORY_KEY: &str = "history-key";
/// Prefix of HMAC-named records of the last auto-reply to a contact.
pub(crate) const AUTO_REPLIED: &str = "auto-replied";
pub(crate) const OWN_CREDENTIAL: &[u8] = b"own/credential";
pub(crate) const OWN_AVAILABILITY: &[u8] = b"own/availability";
pub(crate) const AUTO_REPLY: &[u8] = b"own/auto-reply";

fn with(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut n = prefix.to_vec();
    n.extend_from_slice(tail);
    n
}

pub(crate) fn spk(id: u32) -> Vec<u8> {
    format!("spk/{id}").into_bytes()
}

pub(crate) fn base_keys(spk_id: u32) -> Vec<u8> {
    format!("basekeys/{spk_id}").into_bytes()
}

pub(crate) fn otk(id: u32) -> Vec<u8> {
    format!("otk/{id:010}").into_bytes()
}

pub(crate) fn inbox(event_id: &[u8; 16]) -> Vec<u8> {
    with(INBOX, event_id)
}

pub(crate) fn outbox(sequence: u64) -> Vec<u8> {
    with(OUTBOX, &sequence.to_be_bytes())
}

/// The sequence of an outbox record name.
pub(crate) fn outbox_sequence(name: &[u8]) -> u64 {
    name.get(OUTBOX.len()..)
        .and_then(|t| <[u8; 8]>::try_from(t).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub(crate) fn resend(digest: &[u8; 16]) -> Vec<u8> {
    with(RESEND, digest)
}

pub(crate) fn attachment(blob_id: &[u8]) -> Vec<u8> {
    with(b"attachment/", blob_id)
}

/// The profile's own settings and counters.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct ProfileState {
    pub relay_url: String,
    /// The relay's server id, pinned at registration.
    pub server_id: String,
    pub name: String,
    pub next_prekey_id: u32,
    pub signed_prekey_id: u32,
    /// The current signed prekey has not reached the relay yet.
    pub signed_prekey_unpublished: bool,
    /// One-time prekeys `[first, end)` generated but not uploaded yet.
    pub unpublished_prekeys: Option<(u32, u32)>,
    /// The UTC day (days since the epoch) of `prekeys_generated_today`.
    pub prekey_day: u64,
    pub prekeys_generated_today: u32,
}

/// Encodes a record value. Encoding plain structs cannot fail in practice;
/// if it ever does, the write is refused rather than an empty record
/// stored.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Storage(format!("encoding a record: {e}")))
}

/// Decodes a record value; a record that opened but does not decode is a
/// damaged profile.
pub(crate) fn decode<T: for<'a> Deserialize<'a>>(what: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|_| Error::ProfileCorrupt(format!("{what} record")))
}
