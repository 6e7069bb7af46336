//! Keys of messages that were skipped (lost or still in flight).
//!
//! When a message arrives ahead of others in its chain, the keys of the
//! messages in between are derived and kept here, so that those messages
//! still decrypt when they turn up. The store is bounded
//! ([`crate::limits::MAX_SKIPPED_KEYS`] keys over all chains) and evicts the
//! oldest-derived keys first. A key is removed the moment it is used.
//!
//! Keys are grouped by the ratchet key of their chain, in derivation order,
//! so each kept key costs only its index and its 32 bytes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::chain::MessageKey;
use crate::keys::DhPublicKey;
use crate::limits::MAX_SKIPPED_KEYS;

/// Each [`MessageKey`] zeroizes itself when removed or dropped.
#[derive(Clone, Serialize, Deserialize)]
struct ChainKeys {
    ratchet_key: [u8; 32],
    /// Sorted by index, because keys are derived in index order.
    keys: VecDeque<(u32, MessageKey)>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct SkippedKeys {
    chains: VecDeque<ChainKeys>,
    len: usize,
}

impl SkippedKeys {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Finds the key for `(ratchet_key, index)` without removing it.
    pub(crate) fn get(&self, ratchet_key: &DhPublicKey, index: u32) -> Option<&MessageKey> {
        let (ci, pos) = self.locate(ratchet_key, index)?;
        Some(&self.chains[ci].keys[pos].1)
    }

    /// Removes (and zeroizes) the key for `(ratchet_key, index)`.
    pub(crate) fn remove(&mut self, ratchet_key: &DhPublicKey, index: u32) {
        let Some((ci, pos)) = self.locate(ratchet_key, index) else {
            return;
        };
        let chain = &mut self.chains[ci];
        chain.keys.remove(pos);
        self.len -= 1;
        if chain.keys.is_empty() {
            self.chains.remove(ci);
        }
    }

    fn locate(&self, ratchet_key: &DhPublicKey, index: u32) -> Option<(usize, usize)> {
        self.chains
            .iter()
            .enumerate()
            .filter(|(_, c)| &c.ratchet_key == ratchet_key.as_bytes())
            .find_map(|(ci, c)| {
                c.keys
                    .binary_search_by_key(&index, |(i, _)| *i)
                    .ok()
                    .map(|pos| (ci, pos))
            })
    }

    /// Appends keys derived in index order for one chain, evicting the
    /// oldest keys when the bound is reached.
    pub(crate) fn extend(
        &mut self,
        ratchet_key: &DhPublicKey,
        keys: impl IntoIterator<Item = (u32, MessageKey)>,
    ) {
        for (index, key) in keys {
            let needs_new_chain = self
                .chains
                .back()
                .is_none_or(|c| &c.ratchet_key != ratchet_key.as_bytes());
            if needs_new_chain {
                self.chains.push_back(ChainKeys {
                    ratchet_key: *ratchet_key.as_bytes(),
                    keys: VecDeque::new(),
                });
            }
            if let Some(back) = self.chains.back_mut() {
                back.keys.push_back((index, key));
                self.len += 1;
            }
            while self.len > MAX_SKIPPED_KEYS {
                self.evict_oldest();
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(front) = self.chains.front_mut() {
            if front.keys.pop_front().is_some() {
                self.len -= 1;
            }
            if front.keys.is_empty() {
                self.chains.pop_front();
            }
        }
    }

    /// Checks the invariants after deserializing untrusted state.
    pub(crate) fn is_consistent(&self) -> bool {
        let counted: usize = self.chains.iter().map(|c| c.keys.len()).sum();
        counted == self.len
            && self.len <= MAX_SKIPPED_KEYS
            && self.chains.iter().all(|c| {
                !c.keys.is_empty()
                    && c.keys
                        .iter()
                        .zip(c.keys.iter().skip(1))
                        .all(|(a, b)| a.0 < b.0)
            })
    }
}
