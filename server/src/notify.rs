//! Wakes live subscribers when their mailbox receives an envelope, and
//! hands them the envelope itself when this relay accepted it.
//!
//! Each address with a live subscription has a watch channel holding its
//! latest [`Arrival`]. A send this relay accepted is announced *after* the
//! store made it durable ([`Notifier::accepted`]), with its envelope: a
//! subscriber whose cursor is exactly one behind delivers it from memory,
//! without reading the store. Every other case makes the subscriber read
//! the store from its cursor, which stays the source of truth: a gap in
//! the sequence (sends announced out of order, or one the subscriber
//! missed while busy), an envelope another relay accepted (PostgreSQL
//! NOTIFY, [`Notifier::stored_elsewhere`]), or a wake-up that may have
//! missed notifications ([`Notifier::wake_all`]). A missed or doubled
//! wake-up therefore loses or repeats nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alcove_api::v1::Envelope;
use tokio::sync::watch;

/// What a subscriber is told when woken.
#[derive(Clone, Default)]
pub struct Arrival {
    /// The newest sequence known to be stored for the address (0: none
    /// known since the channel was made).
    pub sequence: u64,
    /// The envelope at `sequence`, when this relay accepted it and it is
    /// durable; `None` means "read the store".
    pub envelope: Option<Arc<Envelope>>,
    /// Bumped by wake-ups that may have missed envelopes: a subscriber
    /// that sees it change reads the store, whatever `sequence` says.
    pub rescan: u64,
}

/// Per-address watch channels carrying the latest [`Arrival`].
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<[u8; 32], watch::Sender<Arrival>>>,
}

impl Notifier {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], watch::Sender<Arrival>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces an envelope this relay stored durably at `sequence` (it
    /// must be durable: subscribers deliver it without reading the store).
    /// The envelope is copied only if someone listens.
    pub fn accepted(&self, address: &[u8; 32], sequence: u64, received_at_ms: i64, bytes: &[u8]) {
        let mut channels = self.channels();
        let Some(tx) = channels.get(address) else {
            return;
        };
        if tx.receiver_count() == 0 {
            // Nobody listens: do not keep a copy of the envelope around.
            channels.remove(address);
            return;
        }
        tx.send_if_modified(|latest| {
            if sequence <= latest.sequence {
                // An announcement of this or a later sequence came first;
                // the subscriber reads the store for it.
                return false;
            }
            latest.sequence = sequence;
            latest.envelope = Some(Arc::new(Envelope {
                sequence,
                received_at_ms,
                envelope: bytes.to_vec(),
            }));
            true
        });
    }

    /// Announces an envelope stored by another relay (or by this one, as
    /// the database echoes it), at `sequence` if the notification said.
    pub fn stored_elsewhere(&self, address: &[u8; 32], sequence: Option<u64>) {
        let channels = self.channels();
        let Some(tx) = channels.get(address) else {
            return;
        };
        match sequence {
            Some(sequence) => {
                tx.send_if_modified(|latest| {
                    if sequence <= latest.sequence {
                        return false;
                    }
                    latest.sequence = sequence;
                    latest.envelope = None;
                    true
                });
            }
            None => tx.send_modify(|latest| latest.rescan = latest.rescan.wrapping_add(1)),
        }
    }

    /// Makes every subscriber read the store (after notifications may have
    /// been missed).
    pub fn wake_all(&self) {
        for tx in self.channels().values() {
            tx.send_modify(|latest| latest.rescan = latest.rescan.wrapping_add(1));
        }
    }

    /// A receiver that changes whenever `address` gets an envelope.
    pub fn subscribe(&self, address: &[u8; 32]) -> watch::Receiver<Arrival> {
        let mut channels = self.channels();
        // Forget channels nobody listens to any more.
        if channels.len() > 1024 {
            channels.retain(|_, tx| tx.receiver_count() > 0);
        }
        channels
            .entry(*address)
            .or_insert_with(|| watch::channel(Arrival::default()).0)
            .subscribe()
    }
}

/// What a subscriber at `cursor` does with a wake-up.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing new for it: wait again.
    Wait,
    /// Deliver this envelope, the one right after its cursor, from memory.
    Deliver(Arc<Envelope>),
    /// Read the store from the cursor.
    ReadStore,
}

impl Arrival {
    /// The decision for a subscriber whose last delivered sequence is
    /// `cursor` and which last acted on rescan counter `seen_rescan`.
    pub fn next_for(&self, cursor: u64, seen_rescan: u64) -> Next {
        if self.rescan != seen_rescan {
            return Next::ReadStore;
        }
        if self.sequence <= cursor {
            return Next::Wait;
        }
        match &self.envelope {
            Some(e) if self.sequence == cursor + 1 => Next::Deliver(e.clone()),
            _ => Next::ReadStore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [7; 32];

    fn latest(rx: &mut watch::Receiver<Arrival>) -> Arrival {
        rx.borrow_and_update().clone()
    }

    #[test]
    fn the_next_envelope_is_delivered_from_memory() {
        let n = Notifier::default();
        let mut rx = n.subscribe(&A);
        n.accepted(&A, 1, 5, b"one");
        match latest(&mut rx).next_for(0, 0) {
            Next::Deliver(e) => {
                assert_eq!((e.sequence, e.received_at_ms), (1, 5));
                assert_eq!(e.envelope, b"one");
            }
            other => panic!("expected a delivery from memory, got {other:?}"),
        }
        // Already delivered: nothing to do.
        assert_eq!(latest(&mut rx).next_for(1, 0), Next::Wait);
    }

    #[test]
    fn a_gap_reads_the_store() {
        let n = Notifier::default();
        let mut rx = n.subscribe(&A);
        n.accepted(&A, 3, 0, b"three");
        assert_eq!(latest(&mut rx).next_for(1, 0), Next::ReadStore);
    }

    #[test]
    fn an_earlier_announcement_after_a_later_one_changes_nothing() {
        let n = Notifier::default();
        let mut rx = n.subscribe(&A);
        n.accepted(&A, 5, 0, b"five");
        rx.borrow_and_update();
        n.accepted(&A, 4, 0, b"four");
        assert!(!rx.has_changed().unwrap());
        // The subscriber at 3 reads the store, which has both.
        assert_eq!(latest(&mut rx).next_for(3, 0), Next::ReadStore);
    }

    #[test]
    fn another_relays_envelope_reads_the_store_and_the_echo_of_ours_is_ignored() {
        let n = Notifier::default();
        let mut rx = n.subscribe(&A);
        n.stored_elsewhere(&A, Some(1));
        assert_eq!(latest(&mut rx).next_for(0, 0), Next::ReadStore);
        n.accepted(&A, 2, 0, b"two");
        rx.borrow_and_update();
        // The database's echo of our own send does not wake anyone.
        n.stored_elsewhere(&A, Some(2));
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn a_rescan_is_not_lost_under_a_later_envelope() {
        let n = Notifier::default();
        let mut rx = n.subscribe(&A);
        n.wake_all();
        n.accepted(&A, 1, 0, b"one");
        // The envelope is the next one, but a rescan is pending: the store
        // may hold envelopes whose notifications were missed.
        assert_eq!(latest(&mut rx).next_for(0, 0), Next::ReadStore);
        // A notification without a sequence is a rescan too.
        let seen = latest(&mut rx).rescan;
        n.stored_elsewhere(&A, None);
        assert_eq!(latest(&mut rx).next_for(1, seen), Next::ReadStore);
    }

    #[test]
    fn nobody_listening_keeps_no_copy() {
        let n = Notifier::default();
        drop(n.subscribe(&A));
        n.accepted(&A, 1, 0, b"one");
        assert!(n.channels().is_empty());
    }
}
