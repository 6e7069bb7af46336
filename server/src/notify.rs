//! Wakes live subscribers when their mailbox receives an envelope.
//!
//! Sends accepted by this relay wake its subscribers directly; with the
//! PostgreSQL backend, sends accepted by other relays arrive as
//! notifications from the database (`server.rs`) and wake them the same
//! way. A wake-up only makes the subscription read the store again from
//! its cursor, so a missed or doubled one loses or repeats nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Per-address watch channels carrying a wake-up counter.
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<[u8; 32], watch::Sender<u64>>>,
}

impl Notifier {
    /// Announces that `address` has a new envelope (`sequence` is
    /// informational: subscribers re-read from their own cursor).
    pub fn notify(&self, address: &[u8; 32], _sequence: u64) {
        self.wake(address);
    }

    /// Wakes the subscribers of `address`.
    pub fn wake(&self, address: &[u8; 32]) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(address) {
            tx.send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// Wakes every subscriber (after notifications may have been missed).
    pub fn wake_all(&self) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for tx in channels.values() {
            tx.send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// A receiver that changes whenever `address` gets an envelope.
    pub fn subscribe(&self, address: &[u8; 32]) -> watch::Receiver<u64> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Forget channels nobody listens to any more.
        if channels.len() > 1024 {
            channels.retain(|_, tx| tx.receiver_count() > 0);
        }
        channels
            .entry(*address)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}
