//! Wakes live subscribers when their mailbox receives an envelope.
//!
//! In-process only: with one relay per store this is all that is needed.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Per-address watch channels carrying the newest sequence.
#[derive(Default)]
pub struct Notifier {
    channels: Mutex<HashMap<[u8; 32], watch::Sender<u64>>>,
}

impl Notifier {
    /// Announces that `address` has an envelope with `sequence`.
    pub fn notify(&self, address: &[u8; 32], sequence: u64) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(address) {
            tx.send_if_modified(|current| {
                if sequence > *current {
                    *current = sequence;
                    true
                } else {
                    false
                }
            });
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
