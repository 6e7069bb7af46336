//! Prekeys: the signed prekey's rotation and retention, and the stock of
//! one-time prekeys on the relay.
//!
//! - The signed prekey is replaced every [`SIGNED_PREKEY_LIFETIME`]. A
//!   replaced one is kept until it has been superseded for
//!   [`SIGNED_PREKEY_RETENTION`], longer than senders accept a signed
//!   prekey ([`crate::SIGNED_PREKEY_MAX_AGE`]): a first message written
//!   against it, however late it arrives within that window, opens.
//! - Keys that did not reach the relay (offline, relay error) are marked
//!   unpublished in the profile and uploaded by the next [`Client::sync`].
//! - Prekeys are hybrid (X25519 and ML-KEM-768, for PQXDH). A profile made
//!   before PQXDH is upgraded by its next [`Client::sync`]: its classical
//!   signed prekey is replaced at once, and every classical one-time prekey
//!   it still holds is replaced by a fresh hybrid one under the same id,
//!   which overwrites the relay's copy (docs/protocol.md §17).
//! - One-time prekeys are topped up when the relay reports fewer than
//!   [`PREKEY_LOW_WATER`]; at most [`MAX_PREKEYS_PER_DAY`] are generated per
//!   UTC day, however low the relay says the stock is (a relay, or
//!   someone draining the stock, cannot make the device generate keys
//!   without bound).

use std::time::Duration;

use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};

use crate::error::{Error, Result};
use crate::records;
use crate::{Client, PREKEY_STOCK};

/// How long a signed prekey is used before [`Client::sync`] replaces it.
pub const SIGNED_PREKEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a replaced signed prekey is kept.
pub const SIGNED_PREKEY_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);
/// The most one-time prekeys generated in one UTC day.
pub const MAX_PREKEYS_PER_DAY: u32 = 4 * PREKEY_STOCK;
/// Replenish when fewer than this many are left on the relay.
const PREKEY_LOW_WATER: u32 = 25;

/// Days since the Unix epoch.
pub(crate) fn day(now_ms: i64) -> u64 {
    (now_ms.max(0) / 86_400_000) as u64
}

impl Client {
    /// Replaces the signed prekey now. [`Client::sync`] does this by itself
    /// once the current one is [`SIGNED_PREKEY_LIFETIME`] old. Replaced
    /// signed prekeys are kept for [`SIGNED_PREKEY_RETENTION`] (for first
    /// messages still on their way), then deleted with the base keys
    /// accepted under them, which ends their forward-secrecy window.
    pub async fn rotate_signed_prekey(&self) -> Result<()> {
        {
            let mut core = self.core.lock().await;
            let new_id = core.state.signed_prekey_id.wrapping_add(1).max(1);
            let spk = SignedPreKeyPair::generate(
                &mut rand::rngs::OsRng,
                &self.identity,
                new_id,
                self.now_secs(),
            );
            core.state.signed_prekey_id = new_id;
            core.state.signed_prekey_unpublished = true;
            let removes = self.expired_signed_prekeys(new_id)?;
            self.vault.commit(
                vec![
                    (records::spk(new_id), spk.to_secret_bytes().to_vec()),
                    (records::STATE.to_vec(), records::encode(&core.state)?),
                ],
                &removes,
            )?;
        }
        self.publish_signed_prekey().await
    }

    /// Signed prekeys (and their base keys) superseded for longer than the
    /// retention. The key after each one says when it was superseded.
    fn expired_signed_prekeys(&self, current: u32) -> Result<Vec<Vec<u8>>> {
        let mut created: Vec<(u32, u64)> = Vec::new();
        for (name, value) in self.vault.scan(records::SPK)? {
            let id: u32 = std::str::from_utf8(&name[records::SPK.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::ProfileCorrupt("a signed prekey's name".into()))?;
            let spk = SignedPreKeyPair::from_secret_bytes(&value, self.identity.public())
                .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
            created.push((id, spk.public().created_at()));
        }
        created.sort_by_key(|(_, at)| *at);
        let now = self.now_secs();
        let mut removes = Vec::new();
        for pair in created.windows(2) {
            let ((id, _), (_, superseded_at)) = (pair[0], pair[1]);
            if id != current
                && now.saturating_sub(superseded_at) > SIGNED_PREKEY_RETENTION.as_secs()
            {
                removes.push(records::spk(id));
                removes.push(records::base_keys(id));
            }
        }
        Ok(removes)
    }

    /// Uploads the current signed prekey if the relay does not have it yet.
    async fn publish_signed_prekey(&self) -> Result<()> {
        let (id, unpublished) = {
            let core = self.core.lock().await;
            (
                core.state.signed_prekey_id,
                core.state.signed_prekey_unpublished,
            )
        };
        if !unpublished {
            return Ok(());
        }
        let bytes = self
            .vault
            .get(&records::spk(id))?
            .ok_or_else(|| Error::ProfileCorrupt("the current signed prekey is missing".into()))?;
        let spk = SignedPreKeyPair::from_secret_bytes(&bytes, self.identity.public())
            .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
        self.relay
            .rotate_signed_prekey(spk.public().to_bytes().to_vec())
            .await?;
        let mut core = self.core.lock().await;
        if core.state.signed_prekey_id == id {
            core.state.signed_prekey_unpublished = false;
            self.vault.commit(
                vec![(records::STATE.to_vec(), records::encode(&core.state)?)],
                &[],
            )?;
        }
        Ok(())
    }

    /// Public encodings of the current and the previous signed prekey.
    pub(crate) async fn published_signed_prekeys(&self) -> Result<Vec<Vec<u8>>> {
        let id = self.core.lock().await.state.signed_prekey_id;
        let mut out = Vec::new();
        for id in [id, id.wrapping_sub(1)] {
            if let Some(bytes) = self.vault.get(&records::spk(id))? {
                let spk = SignedPreKeyPair::from_secret_bytes(&bytes, self.identity.public())
                    .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
                out.push(spk.public().to_bytes().to_vec());
            }
        }
        Ok(out)
    }

    /// What [`Client::sync`] does for prekeys: finish uploads that failed,
    /// rotate the signed prekey when due, top up one-time prekeys.
    pub(crate) async fn maintain_prekeys(&self) -> Result<()> {
        self.publish_signed_prekey().await?;
        self.rotate_if_due().await?;
        self.upgrade_one_time_prekeys().await?;
        self.publish_one_time_prekeys().await?;
        self.replenish_prekeys().await
    }

    /// Replaces every classical one-time prekey this device still holds by
    /// a fresh hybrid one under the same id, and marks them for upload
    /// (which replaces the relay's copies). Runs after the signed prekey
    /// became hybrid: the relay takes hybrid one-time prekeys only from a
    /// device whose signed prekey is hybrid.
    async fn upgrade_one_time_prekeys(&self) -> Result<()> {
        let mut core = self.core.lock().await;
        let mut puts = Vec::new();
        let mut ids = Vec::new();
        for (name, value) in self.vault.scan(records::OTK)? {
            let k = OneTimePreKeyPair::from_secret_bytes(&value)
                .map_err(|_| Error::ProfileCorrupt("a one-time prekey".into()))?;
            if !k.is_hybrid() {
                let fresh =
                    OneTimePreKeyPair::generate(&mut rand::rngs::OsRng, &self.identity, k.id());
                puts.push((name, fresh.to_secret_bytes().to_vec()));
                ids.push(k.id());
            }
        }
        let (Some(&low), Some(&high)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(());
        };
        let (start, end) = core
            .state
            .unpublished_prekeys
            .map_or((low, high + 1), |(s, e)| (s.min(low), e.max(high + 1)));
        core.state.unpublished_prekeys = Some((start, end));
        puts.push((records::STATE.to_vec(), records::encode(&core.state)?));
        self.vault.commit(puts, &[])?;
        tracing::info!(count = ids.len(), "one-time prekeys upgraded to hybrid");
        Ok(())
    }

    async fn rotate_if_due(&self) -> Result<()> {
        let id = self.core.lock().await.state.signed_prekey_id;
        let Some(bytes) = self.vault.get(&records::spk(id))? else {
            return self.rotate_signed_prekey().await;
        };
        let spk = SignedPreKeyPair::from_secret_bytes(&bytes, self.identity.public())
            .map_err(|_| Error::ProfileCorrupt("a signed prekey".into()))?;
        let age = self.now_secs().saturating_sub(spk.public().created_at());
        // A classical signed prekey (a profile from before PQXDH) is
        // replaced at once by a hybrid one.
        if age >= SIGNED_PREKEY_LIFETIME.as_secs() || !spk.public().is_hybrid() {
            self.rotate_signed_prekey().await?;
        }
        Ok(())
    }

    async fn replenish_prekeys(&self) -> Result<()> {
        let left = self.relay.count_prekeys().await?;
        if left >= PREKEY_LOW_WATER {
            return Ok(());
        }
        {
            let mut core = self.core.lock().await;
            let today = day(self.now_ms());
            if core.state.prekey_day != today {
                core.state.prekey_day = today;
                core.state.prekeys_generated_today = 0;
            }
            let allowed = MAX_PREKEYS_PER_DAY.saturating_sub(core.state.prekeys_generated_today);
            let count = (PREKEY_STOCK - left).min(allowed);
            if count == 0 {
                tracing::warn!(
                    left,
                    "one-time prekeys are low but today's generation cap is reached"
                );
                return Ok(());
            }
            let first = core.state.next_prekey_id;
            let end = first + count;
            let mut puts: Vec<(Vec<u8>, Vec<u8>)> = (first..end)
                .map(|i| {
                    let k = OneTimePreKeyPair::generate(&mut rand::rngs::OsRng, &self.identity, i);
                    (records::otk(i), k.to_secret_bytes().to_vec())
                })
                .collect();
            core.state.next_prekey_id = end;
            core.state.prekeys_generated_today += count;
            let start = core.state.unpublished_prekeys.map_or(first, |(s, _)| s);
            core.state.unpublished_prekeys = Some((start, end));
            puts.push((records::STATE.to_vec(), records::encode(&core.state)?));
            self.vault.commit(puts, &[])?;
        }
        self.publish_one_time_prekeys().await
    }

    /// Uploads one-time prekeys generated but not yet on the relay.
    async fn publish_one_time_prekeys(&self) -> Result<()> {
        let Some((first, end)) = self.core.lock().await.state.unpublished_prekeys else {
            return Ok(());
        };
        let mut publics = Vec::new();
        for id in first..end {
            if let Some(bytes) = self.vault.get(&records::otk(id))? {
                let k = OneTimePreKeyPair::from_secret_bytes(&bytes)
                    .map_err(|_| Error::ProfileCorrupt("a one-time prekey".into()))?;
                publics.push(k.public().to_bytes().to_vec());
            }
        }
        if !publics.is_empty() {
            self.relay.upload_prekeys(publics).await?;
        }
        let mut core = self.core.lock().await;
        if core.state.unpublished_prekeys == Some((first, end)) {
            core.state.unpublished_prekeys = None;
            self.vault.commit(
                vec![(records::STATE.to_vec(), records::encode(&core.state)?)],
                &[],
            )?;
        }
        Ok(())
    }
}
