//! A contact's sessions: the current one, a few archived ones, and the
//! ids recently seen from them, kept together in one record so that every
//! change to them is one atomic write.
//!
//! - **Archived sessions.** When a session is replaced (the peer started a
//!   new one, or this device did to recover), the old one is archived, not
//!   deleted: a message sealed under it that is still on its way opens.
//!   At most [`MAX_ARCHIVED_SESSIONS`] are kept, newest first; the oldest
//!   is dropped when another is archived.
//! - **Simultaneous starts.** When both sides start a session before
//!   hearing from the other, each receives the other's initial message
//!   while its own session still awaits a reply. Both keep, as current, the
//!   session whose X3DH base key is smaller, and archive the other: the
//!   same choice on both sides, so they converge at once, and the archive
//!   still opens whatever was sent under the other one.
//! - **Recently seen.** Digests of the last [`SEEN_ENVELOPES`] envelopes
//!   and ids of the last [`SEEN_MESSAGES`] messages from this contact: a
//!   redelivered envelope (a crash between storing and acknowledging) is
//!   recognised as such, and a message the sender re-sent after a retry
//!   request is not shown twice.

use std::collections::VecDeque;

use alcove_protocol::Session;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Previous sessions kept per contact.
pub const MAX_ARCHIVED_SESSIONS: usize = 5;
/// Envelope digests remembered per contact.
pub(crate) const SEEN_ENVELOPES: usize = 64;
/// Message ids remembered per contact.
pub(crate) const SEEN_MESSAGES: usize = 256;

/// Where a session that opened a message sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Current,
    Archived(usize),
}

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct SessionSet {
    current: Option<Vec<u8>>,
    archived: VecDeque<Vec<u8>>,
    seen_envelopes: VecDeque<[u8; 16]>,
    seen_messages: VecDeque<[u8; 16]>,
}

impl Drop for SessionSet {
    fn drop(&mut self) {
        self.current.zeroize();
        for s in self.archived.iter_mut() {
            s.zeroize();
        }
    }
}

fn restore(bytes: &[u8]) -> Result<Session> {
    Session::from_bytes(bytes).map_err(|e| Error::ProfileCorrupt(format!("session: {e}")))
}

impl SessionSet {
    pub(crate) fn current(&self) -> Result<Option<Session>> {
        self.current.as_deref().map(restore).transpose()
    }

    /// Every session's slot, current first, then archived newest first.
    /// Sessions are restored one at a time ([`SessionSet::get`]), so a
    /// message the current session opens costs one restore, not six.
    pub(crate) fn slots(&self) -> Vec<Slot> {
        self.current
            .iter()
            .map(|_| Slot::Current)
            .chain((0..self.archived.len()).map(Slot::Archived))
            .collect()
    }

    /// The session in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> Result<Session> {
        match slot {
            Slot::Current => self.current.as_deref(),
            Slot::Archived(i) => self.archived.get(i).map(Vec::as_slice),
        }
        .map(restore)
        .unwrap_or_else(|| Err(Error::ProfileCorrupt("a session slot is empty".into())))
    }

    /// Stores `session` back where it was found.
    pub(crate) fn update(&mut self, slot: Slot, session: &Session) {
        let bytes = session.to_bytes().to_vec();
        match slot {
            Slot::Current => self.current = Some(bytes),
            Slot::Archived(i) => {
                if let Some(s) = self.archived.get_mut(i) {
                    *s = bytes;
                }
            }
        }
    }

    /// Makes the archived session at `slot` current, archiving the current.
    pub(crate) fn promote(&mut self, slot: Slot, session: &Session) {
        if let Slot::Archived(i) = slot {
            self.archived.remove(i);
            self.install(session);
        } else {
            self.update(slot, session);
        }
    }

    /// Makes `session` current; the previous current one is archived.
    pub(crate) fn install(&mut self, session: &Session) {
        if let Some(old) = self.current.take() {
            self.archive_bytes(old);
        }
        self.current = Some(session.to_bytes().to_vec());
    }

    /// Adds a session started by the peer. It becomes current unless this
    /// is a simultaneous start that the current session wins (see the
    /// module documentation).
    pub(crate) fn add_from_peer(&mut self, session: &Session) -> Result<Slot> {
        if let Some(current) = self.current()? {
            if current.awaiting_reply()
                && current.base_key().as_bytes() < session.base_key().as_bytes()
            {
                self.archive_bytes(session.to_bytes().to_vec());
                return Ok(Slot::Archived(0));
            }
        }
        self.install(session);
        Ok(Slot::Current)
    }

    fn archive_bytes(&mut self, bytes: Vec<u8>) {
        self.archived.push_front(bytes);
        while self.archived.len() > MAX_ARCHIVED_SESSIONS {
            if let Some(mut dropped) = self.archived.pop_back() {
                dropped.zeroize();
            }
        }
    }

    pub(crate) fn seen_envelope(&self, digest: &[u8; 16]) -> bool {
        self.seen_envelopes.contains(digest)
    }

    pub(crate) fn seen_message(&self, id: &[u8; 16]) -> bool {
        self.seen_messages.contains(id)
    }

    pub(crate) fn remember(&mut self, digest: [u8; 16], message: Option<[u8; 16]>) {
        push_bounded(&mut self.seen_envelopes, digest, SEEN_ENVELOPES);
        if let Some(id) = message {
            push_bounded(&mut self.seen_messages, id, SEEN_MESSAGES);
        }
    }
}

fn push_bounded(list: &mut VecDeque<[u8; 16]>, item: [u8; 16], bound: usize) {
    list.push_back(item);
    while list.len() > bound {
        list.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use alcove_protocol::identity::IdentityKeyPair;
    use alcove_protocol::prekeys::{PreKeyBundle, SignedPreKeyPair};
    use alcove_protocol::x3dh::{self, InitialMessage};

    use super::SessionSet;

    /// Both sides start a session before hearing from the other; each then
    /// receives the other's first message. They must settle on the same
    /// current session (the smaller base key) at once.
    #[test]
    fn simultaneous_starts_settle_on_one_session() {
        let mut rng = rand::rngs::OsRng;
        for _ in 0..8 {
            let a = IdentityKeyPair::generate(&mut rng);
            let b = IdentityKeyPair::generate(&mut rng);
            let a_spk = SignedPreKeyPair::generate(&mut rng, &a, 1, 0);
            let b_spk = SignedPreKeyPair::generate(&mut rng, &b, 1, 0);
            let a_bundle =
                PreKeyBundle::new(a.public().clone(), a_spk.public().clone(), None).unwrap();
            let b_bundle =
                PreKeyBundle::new(b.public().clone(), b_spk.public().clone(), None).unwrap();
            let mut a_out = x3dh::initiate(&mut rng, &a, &b_bundle).unwrap();
            let mut b_out = x3dh::initiate(&mut rng, &b, &a_bundle).unwrap();
            let a_first = a_out.encrypt(&mut rng, b"from a").unwrap();
            let b_first = b_out.encrypt(&mut rng, b"from b").unwrap();
            let (mut at_a, mut at_b) = (SessionSet::default(), SessionSet::default());
            at_a.install(&a_out);
            at_b.install(&b_out);
            let initial = InitialMessage::decode(&b_first).unwrap();
            let (from_b, _) = x3dh::accept(&a, &a_spk, None, b.public(), &initial).unwrap();
            at_a.add_from_peer(&from_b).unwrap();
            let initial = InitialMessage::decode(&a_first).unwrap();
            let (from_a, _) = x3dh::accept(&b, &b_spk, None, a.public(), &initial).unwrap();
            at_b.add_from_peer(&from_a).unwrap();
            let a_now = at_a.current().unwrap().unwrap();
            let b_now = at_b.current().unwrap().unwrap();
            assert_eq!(a_now.base_key(), b_now.base_key());
            assert_eq!(at_a.slots().len(), 2);
            assert_eq!(at_b.slots().len(), 2);
        }
    }
}
