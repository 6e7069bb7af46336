//! Receiving: each envelope is opened, decrypted with the contact's
//! sessions, and stored (event, session change, prekey deletion) in one
//! write before the relay is told to delete it. An envelope that does not
//! decrypt starts recovery (a retry request to its sender) instead of
//! vanishing.

use std::collections::VecDeque;

use alcove_protocol::content::{self, envelope_digest, Body, Content, MessageId};
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use alcove_protocol::sealed_sender::{self, Opened};
use alcove_protocol::x3dh::{self, InitialMessage};
use alcove_protocol::{DeviceAddress, PublicIdentity, Session, SessionError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::records;
use crate::sessions::{SessionSet, Slot};
use crate::{AttachmentPointer, Client, Core, Event, EventId, EventKind, GroupId};

/// X3DH base keys remembered per signed prekey (a replayed initial
/// message is refused by them even after its session is gone).
const MAX_BASE_KEYS_PER_PREKEY: usize = 4_096;
/// How long a session started to recover carries further retry requests
/// to the same contact instead of another new session.
const RECOVERY_REUSE_MS: i64 = 10 * 60 * 1000;

/// An inbox record.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    contact: [u8; 32],
    at_ms: i64,
    kind: StoredKind,
}

#[derive(Serialize, Deserialize)]
enum StoredKind {
    /// Encoded [`Content`].
    Message(Vec<u8>),
    SessionReset(String),
    Resent([u8; 16]),
    DeliveryFailed(Option<[u8; 16]>, String),
    Undecryptable(String),
    InviteRefused(String),
    OutOfHours {
        crisis_text: String,
        reply_within_hours: u32,
        next_opening_ms: Option<i64>,
    },
    // New variants go last: records are postcard, tagged by position.
    GroupChanged {
        group: [u8; 32],
        title: String,
        epoch: u64,
        added: Vec<[u8; 32]>,
        removed: Vec<[u8; 32]>,
        removed_me: bool,
    },
}

/// What decrypting one envelope came to.
enum Decrypted {
    /// Opened by a session this device had.
    Known { slot: Slot, session: Session },
    /// Opened by a session the sender just started (X3DH).
    New {
        session: Session,
        signed_prekey_id: u32,
        one_time_prekey: Option<u32>,
    },
}

enum Outcome {
    Opened(Box<Decrypted>, Zeroizing<Vec<u8>>),
    /// An initial message whose base key was accepted before: a replay.
    Replay,
    /// Nothing opens it.
    Failed(String),
}

impl Client {
    /// Fetches everything waiting on the relay, decrypts it, stores it in
    /// the profile, then lets the relay delete it. Returns the new events,
    /// oldest first: messages, and notices of what went wrong (messages
    /// that could not be delivered or decrypted, sessions reset, messages
    /// re-sent). Also retries the outbox, tops up and rotates prekeys.
    ///
    /// On an error, the events stored before it are not lost: they are in
    /// [`Client::pending_events`] until confirmed.
    pub async fn sync(&self) -> Result<Vec<Event>> {
        self.ensure_delivery_policy().await?;
        self.flush().await?;
        let mut events = self.take_notices();
        loop {
            let (page, more) = self.relay.fetch_page().await?;
            if page.is_empty() {
                break;
            }
            let mut acks = Vec::new();
            let mut failure = None;
            for env in &page {
                match self.receive(&env.envelope).await {
                    Ok(new) => {
                        events.extend(new);
                        acks.push(env.sequence);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            // Whatever was stored is acknowledged, even when a later
            // envelope failed; the failed one stays on the relay.
            if !acks.is_empty() {
                self.relay.ack(&acks).await?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if !more {
                break;
            }
        }
        // Failures the outbox found while answering (recovery sends).
        events.extend(self.take_notices());
        self.expire_history().await?;
        events.extend(self.expire_held_group_messages().await?);
        self.maintain_prekeys().await?;
        self.prune_resend_store()?;
        Ok(events)
    }

    /// Live events: first what the outbox reports, then whatever waits on
    /// the relay, then messages as they arrive. Each is stored before its
    /// envelope is acknowledged, exactly as in [`Client::sync`]: an
    /// envelope that could not be stored is not acknowledged, the stream
    /// yields the error and ends, and the envelope is delivered again when
    /// the app calls `events()` (or [`Client::sync`]) again. The stream
    /// also ends when the relay closes it (for example on shutdown).
    ///
    /// ```no_run
    /// # async fn f(client: alcove_client::Client) -> Result<(), alcove_client::Error> {
    /// use futures::StreamExt;
    /// let mut events = std::pin::pin!(client.events());
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     println!("{:?}", event.kind);
    ///     client.confirm(&event).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl futures::Stream<Item = Result<Event>> + '_ {
        enum State {
            Start,
            Live(
                Box<tonic::Streaming<alcove_api::v1::Envelope>>,
                VecDeque<Event>,
            ),
            Done,
        }
        futures::stream::unfold(State::Start, move |state| async move {
            let (mut sub, mut ready) = match state {
                State::Done => return None,
                State::Live(sub, ready) => (sub, ready),
                State::Start => {
                    let ready: VecDeque<Event> = match self.flush().await {
                        Ok(_) => self.take_notices().into(),
                        Err(e) => return Some((Err(e), State::Done)),
                    };
                    match self.relay.subscribe().await {
                        Ok(sub) => (Box::new(sub), ready),
                        Err(e) => return Some((Err(e), State::Done)),
                    }
                }
            };
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((Ok(event), State::Live(sub, ready)));
                }
                let envelope = match sub.message().await {
                    Ok(Some(env)) => env,
                    Ok(None) => return None,
                    Err(status) => return Some((Err(status.into()), State::Done)),
                };
                match self.receive(&envelope.envelope).await {
                    Ok(new) => ready.extend(new),
                    Err(e) => return Some((Err(e), State::Done)),
                }
                if let Err(e) = self.relay.ack(&[envelope.sequence]).await {
                    // Stored but not acknowledged: the relay delivers it
                    // again and it is recognised as seen.
                    return Some((Err(e), State::Done));
                }
            }
        })
    }

    /// Handles one envelope. `Ok` means it was dealt with for good (stored,
    /// recognised as a duplicate or replay, or reported): the caller
    /// acknowledges it. `Err` means nothing was decided (storage failed,
    /// the relay is unreachable for recovery): it must stay on the relay.
    async fn receive(&self, envelope: &[u8]) -> Result<Vec<Event>> {
        let opened = match sealed_sender::open(&self.identity, envelope) {
            Ok(o) => o,
            Err(e) => {
                // Not sealed for this device by anyone it could answer: no
                // sender to report or to ask again.
                tracing::warn!(error = %e, "dropping an envelope that does not open");
                return Ok(Vec::new());
            }
        };
        let digest = envelope_digest(envelope);
        let from = *opened.sender.address().as_bytes();
        let mut core = self.core.lock().await;
        if alcove_protocol::group::is_group_message(&opened.message) {
            return self.receive_group(&mut core, &from, &opened.message);
        }
        let mut set = self.load_sessions(&from)?;
        if set.seen_envelope(&digest) {
            tracing::debug!("envelope delivered again; already stored");
            return Ok(Vec::new());
        }
        let (decrypted, plaintext) = match self.decrypt(&opened, &set)? {
            Outcome::Opened(d, p) => (*d, p),
            Outcome::Replay => {
                tracing::warn!("refusing a replayed initial message");
                return Ok(Vec::new());
            }
            Outcome::Failed(reason) => {
                return self
                    .recover(&mut core, &opened.sender, &digest, reason)
                    .await
            }
        };

        // The session change and the prekey deletion are saved whatever
        // the content turns out to be.
        let mut puts = Vec::new();
        let mut removes = Vec::new();
        let slot = match decrypted {
            Decrypted::Known { slot, session } => {
                set.update(slot, &session);
                (slot, session)
            }
            Decrypted::New {
                session,
                signed_prekey_id,
                one_time_prekey,
            } => {
                if let Some(id) = one_time_prekey {
                    removes.push(records::otk(id));
                }
                puts.push(self.accepted_base_key(signed_prekey_id, &session)?);
                let slot = set.add_from_peer(&session)?;
                (slot, session)
            }
        };
        // decode() checks the id length and that a body is set.
        let parsed = content::decode(&plaintext)
            .map_err(|e| e.to_string())
            .and_then(|m| match (MessageId::from_slice(&m.message_id), m.body) {
                (Some(id), Some(body)) => Ok((
                    id,
                    m.sent_at_ms,
                    body,
                    m.delivery_key,
                    m.author_signature,
                    GroupId::from_slice(&m.group_id).ok(),
                )),
                _ => Err("no message id or body".to_string()),
            });
        // The sender's delivery key, from whatever it sent: what this
        // device presents to the relay when writing back.
        let mut author_signature = Vec::new();
        let mut group = None;
        let parsed = match parsed {
            Ok((id, at, body, key, signature, in_group)) => {
                if let Some(record) = core.learn_access_key(&from, &key)? {
                    puts.push(record);
                }
                author_signature = signature;
                group = in_group;
                Ok((id, at, body))
            }
            Err(e) => Err(e),
        };
        let message_id = parsed.as_ref().ok().map(|(id, _, _)| *id);
        let duplicate = message_id.is_some_and(|id| set.seen_message(&id.0));
        set.remember(digest, message_id.map(|id| id.0));
        core.observe_sender(&opened.sender);

        let mut events = Vec::new();
        let mut retry = None;
        let mut follow = None;
        match (parsed, duplicate) {
            (_, true) => tracing::debug!("message sent again; already delivered"),
            (Err(e), _) => events.push(self.notice_locked(
                &core,
                &from,
                EventKind::Undecryptable {
                    reason: format!("the message decrypted but its content is malformed: {e}"),
                },
            )),
            (Ok((_, _, Body::RetryRequest(r))), false) => {
                // The sender reset the session to ask; answer on it.
                set.promote(slot.0, &slot.1);
                retry = <[u8; 16]>::try_from(r.envelope_digest.as_slice()).ok();
            }
            // A rotated delivery key: learnt above, nothing to show.
            (Ok((_, _, Body::DeliveryKeyChanged(_))), false) => {}
            // What a clinician announces: kept, not shown as a message.
            (Ok((_, _, Body::CredentialPresentation(p))), false) => {
                puts.push(self.presented_credential(&from, &p.credential)?);
            }
            (Ok((_, _, Body::Availability(a))), false) => {
                if let Some(record) = self.received_availability(&from, &a)? {
                    puts.push(record);
                }
            }
            (
                Ok((
                    _,
                    _,
                    body @ (Body::GroupUpdate(_)
                    | Body::GroupSenderKey(_)
                    | Body::GroupKeyUpdate(_)
                    | Body::GroupLeave(_)),
                )),
                false,
            ) => {
                follow = self.group_control(
                    &mut core,
                    &from,
                    &body,
                    &mut puts,
                    &mut removes,
                    &mut events,
                )?;
            }
            (Ok((id, sent_at_ms, body)), false) if group.is_some() => {
                // A member wrote to this device alone within a group (an
                // assignment for one, a submission only the therapist
                // sees, a read receipt): not part of the one-to-one
                // history.
                let g = group.expect("checked");
                self.note_assignment(&g, &from, &id, &body, &mut puts)?;
                let mut event = self.message_event(
                    &mut core,
                    &from,
                    id,
                    sent_at_ms,
                    body,
                    &mut puts,
                    &mut removes,
                )?;
                event.group = Some(g);
                events.push(event);
            }
            (Ok((_, _, Body::RetryUnavailable(_))), false) => events.push(
                self.notice_locked(
                    &core,
                    &from,
                    EventKind::Undecryptable {
                        reason: "a message from this contact could not be decrypted, \
                             and their device no longer has it to send again"
                            .into(),
                    },
                ),
            ),
            (Ok((id, sent_at_ms, body)), false) => {
                // What a person wrote goes into the history (with the
                // author's signature if it verifies); a conversation
                // setting the contact changed is applied. Both in the same
                // write as the event.
                let content = Content {
                    message_id: id.0.to_vec(),
                    sent_at_ms,
                    delivery_key: Vec::new(),
                    author_signature: Vec::new(),
                    group_id: Vec::new(),
                    body: Some(body.clone()),
                };
                if content::is_written(&body) {
                    let me = self.address();
                    let signed = !author_signature.is_empty()
                        && alcove_protocol::transcript::verify_author(
                            &opened.sender,
                            &me,
                            &content,
                            &author_signature,
                        );
                    let mut conversation = self.conversation(&from)?;
                    puts.extend(self.history_records(
                        &from,
                        &mut conversation,
                        false,
                        &content,
                        signed.then_some(author_signature.as_slice()),
                    )?);
                } else if let Some(record) = self.contact_setting(&from, &body)? {
                    puts.push(record);
                }
                events.push(self.message_event(
                    &mut core,
                    &from,
                    id,
                    sent_at_ms,
                    body,
                    &mut puts,
                    &mut removes,
                )?)
            }
        }
        for event in &events {
            puts.push(self.inbox_record(event)?);
            for pointer in event.body().map(attachments_of).unwrap_or_default() {
                puts.push((
                    records::attachment(&pointer.blob_id),
                    prost::Message::encode_to_vec(pointer),
                ));
            }
        }
        puts.push(self.sessions_record(&from, &set)?);
        puts.push(core.contacts_record()?);
        self.vault.commit(puts, &removes)?;
        if let Some(digest) = retry {
            events.push(self.answer_retry(&mut core, &from, &digest).await?);
        }
        if let Some(follow) = follow {
            self.follow_up(&mut core, follow).await?;
        }
        // A new contact through an invite hears what this device announces;
        // a message outside this device's hours may get the auto-reply.
        let accepted = events.iter().any(|e| {
            matches!(
                &e.kind,
                EventKind::Message {
                    body: Body::InviteAccepted(_),
                    ..
                }
            )
        });
        if accepted {
            self.announce_to(&mut core, &from).await?;
        }
        drop(core);
        if let Some(body) = events.iter().find_map(|e| e.body()) {
            self.auto_reply_to(&from, body).await?;
        }
        Ok(events)
    }

    /// Tries every session this device has with the sender, then X3DH for
    /// a new one. Nothing is changed here.
    fn decrypt(&self, opened: &Opened, set: &SessionSet) -> Result<Outcome> {
        let mut last_error = "no session with this contact".to_string();
        if InitialMessage::is_initial(&opened.message) {
            let initial = match InitialMessage::decode(&opened.message) {
                Ok(i) => i,
                Err(e) => return Ok(Outcome::Failed(e.to_string())),
            };
            for slot in set.slots() {
                let mut session = set.get(slot)?;
                if session.base_key() == initial.base_key() {
                    return Ok(match session.decrypt(&opened.message) {
                        Ok(p) => Outcome::Opened(
                            Box::new(Decrypted::Known { slot, session }),
                            Zeroizing::new(p),
                        ),
                        // An initial message this session already opened.
                        Err(SessionError::DuplicateMessage) => Outcome::Replay,
                        Err(e) => Outcome::Failed(e.to_string()),
                    });
                }
            }
            let spk_id = initial.signed_prekey_id();
            if self.base_key_seen(spk_id, initial.base_key().as_bytes())? {
                return Ok(Outcome::Replay);
            }
            let Some(spk_bytes) = self.vault.get(&records::spk(spk_id))? else {
                return Ok(Outcome::Failed(format!(
                    "the first message uses signed prekey {spk_id}, which this device no longer has"
                )));
            };
            let spk = SignedPreKeyPair::from_secret_bytes(&spk_bytes, self.identity.public())
                .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
            // The transition rule (docs/protocol.md §17): once this device
            // has post-quantum prekeys, a classical first message is a
            // downgrade, whichever prekey it names.
            if !initial.is_post_quantum() && self.has_hybrid_signed_prekey()? {
                return Ok(Outcome::Failed(
                    alcove_protocol::KeyError::Downgrade.to_string(),
                ));
            }
            let otk = match initial.one_time_prekey_id() {
                Some(id) => self
                    .vault
                    .get(&records::otk(id))?
                    .and_then(|b| OneTimePreKeyPair::from_secret_bytes(&b).ok()),
                None => None,
            };
            return Ok(
                match x3dh::accept(&self.identity, &spk, otk.as_ref(), &opened.sender, &initial) {
                    Ok((session, p)) => Outcome::Opened(
                        Box::new(Decrypted::New {
                            session,
                            signed_prekey_id: spk_id,
                            one_time_prekey: initial.one_time_prekey_id(),
                        }),
                        Zeroizing::new(p),
                    ),
                    Err(e) => Outcome::Failed(e.to_string()),
                },
            );
        }
        for slot in set.slots() {
            let mut session = set.get(slot)?;
            match session.decrypt(&opened.message) {
                Ok(p) => {
                    return Ok(Outcome::Opened(
                        Box::new(Decrypted::Known { slot, session }),
                        Zeroizing::new(p),
                    ))
                }
                Err(SessionError::DuplicateMessage) if slot == Slot::Current => {
                    // An index this session already used, in an envelope
                    // not seen before: the sender's state was restored from
                    // an old copy.
                    last_error = "the sender reused a message key (their state was restored \
                                  from an older copy)"
                        .into();
                }
                Err(e) if slot == Slot::Current => last_error = e.to_string(),
                Err(_) => {}
            }
        }
        Ok(Outcome::Failed(last_error))
    }

    /// Whether any signed prekey this device keeps carries an ML-KEM key.
    fn has_hybrid_signed_prekey(&self) -> Result<bool> {
        for (_, value) in self.vault.scan(records::SPK)? {
            let spk = SignedPreKeyPair::from_secret_bytes(&value, self.identity.public())
                .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
            if spk.public().is_hybrid() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn base_key_seen(&self, spk_id: u32, base: &[u8; 32]) -> Result<bool> {
        Ok(match self.vault.get(&records::base_keys(spk_id))? {
            Some(bytes) => records::decode::<Vec<[u8; 32]>>("base keys", &bytes)?.contains(base),
            None => false,
        })
    }

    /// The base-key record with `session`'s base key added.
    fn accepted_base_key(&self, spk_id: u32, session: &Session) -> Result<(Vec<u8>, Vec<u8>)> {
        let name = records::base_keys(spk_id);
        let mut keys: Vec<[u8; 32]> = match self.vault.get(&name)? {
            Some(bytes) => records::decode("base keys", &bytes)?,
            None => Vec::new(),
        };
        keys.push(*session.base_key().as_bytes());
        if keys.len() > MAX_BASE_KEYS_PER_PREKEY {
            keys.drain(..keys.len() - MAX_BASE_KEYS_PER_PREKEY);
        }
        Ok((name, records::encode(&keys)?))
    }

    /// An envelope from `sender` did not decrypt: start a new session with
    /// them and ask for it again (reported as [`EventKind::SessionReset`]);
    /// when that is impossible, report [`EventKind::Undecryptable`].
    async fn recover(
        &self,
        core: &mut Core,
        sender: &PublicIdentity,
        digest: &[u8; 16],
        reason: String,
    ) -> Result<Vec<Event>> {
        tracing::warn!(%reason, "a message did not decrypt; asking its sender again");
        let from = *sender.address().as_bytes();
        let known_key = core.observe_sender(sender).pending_identity.is_none();
        // A recovery session started moments ago with this contact carries
        // the further requests too: one new session however many messages
        // failed (and one key fetch, which the relay rate-limits).
        if known_key && self.recovering_on_current(&from)? {
            return self.request_retry(core, &from, digest, None, None).await;
        }
        let fresh = if known_key {
            match self.start_session(core, &from).await {
                Ok(s) => Ok(s),
                // Not decided: the envelope stays on the relay and the
                // next sync asks again.
                Err(e @ (Error::Offline(_) | Error::Busy(_))) => return Err(e),
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err("their identity key changed; verify it, then ask them to send again".to_string())
        };
        let session = match fresh {
            Ok(s) => s,
            Err(why) => {
                let event = self.notice_locked(
                    core,
                    &from,
                    EventKind::Undecryptable {
                        reason: format!("{reason}; it cannot be asked for again: {why}"),
                    },
                );
                self.vault.commit(
                    vec![self.inbox_record(&event)?, core.contacts_record()?],
                    &[],
                )?;
                return Ok(vec![event]);
            }
        };
        if let Ok(mut r) = self.recovering.lock() {
            r.insert(from, (*session.base_key().as_bytes(), self.now_ms()));
        }
        let event = self.notice_locked(core, &from, EventKind::SessionReset { reason });
        self.request_retry(core, &from, digest, Some(session), Some(event))
            .await
    }

    /// Whether the current session with `from` is a recovery session this
    /// device started within [`RECOVERY_REUSE_MS`].
    fn recovering_on_current(&self, from: &[u8; 32]) -> Result<bool> {
        let started = self
            .recovering
            .lock()
            .ok()
            .and_then(|r| r.get(from).copied());
        let Some((base, at)) = started else {
            return Ok(false);
        };
        if self.now_ms().saturating_sub(at) > RECOVERY_REUSE_MS {
            return Ok(false);
        }
        Ok(self
            .load_sessions(from)?
            .current()?
            .is_some_and(|s| *s.base_key().as_bytes() == base))
    }

    /// Sends a retry request for `digest` to `from` (on `fresh`, which
    /// becomes current, or on the current session), storing `event` with
    /// it.
    async fn request_retry(
        &self,
        core: &mut Core,
        from: &[u8; 32],
        digest: &[u8; 16],
        fresh: Option<Session>,
        event: Option<Event>,
    ) -> Result<Vec<Event>> {
        let request = Content {
            message_id: MessageId::random(&mut rand::rngs::OsRng).0.to_vec(),
            sent_at_ms: self.now_ms(),
            delivery_key: core.own_key_bytes(),
            author_signature: Vec::new(),
            group_id: Vec::new(),
            body: Some(Body::RetryRequest(content::RetryRequest {
                envelope_digest: digest.to_vec(),
            })),
        };
        let id = MessageId::from_slice(&request.message_id).unwrap_or(MessageId([0; 16]));
        let plaintext = Zeroizing::new(content::encode(&request));
        let extra = event
            .iter()
            .map(|e| self.inbox_record(e))
            .collect::<Result<Vec<_>>>()?;
        match self
            .seal_and_send(core, from, fresh, &plaintext, id, false, 0, extra)
            .await
        {
            Ok(()) | Err(Error::Offline(_)) | Err(Error::Busy(_)) => {
                Ok(event.into_iter().collect())
            }
            Err(e) => Err(e),
        }
    }

    /// A message event, with what it changes: a contact's name and
    /// verification for an accepted invite.
    #[allow(clippy::too_many_arguments)]
    fn message_event(
        &self,
        core: &mut Core,
        from: &[u8; 32],
        id: MessageId,
        sent_at_ms: i64,
        body: Body,
        puts: &mut Vec<(Vec<u8>, Vec<u8>)>,
        removes: &mut Vec<Vec<u8>>,
    ) -> Result<Event> {
        let mut kind = EventKind::Message {
            id,
            body: body.clone(),
        };
        if let Body::InviteAccepted(accepted) = &body {
            let spent = self.spend_invite(&accepted.invite_nonce, puts, removes)?;
            let contact = core.contact_mut(from)?;
            if contact.name.is_empty() {
                contact.name = accepted.display_name.chars().take(100).collect();
            }
            match spent {
                Ok(()) => contact.verified = true,
                Err(reason) => kind = EventKind::InviteRefused { reason },
            }
        }
        Ok(Event {
            event_id: EventId(id.0),
            contact: DeviceAddress::from_bytes(from)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            contact_name: core.name_of(from),
            at_ms: sent_at_ms,
            group: None,
            kind,
        })
    }

    /// The inbox record holding `event`.
    pub(crate) fn inbox_record(&self, event: &Event) -> Result<(Vec<u8>, Vec<u8>)> {
        let kind = match &event.kind {
            EventKind::Message { id, body } => StoredKind::Message(content::encode(&Content {
                message_id: id.0.to_vec(),
                sent_at_ms: event.at_ms,
                delivery_key: Vec::new(),
                author_signature: Vec::new(),
                group_id: event.group.map(|g| g.0.to_vec()).unwrap_or_default(),
                body: Some(body.clone()),
            })),
            EventKind::SessionReset { reason } => StoredKind::SessionReset(reason.clone()),
            EventKind::Resent { id } => StoredKind::Resent(id.0),
            EventKind::DeliveryFailed { id, reason } => {
                StoredKind::DeliveryFailed(id.map(|i| i.0), reason.clone())
            }
            EventKind::Undecryptable { reason } => StoredKind::Undecryptable(reason.clone()),
            EventKind::InviteRefused { reason } => StoredKind::InviteRefused(reason.clone()),
            EventKind::OutOfHours(n) => StoredKind::OutOfHours {
                crisis_text: n.crisis_text.clone(),
                reply_within_hours: n.reply_within_hours,
                next_opening_ms: n.next_opening_ms,
            },
            EventKind::GroupChanged(c) => StoredKind::GroupChanged {
                group: c.group.0,
                title: c.title.clone(),
                epoch: c.epoch,
                added: c.added.iter().map(|a| *a.as_bytes()).collect(),
                removed: c.removed.iter().map(|a| *a.as_bytes()).collect(),
                removed_me: c.removed_me,
            },
        };
        let stored = StoredEvent {
            contact: *event.contact.as_bytes(),
            at_ms: event.at_ms,
            kind,
        };
        Ok((records::inbox(&event.event_id.0), records::encode(&stored)?))
    }

    /// Events received but not yet confirmed by the app (oldest first).
    /// After a crash, this is where they are.
    pub async fn pending_events(&self) -> Result<Vec<Event>> {
        let core = self.core.lock().await;
        let mut out = Vec::new();
        for (name, value) in self.vault.scan(records::INBOX)? {
            let stored: StoredEvent = records::decode("inbox", &value)?;
            let event_id = name
                .get(records::INBOX.len()..)
                .and_then(|t| <[u8; 16]>::try_from(t).ok())
                .ok_or_else(|| Error::ProfileCorrupt("an inbox record's name".into()))?;
            let mut group = None;
            let kind = match stored.kind {
                StoredKind::Message(bytes) => {
                    let m = content::decode(&bytes)
                        .map_err(|_| Error::ProfileCorrupt("an inbox message".into()))?;
                    let (Some(body), Some(id)) = (m.body, MessageId::from_slice(&m.message_id))
                    else {
                        continue;
                    };
                    if let Ok(g) = alcove_protocol::group::GroupId::from_slice(&m.group_id) {
                        group = Some(g);
                    }
                    EventKind::Message { id, body }
                }
                StoredKind::SessionReset(reason) => EventKind::SessionReset { reason },
                StoredKind::Resent(id) => EventKind::Resent { id: MessageId(id) },
                StoredKind::DeliveryFailed(id, reason) => EventKind::DeliveryFailed {
                    id: id.map(MessageId),
                    reason,
                },
                StoredKind::Undecryptable(reason) => EventKind::Undecryptable { reason },
                StoredKind::InviteRefused(reason) => EventKind::InviteRefused { reason },
                StoredKind::OutOfHours {
                    crisis_text,
                    reply_within_hours,
                    next_opening_ms,
                } => EventKind::OutOfHours(crate::OutOfHoursNotice {
                    crisis_text,
                    reply_within_hours,
                    next_opening_ms,
                }),
                StoredKind::GroupChanged {
                    group: g,
                    title,
                    epoch,
                    added,
                    removed,
                    removed_me,
                } => {
                    let addresses = |list: Vec<[u8; 32]>| {
                        list.iter()
                            .filter_map(|a| DeviceAddress::from_bytes(a).ok())
                            .collect()
                    };
                    group = Some(GroupId(g));
                    EventKind::GroupChanged(crate::GroupChange {
                        group: GroupId(g),
                        title,
                        epoch,
                        added: addresses(added),
                        removed: addresses(removed),
                        removed_me,
                    })
                }
            };
            out.push(Event {
                event_id: EventId(event_id),
                contact: DeviceAddress::from_bytes(&stored.contact)
                    .map_err(|_| Error::ProfileCorrupt("an inbox record's contact".into()))?,
                contact_name: core.name_of(&stored.contact),
                at_ms: stored.at_ms,
                group,
                kind,
            });
        }
        out.sort_by_key(|e| e.at_ms);
        Ok(out)
    }

    /// A received attachment's pointer, by its blob id (as shown with the
    /// message that carried it), for [`Client::download_file`].
    pub async fn attachment(&self, blob_id: &[u8]) -> Result<Option<AttachmentPointer>> {
        match self.vault.get(&records::attachment(blob_id))? {
            Some(bytes) => Ok(Some(
                prost::Message::decode(bytes.as_slice())
                    .map_err(|_| Error::ProfileCorrupt("an attachment record".into()))?,
            )),
            None => Ok(None),
        }
    }

    /// The app has stored or shown `event`: remove it from the inbox.
    pub async fn confirm(&self, event: &Event) -> Result<()> {
        self.confirm_id(&event.event_id).await
    }

    /// [`Client::confirm`] by the event's id alone (for apps that keep
    /// only the id). Confirming an id that is not in the inbox does
    /// nothing.
    pub async fn confirm_id(&self, event_id: &EventId) -> Result<()> {
        self.vault.commit(vec![], &[records::inbox(&event_id.0)])
    }
}

pub(crate) fn attachments_of(body: &Body) -> Vec<&AttachmentPointer> {
    match body {
        Body::Attachment(a) => vec![a],
        Body::HomeworkAssignment(h) => h.attachments.iter().collect(),
        Body::HomeworkSubmission(h) => h.attachments.iter().collect(),
        _ => vec![],
    }
}
