//! Sending: content is sealed, saved to the outbox with the session change
//! in one write, then handed to the relay. The outbox is retried by
//! [`Client::sync`] in send order; an entry that can never be delivered is
//! removed and reported as [`EventKind::DeliveryFailed`], so it never
//! blocks later messages or receiving.
//!
//! Sent messages are also kept, encrypted like every record, in a bounded
//! resend store for [`RESEND_WINDOW`]: when the recipient cannot decrypt
//! one and asks for it again (a retry request), it is sealed again on a
//! fresh session.

use std::collections::HashSet;
use std::time::Duration;

use alcove_protocol::content::{self, envelope_digest, Body, Content, MessageId};
use alcove_protocol::group::GroupId;
use alcove_protocol::{sealed_sender, x3dh, PublicIdentity, Session, SessionError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::records;
use crate::sessions::{SessionSet, Slot};
use crate::{AttachmentPointer, Client, Core, DeviceAddress, Event, EventId, EventKind};
use crate::{Feedback, HomeworkAssignment, HomeworkSubmission, ReadReceipt, Text};

/// How long sent messages are kept for retry requests.
pub const RESEND_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most messages kept for retry requests (the oldest go first).
const MAX_RESEND_ENTRIES: usize = 1_000;
/// Messages larger than this (encoded content) are not kept for resending.
const MAX_RESEND_BYTES: usize = 256 << 10;
/// How often one message is sent again on request.
const MAX_RESENDS: u32 = 2;
/// How often a queued message is tried against a busy relay or a full
/// mailbox before it is given up (and reported), provided it has also
/// waited [`MIN_GIVE_UP_AGE`].
pub const MAX_DELIVERY_ATTEMPTS: u32 = 20;
const MIN_GIVE_UP_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often the resend store is pruned at most.
const PRUNE_INTERVAL_MS: i64 = 3_600_000;

#[derive(Serialize, Deserialize)]
pub(crate) struct OutboxEntry {
    recipient: [u8; 32],
    /// The content's id (what the app knows the message by).
    message_id: [u8; 16],
    /// The relay's idempotency key: fresh for every sealing, so a message
    /// sent again after a retry request is not taken for a duplicate.
    relay_id: [u8; 16],
    envelope: Vec<u8>,
    first_try_ms: i64,
    attempts: u32,
}

#[derive(Serialize, Deserialize)]
struct ResendEntry {
    recipient: [u8; 32],
    message_id: [u8; 16],
    content: Vec<u8>,
    sent_at_ms: i64,
    resends: u32,
}

impl Drop for ResendEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.content);
    }
}

/// What one delivery attempt came to.
enum Outcome {
    Sent,
    /// The relay cannot be used now (offline, login refused): stop.
    Stop(Error),
    /// Transient refusal (busy, mailbox full): try again later.
    Hold(Error),
    /// The relay will never take it.
    Failed(Error),
}

impl Client {
    /// Sends a text message. Returns its id (for replies and receipts).
    pub async fn send_text(&self, to: &DeviceAddress, text: &str) -> Result<MessageId> {
        self.send(
            to,
            Body::Text(Text {
                body: text.to_string(),
                reply_to: vec![],
            }),
        )
        .await
    }

    /// Assigns homework.
    pub async fn assign_homework(
        &self,
        to: &DeviceAddress,
        title: &str,
        instructions: &str,
        due_date: Option<&str>,
        attachments: Vec<AttachmentPointer>,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::HomeworkAssignment(HomeworkAssignment {
                title: title.to_string(),
                instructions: instructions.to_string(),
                due_date: due_date.unwrap_or_default().to_string(),
                attachments,
                ..Default::default()
            }),
        )
        .await
    }

    /// Hands in homework for the assignment `assignment`.
    pub async fn submit_homework(
        &self,
        to: &DeviceAddress,
        assignment: &MessageId,
        answer: &str,
        attachments: Vec<AttachmentPointer>,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::HomeworkSubmission(HomeworkSubmission {
                assignment_id: assignment.0.to_vec(),
                body: answer.to_string(),
                attachments,
            }),
        )
        .await
    }

    /// Sends feedback on a submission (or any message).
    pub async fn send_feedback(
        &self,
        to: &DeviceAddress,
        refers_to: &MessageId,
        text: &str,
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::Feedback(Feedback {
                refers_to: refers_to.0.to_vec(),
                body: text.to_string(),
            }),
        )
        .await
    }

    /// Tells the sender their messages were read.
    pub async fn send_read_receipt(
        &self,
        to: &DeviceAddress,
        ids: &[MessageId],
    ) -> Result<MessageId> {
        self.send(
            to,
            Body::ReadReceipt(ReadReceipt {
                message_ids: ids.iter().map(|i| i.0.to_vec()).collect(),
            }),
        )
        .await
    }

    /// Sends an attachment pointer (from [`Client::upload_file`]) on its own.
    pub async fn send_attachment(
        &self,
        to: &DeviceAddress,
        pointer: AttachmentPointer,
    ) -> Result<MessageId> {
        self.send(to, Body::Attachment(pointer)).await
    }

    /// Sends any content body.
    ///
    /// Returns once the relay accepted the message. Errors:
    /// - [`Error::LimitExceeded`]: larger than the relay accepts; nothing
    ///   was queued.
    /// - [`Error::Offline`] / [`Error::Busy`]: the message is queued and
    ///   [`Client::sync`] delivers it later; do not send it again.
    /// - [`Error::UnknownContact`], [`Error::ContactKeyChanged`],
    ///   [`Error::InvalidInput`]: nothing was queued.
    ///
    /// Writing to a clinician outside their office hours also puts an
    /// [`EventKind::OutOfHours`] notice in the inbox (see
    /// [`Client::out_of_hours_notice`]).
    pub async fn send(&self, to: &DeviceAddress, body: Body) -> Result<MessageId> {
        let result = {
            let mut core = self.core.lock().await;
            self.send_body(&mut core, to.as_bytes(), None, body.clone(), false)
                .await
        };
        if matches!(
            &result,
            Ok(_) | Err(Error::Offline(_)) | Err(Error::Busy(_))
        ) {
            self.notice_after_send(to, &body).await?;
        }
        result
    }

    /// Seals `body` for `to` (on `fresh` if given, which becomes the
    /// current session) and delivers it. `control` messages (retry
    /// requests and their answers) are not kept for resending.
    pub(crate) async fn send_body(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        fresh: Option<Session>,
        body: Body,
        control: bool,
    ) -> Result<MessageId> {
        self.send_body_in(core, to, fresh, body, control, None)
            .await
    }

    /// [`Client::send_body`] for a message that belongs to a group
    /// conversation (sent to one member over the pairwise session).
    pub(crate) async fn send_body_in(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        fresh: Option<Session>,
        body: Body,
        control: bool,
        group: Option<&GroupId>,
    ) -> Result<MessageId> {
        let id = MessageId::random(&mut rand::rngs::OsRng);
        // Group-tagged messages are not part of the one-to-one history.
        let written = !control && group.is_none() && content::is_written(&body);
        let mut message = Content {
            message_id: id.0.to_vec(),
            sent_at_ms: self.now_ms(),
            delivery_key: core.own_key_bytes(),
            author_signature: Vec::new(),
            group_id: group.map(|g| g.0.to_vec()).unwrap_or_default(),
            body: Some(body),
        };
        content::validate(&message)?;
        // What a person wrote goes into the history, in the same write as
        // the outbox entry, signed when verifiable records are on.
        let mut extra = Vec::new();
        if written {
            let mut conversation = self.conversation(to)?;
            if conversation.sign_mine {
                let recipient = alcove_protocol::DeviceAddress::from_bytes(to)
                    .map_err(|e| Error::InvalidInput(e.to_string()))?;
                if let Some(sig) =
                    alcove_protocol::transcript::sign_author(&self.identity, &recipient, &message)
                {
                    message.author_signature = sig.to_vec();
                }
            }
            let signature = (!message.author_signature.is_empty())
                .then_some(message.author_signature.as_slice());
            extra = self.history_records(to, &mut conversation, true, &message, signature)?;
        }
        let plaintext = Zeroizing::new(content::encode(&message));
        self.seal_and_send(core, to, fresh, &plaintext, id, !control, 0, extra)
            .await?;
        Ok(id)
    }

    /// Starts a session with a contact from a freshly verified bundle. A
    /// bundle whose identity differs from the contact's records a pending
    /// key change and fails with [`Error::ContactKeyChanged`].
    pub(crate) async fn start_session(&self, core: &mut Core, to: &[u8; 32]) -> Result<Session> {
        let bundle = self.fetch_bundle(to, core.access_key(to)).await?;
        let contact = core.contact_mut(to)?;
        if bundle.identity().to_bytes().as_slice() != contact.identity.as_slice() {
            contact.pending_identity = Some(bundle.identity().to_bytes().to_vec());
            self.vault.commit(vec![core.contacts_record()?], &[])?;
            return Err(Error::ContactKeyChanged);
        }
        x3dh::initiate(&mut rand::rngs::OsRng, &self.identity, &bundle)
            .map_err(|e| Error::VerificationFailed(e.to_string()))
    }

    pub(crate) fn load_sessions(&self, address: &[u8; 32]) -> Result<SessionSet> {
        match self
            .vault
            .get(&self.vault.hashed_name(records::SESSION, address))?
        {
            Some(bytes) => records::decode("session", &bytes),
            None => Ok(SessionSet::default()),
        }
    }

    pub(crate) fn sessions_record(
        &self,
        address: &[u8; 32],
        set: &SessionSet,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            self.vault.hashed_name(records::SESSION, address),
            records::encode(set)?,
        ))
    }

    /// Encrypts `plaintext` (encoded content) for `to`, saves the session,
    /// the outbox entry (and, if `keep`, a resend entry) with `extra` in
    /// one write, then delivers it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn seal_and_send(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        fresh: Option<Session>,
        plaintext: &[u8],
        id: MessageId,
        keep: bool,
        resends: u32,
        extra: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let contact = core.contact(to)?.clone();
        if contact.pending_identity.is_some() {
            return Err(Error::ContactKeyChanged);
        }
        let recipient = PublicIdentity::from_bytes(&contact.identity)
            .map_err(|_| Error::ProfileCorrupt("a contact's identity".into()))?;
        let mut set = self.load_sessions(to)?;
        let (mut session, mut is_new) = match fresh {
            Some(s) => (s, true),
            None => match set.current()? {
                Some(s) => (s, false),
                None => (self.start_session(core, to).await?, true),
            },
        };
        let mut rng = rand::rngs::OsRng;
        let wire = match session.encrypt(&mut rng, plaintext) {
            Err(SessionError::ChainExhausted) if !is_new => {
                session = self.start_session(core, to).await?;
                is_new = true;
                session.encrypt(&mut rng, plaintext)?
            }
            other => other?,
        };
        let envelope = sealed_sender::seal(&mut rng, &self.identity, &recipient, &wire)?;
        self.check_size(envelope.len()).await?;
        if is_new {
            set.install(&session);
        } else {
            set.update(Slot::Current, &session);
        }
        let mut puts = extra;
        puts.push(self.sessions_record(to, &set)?);
        let kept = (keep && plaintext.len() <= MAX_RESEND_BYTES).then_some((plaintext, resends));
        self.deliver_envelope(core, to, envelope, id, puts, kept)
            .await
    }

    /// Saves `envelope` (sealed for `to`) to the outbox with `puts` in one
    /// write, and a resend entry if `kept` gives the plaintext, then hands
    /// it to the relay after any earlier queued messages. Used for
    /// one-to-one messages and for each member's copy of a group message.
    pub(crate) async fn deliver_envelope(
        &self,
        core: &mut Core,
        to: &[u8; 32],
        envelope: Vec<u8>,
        id: MessageId,
        mut puts: Vec<(Vec<u8>, Vec<u8>)>,
        kept: Option<(&[u8], u32)>,
    ) -> Result<()> {
        let mut rng = rand::rngs::OsRng;
        let now = self.now_ms();
        let mut relay_id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rng, &mut relay_id);
        let entry = OutboxEntry {
            recipient: *to,
            message_id: id.0,
            relay_id,
            envelope,
            first_try_ms: now,
            attempts: 0,
        };
        let sequence = self.next_outbox_sequence();
        puts.push((records::outbox(sequence), records::encode(&entry)?));
        puts.push(core.contacts_record()?);
        if let Some((plaintext, resends)) = kept {
            let kept = ResendEntry {
                recipient: *to,
                message_id: id.0,
                content: plaintext.to_vec(),
                sent_at_ms: now,
                resends,
            };
            puts.push((
                records::resend(&envelope_digest(&entry.envelope)),
                records::encode(&kept)?,
            ));
        }
        // The session and the envelope are saved before anything leaves
        // the device: a crash can then only lead to a retry of the same
        // bytes.
        self.vault.commit(puts, &[])?;
        let earlier = self
            .vault
            .names(records::OUTBOX)?
            .iter()
            .any(|n| records::outbox_sequence(n) < sequence);
        if earlier {
            // Messages queued before this one go first, in order: the
            // outbox delivers them, and this one after them (or holds it
            // behind a held message to the same contact).
            self.flush_locked(core).await?;
            if self.vault.get(&records::outbox(sequence))?.is_some() {
                return Err(Error::Busy(
                    "queued behind earlier messages to this contact; sync delivers them in order"
                        .into(),
                ));
            }
            let failed = self.notices_about(id);
            return match failed {
                Some(reason) => Err(Error::LimitExceeded(reason)),
                None => Ok(()),
            };
        }
        match self.attempt(&entry, core.access_key(to)).await {
            Outcome::Sent => self.vault.commit(vec![], &[records::outbox(sequence)]),
            Outcome::Stop(e) => Err(e),
            Outcome::Hold(e) => {
                let entry = OutboxEntry {
                    attempts: 1,
                    ..entry
                };
                self.vault.commit(
                    vec![(records::outbox(sequence), records::encode(&entry)?)],
                    &[],
                )?;
                Err(e)
            }
            Outcome::Failed(e) => {
                self.vault.commit(
                    vec![],
                    &[
                        records::outbox(sequence),
                        records::resend(&envelope_digest(&entry.envelope)),
                    ],
                )?;
                Err(e)
            }
        }
    }

    /// Refuses an envelope larger than the relay accepts, before anything
    /// is written. Without a connection the limit may be unknown; the
    /// message is then queued and an oversized one is reported as
    /// [`EventKind::DeliveryFailed`] once the relay refuses it.
    async fn check_size(&self, len: usize) -> Result<()> {
        let limits = match self.relay.known_limits() {
            Some(l) => Some(l),
            None => match self.relay.limits().await {
                Ok(l) => Some(l),
                Err(Error::Offline(_)) => None,
                Err(e) => return Err(e),
            },
        };
        match limits {
            Some(l) if len as u64 > l.max_envelope_bytes => Err(Error::LimitExceeded(format!(
                "the sealed message is {len} bytes and this relay accepts at most {} bytes; \
                 send long text as a document (upload_file)",
                l.max_envelope_bytes
            ))),
            _ => Ok(()),
        }
    }

    async fn attempt(&self, entry: &OutboxEntry, access_key: Option<[u8; 16]>) -> Outcome {
        match self
            .relay
            .send(
                &entry.recipient,
                &entry.relay_id,
                &entry.envelope,
                access_key.as_ref(),
            )
            .await
        {
            Ok(()) => Outcome::Sent,
            // The contact's new key may be on its way: keep the message.
            Err(e @ Error::NotAccepted(_)) => Outcome::Hold(e),
            Err(e @ (Error::Offline(_) | Error::NotAuthorized(_) | Error::WrongRelay { .. })) => {
                Outcome::Stop(e)
            }
            Err(Error::Busy(reason)) => {
                // The relay's limits may have changed since login: ask
                // again before deciding between "later" and "never".
                let limits = match self.relay.refresh_limits().await {
                    Ok(l) => Some(l),
                    Err(e @ (Error::Offline(_) | Error::WrongRelay { .. })) => {
                        return Outcome::Stop(e)
                    }
                    Err(_) => self.relay.known_limits(),
                };
                let too_large =
                    limits.is_some_and(|l| entry.envelope.len() as u64 > l.max_envelope_bytes);
                if too_large {
                    Outcome::Failed(Error::LimitExceeded(reason))
                } else {
                    Outcome::Hold(Error::Busy(reason))
                }
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Retries sends that were saved but not accepted by the relay (after
    /// a crash or while offline), in send order. Returns how many went
    /// out. Messages the relay will never take are removed and reported
    /// as [`EventKind::DeliveryFailed`] events by [`Client::sync`].
    pub async fn flush_outbox(&self) -> Result<usize> {
        self.flush().await
    }

    /// [`Client::flush_outbox`]. Failure events are stored in the inbox
    /// and queued for the next [`Client::sync`] or [`Client::events`].
    pub(crate) async fn flush(&self) -> Result<usize> {
        let core = self.core.lock().await;
        self.flush_locked(&core).await
    }

    async fn flush_locked(&self, core: &Core) -> Result<usize> {
        let pending = self.vault.scan(records::OUTBOX)?;
        let mut sent = 0;
        // A recipient whose message is held keeps its later messages
        // behind it, so they arrive in order.
        let mut held: HashSet<[u8; 32]> = HashSet::new();
        for (name, value) in pending {
            let mut entry: OutboxEntry = records::decode("outbox", &value)?;
            if held.contains(&entry.recipient) {
                continue;
            }
            let outcome = match self
                .attempt(&entry, core.access_key(&entry.recipient))
                .await
            {
                Outcome::Hold(e) => {
                    entry.attempts += 1;
                    let age = self.now_ms().saturating_sub(entry.first_try_ms);
                    if entry.attempts >= MAX_DELIVERY_ATTEMPTS
                        && age >= MIN_GIVE_UP_AGE.as_millis() as i64
                    {
                        Outcome::Failed(Error::Busy(format!(
                            "gave up after {} attempts over {} hours: {e}",
                            entry.attempts,
                            age / 3_600_000
                        )))
                    } else {
                        Outcome::Hold(e)
                    }
                }
                other => other,
            };
            match outcome {
                Outcome::Sent => {
                    self.vault.commit(vec![], &[name])?;
                    sent += 1;
                }
                Outcome::Stop(e) => return Err(e),
                Outcome::Hold(_) => {
                    held.insert(entry.recipient);
                    self.vault
                        .commit(vec![(name, records::encode(&entry)?)], &[])?;
                }
                Outcome::Failed(e) => {
                    let event = self.notice_locked(
                        core,
                        &entry.recipient,
                        EventKind::DeliveryFailed {
                            id: Some(MessageId(entry.message_id)),
                            reason: e.to_string(),
                        },
                    );
                    let (event_name, event_value) = self.inbox_record(&event)?;
                    self.vault.commit(
                        vec![(event_name, event_value)],
                        &[name, records::resend(&envelope_digest(&entry.envelope))],
                    )?;
                    self.queue_notice(event);
                }
            }
        }
        Ok(sent)
    }

    pub(crate) fn queue_notice(&self, event: Event) {
        if let Ok(mut q) = self.notices.lock() {
            q.push(event);
        }
    }

    /// Notices the outbox produced since the last call, oldest first.
    pub(crate) fn take_notices(&self) -> Vec<Event> {
        self.notices
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// The reason a queued notice gives for message `id` failing, if any.
    fn notices_about(&self, id: MessageId) -> Option<String> {
        let q = self.notices.lock().ok()?;
        q.iter().find_map(|e| match &e.kind {
            EventKind::DeliveryFailed {
                id: Some(failed),
                reason,
            } if *failed == id => Some(reason.clone()),
            _ => None,
        })
    }

    /// Answers a retry request from `from` for the envelope `digest`: seals
    /// the kept message again on the current session (the one the request
    /// came on). Returns the event to report, and stores it with the
    /// resent message.
    pub(crate) async fn answer_retry(
        &self,
        core: &mut Core,
        from: &[u8; 32],
        digest: &[u8; 16],
    ) -> Result<Event> {
        let name = records::resend(digest);
        let kept: Option<ResendEntry> = match self.vault.get(&name)? {
            Some(bytes) => Some(records::decode("resend", &bytes)?),
            None => None,
        };
        match kept {
            Some(kept) if kept.recipient == *from && kept.resends < MAX_RESENDS => {
                let id = MessageId(kept.message_id);
                let event = self.notice_locked(core, from, EventKind::Resent { id });
                let extra = vec![self.inbox_record(&event)?];
                self.seal_and_send(
                    core,
                    from,
                    None,
                    &kept.content,
                    id,
                    true,
                    kept.resends + 1,
                    extra,
                )
                .await
                .or_else(queued)?;
                Ok(event)
            }
            other => {
                let id = other
                    .as_ref()
                    .filter(|k| k.recipient == *from)
                    .map(|k| MessageId(k.message_id));
                let event = self.notice_locked(
                    core,
                    from,
                    EventKind::DeliveryFailed {
                        id,
                        reason: "the recipient could not decrypt a message, and it is no \
                                 longer kept for sending again"
                            .into(),
                    },
                );
                let extra = vec![self.inbox_record(&event)?];
                let body = Body::RetryUnavailable(content::RetryUnavailable {
                    envelope_digest: digest.to_vec(),
                });
                let message = Content {
                    message_id: MessageId::random(&mut rand::rngs::OsRng).0.to_vec(),
                    sent_at_ms: self.now_ms(),
                    delivery_key: core.own_key_bytes(),
                    author_signature: Vec::new(),
                    group_id: Vec::new(),
                    body: Some(body),
                };
                let plaintext = Zeroizing::new(content::encode(&message));
                let mid = MessageId::from_slice(&message.message_id).unwrap_or(MessageId([0; 16]));
                self.seal_and_send(core, from, None, &plaintext, mid, false, 0, extra)
                    .await
                    .or_else(queued)?;
                Ok(event)
            }
        }
    }

    /// Forgets sent messages older than [`RESEND_WINDOW`], and the oldest
    /// beyond the store's bound. Runs at most hourly.
    pub(crate) fn prune_resend_store(&self) -> Result<()> {
        let now = self.now_ms();
        let last = self
            .last_prune_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < PRUNE_INTERVAL_MS {
            return Ok(());
        }
        self.last_prune_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let mut kept: Vec<(i64, Vec<u8>)> = Vec::new();
        for (name, value) in self.vault.scan(records::RESEND)? {
            let entry: ResendEntry = records::decode("resend", &value)?;
            kept.push((entry.sent_at_ms, name));
        }
        kept.sort();
        let cutoff = now.saturating_sub(RESEND_WINDOW.as_millis() as i64);
        let excess = kept.len().saturating_sub(MAX_RESEND_ENTRIES);
        let removes: Vec<Vec<u8>> = kept
            .into_iter()
            .enumerate()
            .filter(|(i, (at, _))| *i < excess || *at < cutoff)
            .map(|(_, (_, name))| name)
            .collect();
        if removes.is_empty() {
            return Ok(());
        }
        self.vault.commit(vec![], &removes)
    }

    /// Names of messages kept for resending to `recipient` that were sent
    /// before `cutoff_ms` (for disappearing messages).
    pub(crate) fn resend_entries_before(
        &self,
        recipient: &[u8; 32],
        cutoff_ms: i64,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for (name, value) in self.vault.scan(records::RESEND)? {
            let entry: ResendEntry = records::decode("resend", &value)?;
            if entry.recipient == *recipient && entry.sent_at_ms < cutoff_ms {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub(crate) fn notice_locked(&self, core: &Core, contact: &[u8; 32], kind: EventKind) -> Event {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Event {
            event_id: EventId(id),
            contact: DeviceAddress::from_bytes(contact).unwrap_or_else(|_| self.address()),
            contact_name: core.name_of(contact),
            at_ms: self.now_ms(),
            group: None,
            kind,
        }
    }
}

/// A message that was queued counts as handled: the outbox delivers it.
fn queued(e: Error) -> Result<()> {
    match e {
        Error::Offline(_) | Error::Busy(_) => Ok(()),
        other => Err(other),
    }
}
