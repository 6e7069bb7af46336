//! A conversation's history on the device, disappearing messages and
//! verifiable transcripts (docs/therapy.md).
//!
//! Every message a person wrote (text, homework, submissions, feedback,
//! documents), sent or received, is kept in the profile, each under a key
//! of its own in a separate record (both inside the profile's encryption).
//! Disappearing messages delete an entry and its key together once the
//! conversation's period has passed (crypto-shredding: a copy of the entry
//! left in the storage engine's old pages no longer opens even with the
//! storage key). Either side sets the period; both are told.
//!
//! Verifiable records are opt-in per conversation and per side: while a
//! side has them on, its device signs each message it writes, so a
//! transcript proves that side's authorship to anyone. The other side is
//! told. A transcript ([`Client::export_transcript`]) is a hash chain the
//! exporting device signs; `alcove-audit transcript` verifies it offline.

use std::time::Duration;

use alcove_protocol::content::{self, Body, Content, MessageId};
use alcove_protocol::transcript::{self, Recorded, TranscriptFile};
use alcove_protocol::PublicIdentity;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::records;
use crate::{Client, DeviceAddress};

/// Who wrote a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This device.
    Sent,
    /// The contact.
    Received,
}

/// One message of a conversation, as this device keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// Who wrote it.
    pub direction: Direction,
    /// Its id.
    pub id: MessageId,
    /// The author's clock when written, ms since the Unix epoch.
    pub sent_at_ms: i64,
    /// What it says.
    pub body: Body,
    /// Whether it carries its author's signature (verifiable records).
    pub author_signed: bool,
}

/// Per-conversation settings.
#[derive(Serialize, Deserialize, Default, Clone)]
pub(crate) struct Conversation {
    /// This device signs what it writes here.
    pub sign_mine: bool,
    /// The contact said it signs what it writes.
    pub theirs_signed: bool,
    /// Disappearing messages after this many seconds (0: off).
    pub retention_secs: u64,
    /// The next history sequence number.
    pub next_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    stored_at_ms: i64,
    nonce: [u8; 24],
    sealed: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Plain {
    sent: bool,
    content: Vec<u8>,
    author_signature: Option<Vec<u8>>,
}

impl Drop for Plain {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.content);
    }
}

fn seq_name(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut n = prefix.to_vec();
    n.push(b'/');
    n.extend_from_slice(&seq.to_be_bytes());
    n
}

impl Client {
    pub(crate) fn conversation(&self, address: &[u8; 32]) -> Result<Conversation> {
        match self
            .vault
            .get(&self.vault.hashed_name(records::CONVERSATION, address))?
        {
            Some(v) => records::decode("conversation", &v),
            None => Ok(Conversation::default()),
        }
    }

    pub(crate) fn conversation_record(
        &self,
        address: &[u8; 32],
        c: &Conversation,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            self.vault.hashed_name(records::CONVERSATION, address),
            records::encode(c)?,
        ))
    }

    /// The records that add `content` to the history with `address`
    /// (and the conversation record with its next sequence number), for
    /// the caller's commit; `conversation` is updated in place.
    pub(crate) fn history_records(
        &self,
        address: &[u8; 32],
        conversation: &mut Conversation,
        sent: bool,
        content: &Content,
        author_signature: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let seq = conversation.next_seq;
        conversation.next_seq += 1;
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = Plain {
            sent,
            content: content::encode(content),
            author_signature: author_signature.map(<[u8]>::to_vec),
        };
        let bytes = Zeroizing::new(records::encode(&plain)?);
        let sealed = XChaCha20Poly1305::new(key.as_ref().into())
            .encrypt(XNonce::from_slice(&nonce), bytes.as_slice())
            .map_err(|_| Error::Storage("sealing a history entry".into()))?;
        let entry = StoredEntry {
            stored_at_ms: self.now_ms(),
            nonce,
            sealed,
        };
        Ok(vec![
            (
                seq_name(&self.vault.hashed_name(records::HISTORY, address), seq),
                records::encode(&entry)?,
            ),
            (
                seq_name(&self.vault.hashed_name(records::HISTORY_KEY, address), seq),
                key.to_vec(),
            ),
            self.conversation_record(address, conversation)?,
        ])
    }

    /// Every entry of the history with `address`: (sequence, stored at,
    /// the entry opened if `open`; `None` also when its key is gone).
    fn entries(&self, address: &[u8; 32], open: bool) -> Result<Vec<(u64, i64, Option<Plain>)>> {
        let prefix = seq_name(&self.vault.hashed_name(records::HISTORY, address), 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut out = Vec::new();
        for (name, value) in self.vault.scan(prefix)? {
            let seq = name
                .get(prefix.len()..)
                .and_then(|t| <[u8; 8]>::try_from(t).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::ProfileCorrupt("a history record's name".into()))?;
            let entry: StoredEntry = records::decode("history", &value)?;
            if !open {
                out.push((seq, entry.stored_at_ms, None));
                continue;
            }
            let key_name = seq_name(&self.vault.hashed_name(records::HISTORY_KEY, address), seq);
            let plain = match self.vault.get(&key_name)? {
                None => None,
                Some(key) if key.len() == 32 => {
                    let opened = Zeroizing::new(
                        XChaCha20Poly1305::new(key.as_slice().into())
                            .decrypt(XNonce::from_slice(&entry.nonce), entry.sealed.as_slice())
                            .map_err(|_| Error::ProfileCorrupt("a history entry".into()))?,
                    );
                    Some(records::decode::<Plain>("history entry", &opened)?)
                }
                Some(_) => return Err(Error::ProfileCorrupt("a history key".into())),
            };
            out.push((seq, entry.stored_at_ms, plain));
        }
        Ok(out)
    }

    /// The conversation with `contact`, oldest first: every message either
    /// side wrote that this device still keeps (disappearing messages
    /// past their period are deleted first).
    pub async fn history(&self, contact: &DeviceAddress) -> Result<Vec<HistoryItem>> {
        let address = *contact.as_bytes();
        self.core.lock().await.contact(&address)?;
        self.expire_history().await?;
        let mut out = Vec::new();
        for (_, _, plain) in self.entries(&address, true)? {
            let Some(plain) = plain else { continue };
            let c = content::decode(&plain.content)
                .map_err(|_| Error::ProfileCorrupt("a history entry's content".into()))?;
            let (Some(id), Some(body)) = (MessageId::from_slice(&c.message_id), c.body) else {
                continue;
            };
            out.push(HistoryItem {
                direction: if plain.sent {
                    Direction::Sent
                } else {
                    Direction::Received
                },
                id,
                sent_at_ms: c.sent_at_ms,
                body,
                author_signed: plain.author_signature.is_some(),
            });
        }
        Ok(out)
    }

    /// Deletes, in every conversation with disappearing messages, the
    /// entries (with their keys) and the kept copies for resending that
    /// are older than its period.
    pub(crate) async fn expire_history(&self) -> Result<()> {
        let core = self.core.lock().await;
        let now = self.now_ms();
        let mut removes = Vec::new();
        for address in core.contacts.keys() {
            let c = self.conversation(address)?;
            if c.retention_secs == 0 {
                continue;
            }
            let cutoff =
                now.saturating_sub(i64::try_from(c.retention_secs * 1000).unwrap_or(i64::MAX));
            let history = self.vault.hashed_name(records::HISTORY, address);
            let keys = self.vault.hashed_name(records::HISTORY_KEY, address);
            for (seq, stored_at, _) in self.entries(address, false)? {
                if stored_at < cutoff {
                    removes.push(seq_name(&history, seq));
                    removes.push(seq_name(&keys, seq));
                }
            }
            removes.extend(self.resend_entries_before(address, cutoff)?);
        }
        if !removes.is_empty() {
            self.vault.commit(vec![], &removes)?;
        }
        Ok(())
    }

    /// Applies a conversation setting the contact sent (verifiable records,
    /// disappearing messages); the records to commit.
    pub(crate) fn contact_setting(
        &self,
        from: &[u8; 32],
        body: &Body,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut c = self.conversation(from)?;
        match body {
            Body::RecordSigning(r) => c.theirs_signed = r.enabled,
            Body::Retention(r) => c.retention_secs = r.seconds,
            _ => return Ok(None),
        }
        self.conversation_record(from, &c).map(Some)
    }

    /// Turns verifiable records on or off for what this device writes to
    /// `contact`, and tells the contact (they see it as a
    /// [`Body::RecordSigning`] message). While on, each message this
    /// device writes there carries its identity signature, so a transcript
    /// proves to anyone that this device wrote it: that gives up
    /// deniability for those messages.
    pub async fn set_verifiable_records(
        &self,
        contact: &DeviceAddress,
        enabled: bool,
    ) -> Result<()> {
        self.change_conversation(
            contact,
            |c| c.sign_mine = enabled,
            Body::RecordSigning(content::RecordSigning { enabled }),
        )
        .await
    }

    /// Whether this device, and the contact, sign what they write in this
    /// conversation: `(mine, theirs)`.
    pub async fn verifiable_records(&self, contact: &DeviceAddress) -> Result<(bool, bool)> {
        self.core.lock().await.contact(contact.as_bytes())?;
        let c = self.conversation(contact.as_bytes())?;
        Ok((c.sign_mine, c.theirs_signed))
    }

    /// Sets disappearing messages for the conversation with `contact`
    /// (`None`: off; otherwise 1 hour to 5 years) and tells the contact,
    /// whose device applies the same period (they see a
    /// [`Body::Retention`] message). Each device deletes a message, and its
    /// key, that long after it sent or received it.
    pub async fn set_disappearing(
        &self,
        contact: &DeviceAddress,
        after: Option<Duration>,
    ) -> Result<()> {
        let seconds = after.map_or(0, |d| d.as_secs());
        self.change_conversation(
            contact,
            |c| c.retention_secs = seconds,
            Body::Retention(content::Retention { seconds }),
        )
        .await?;
        self.expire_history().await
    }

    /// The disappearing-message period of the conversation, if any.
    pub async fn disappearing(&self, contact: &DeviceAddress) -> Result<Option<Duration>> {
        self.core.lock().await.contact(contact.as_bytes())?;
        let secs = self.conversation(contact.as_bytes())?.retention_secs;
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }

    async fn change_conversation(
        &self,
        contact: &DeviceAddress,
        change: impl FnOnce(&mut Conversation),
        tell: Body,
    ) -> Result<()> {
        let address = *contact.as_bytes();
        let mut core = self.core.lock().await;
        core.contact(&address)?;
        // Validate before anything is stored.
        content::validate(&Content {
            message_id: vec![0; 16],
            body: Some(tell.clone()),
            ..Default::default()
        })?;
        let mut c = self.conversation(&address)?;
        change(&mut c);
        self.vault
            .commit(vec![self.conversation_record(&address, &c)?], &[])?;
        match self.send_body(&mut core, &address, None, tell, false).await {
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Exports the conversation with `contact` as a signed, hash-chained
    /// transcript for the clinical record ([`TranscriptFile`], JSON with
    /// serde). Anyone can verify it offline (`alcove-audit transcript`);
    /// it proves what this device recorded, and who wrote each message
    /// only where its author had verifiable records on.
    pub async fn export_transcript(&self, contact: &DeviceAddress) -> Result<TranscriptFile> {
        let address = *contact.as_bytes();
        let (peer, peer_name, own_name) = {
            let core = self.core.lock().await;
            let c = core.contact(&address)?;
            let peer = PublicIdentity::from_bytes(&c.identity)
                .map_err(|_| Error::ProfileCorrupt("a contact's identity".into()))?;
            (peer, c.name.clone(), core.state.name.clone())
        };
        self.expire_history().await?;
        let mut messages = Vec::new();
        for (_, _, plain) in self.entries(&address, true)? {
            let Some(plain) = plain else { continue };
            let content = content::decode(&plain.content)
                .map_err(|_| Error::ProfileCorrupt("a history entry's content".into()))?;
            messages.push(Recorded {
                by_exporter: plain.sent,
                author_signature: plain
                    .author_signature
                    .as_deref()
                    .and_then(|s| <[u8; 64]>::try_from(s).ok()),
                content,
            });
        }
        Ok(transcript::export(
            &self.identity,
            &own_name,
            &peer,
            &peer_name,
            self.now_ms(),
            &messages,
        ))
    }
}
