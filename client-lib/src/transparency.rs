//! Key transparency on the device: every bundle the relay hands out must be
//! a leaf of the relay's signed key log, every head must extend the newest
//! head this device has seen, and a contact's key epoch never goes back.
//!
//! The log key is pinned on first contact with the relay (when the profile
//! is created) and stored in the profile; heads signed by any other key are
//! refused. The newest head and the highest epoch seen per address are
//! stored too, so the checks hold across restarts.

use alcove_api::keylog::{head_from_wire, proof_from_wire};
use alcove_keylog::{check_advance, check_keys, hashes, Hash, SignedTreeHead, TransparencyError};
use alcove_protocol::prekeys::PreKeyBundle;
use ed25519_dalek::VerifyingKey;

use crate::records::{self, KEYLOG_HEAD as HEAD, KEYLOG_PIN as PIN};
use crate::{Client, Error, Result};

/// How old a contact's signed prekey may be. Devices replace theirs every
/// [`crate::SIGNED_PREKEY_LIFETIME`]; an older one means a device that has
/// been offline for weeks, or a relay serving a superseded key.
pub const SIGNED_PREKEY_MAX_AGE: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// What [`Client::check_key_log`] verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLogStatus {
    /// Entries in the log at the newest head.
    pub tree_size: u64,
    /// The newest head's root.
    pub root: [u8; 32],
    /// This device's current key epoch, as logged.
    pub own_epoch: u64,
}

impl From<TransparencyError> for Error {
    fn from(e: TransparencyError) -> Self {
        Error::KeyTransparency(e)
    }
}

impl Client {
    fn now(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }

    /// The relay's key-log key this profile pinned (32-byte Ed25519 key).
    /// Apps that ship the relay's key can compare it.
    pub fn log_key(&self) -> Result<Option<[u8; 32]>> {
        Ok(self
            .vault
            .get(PIN)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()))
    }

    /// The newest signed tree head this device has verified, for apps that
    /// gossip heads between devices to detect a relay showing different
    /// logs to different people.
    pub fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>> {
        match self.vault.get(HEAD)? {
            None => Ok(None),
            Some(b) => SignedTreeHead::from_bytes(&b)
                .map(Some)
                .map_err(|_| Error::ProfileCorrupt("key-log record".into())),
        }
    }

    fn pinned_key(&self) -> Result<Option<VerifyingKey>> {
        match self.log_key()? {
            None => Ok(None),
            Some(k) => VerifyingKey::from_bytes(&k)
                .map(Some)
                .map_err(|_| Error::ProfileCorrupt("key-log record".into())),
        }
    }

    /// Pins the relay's log key (trust on first use) if none is pinned yet,
    /// and records its current head.
    pub(crate) async fn pin_log_key(&self) -> Result<()> {
        let _guard = self.transparency.lock().await;
        if self.pinned_key()?.is_some() {
            return Ok(());
        }
        let r = self.relay.tree_head(0).await?;
        let key = <[u8; 32]>::try_from(r.log_key.as_slice())
            .map_err(|_| TransparencyError::Malformed("log key is not 32 bytes"))?;
        let verifying =
            VerifyingKey::from_bytes(&key).map_err(|_| TransparencyError::Malformed("log key"))?;
        let head = head_from_wire(r.head.as_ref())?;
        check_advance(&verifying, None, &head, &[], self.now())?;
        self.vault.commit(
            vec![
                (PIN.to_vec(), key.to_vec()),
                (HEAD.to_vec(), head.to_bytes().to_vec()),
            ],
            &[],
        )?;
        Ok(())
    }

    /// Accepts `head` as the newest head if it is signed, fresh and extends
    /// the newest one seen (fetching a consistency proof when none came
    /// with it). Call with the transparency lock held.
    pub(crate) async fn advance(
        &self,
        head: &SignedTreeHead,
        proof: Option<Vec<Hash>>,
    ) -> Result<()> {
        let key = match self.pinned_key()? {
            Some(k) => k,
            None => return Err(TransparencyError::Malformed("no log key pinned").into()),
        };
        let latest = self.latest_tree_head()?;
        let proof = match (&latest, proof) {
            (_, Some(p)) => p,
            (Some(l), None) if l.size > 0 && l.size < head.size => {
                hashes(&self.relay.consistency_proof(l.size, head.size).await?.proof)?
            }
            _ => Vec::new(),
        };
        if check_advance(&key, latest.as_ref(), head, &proof, self.now())? {
            self.vault
                .commit(vec![(HEAD.to_vec(), head.to_bytes().to_vec())], &[])?;
        }
        Ok(())
    }

    fn seen_epoch(&self, address: &[u8; 32]) -> Result<u64> {
        Ok(self
            .vault
            .get(&self.vault.hashed_name(records::KEYLOG_EPOCH, address))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Fetches a device's bundle and verifies it: self-certifying address,
    /// inclusion in the key log under a head that extends the newest one
    /// seen, an epoch not older than one seen before, and a signed prekey
    /// not older than [`SIGNED_PREKEY_MAX_AGE`]. Nothing is used (and no
    /// session opened) unless all of it holds.
    pub(crate) async fn fetch_bundle(
        &self,
        address: &[u8; 32],
        access_key: Option<[u8; 16]>,
    ) -> Result<PreKeyBundle> {
        self.pin_log_key().await?;
        let _guard = self.transparency.lock().await;
        let known = self.latest_tree_head()?.map_or(0, |h| h.size);
        let r = self
            .relay
            .get_bundle(address, known, access_key.as_ref())
            .await?;
        let bundle = PreKeyBundle::from_bytes(&r.bundle)
            .map_err(|e| Error::VerificationFailed(format!("bundle: {e}")))?;
        if bundle.identity().address().as_bytes() != address {
            return Err(Error::VerificationFailed(
                "the relay served keys of another address".into(),
            ));
        }
        let proof = proof_from_wire(r.key_proof.as_ref())?;
        let consistency = hashes(&r.consistency_proof)?;
        let consistency = (known > 0 && known < proof.head.size).then_some(consistency);
        self.advance(&proof.head, consistency).await?;
        let min_epoch = self.seen_epoch(address)?;
        check_keys(
            address,
            &bundle.identity().to_bytes(),
            &bundle.signed_prekey().to_bytes(),
            &proof,
            min_epoch,
        )?;
        let age = (self.now() / 1000).saturating_sub(bundle.signed_prekey().created_at());
        if age > SIGNED_PREKEY_MAX_AGE.as_secs() {
            return Err(Error::StaleSignedPreKey {
                age_days: age / 86_400,
            });
        }
        if proof.epoch > min_epoch {
            self.vault.commit(
                vec![(
                    self.vault.hashed_name(records::KEYLOG_EPOCH, address),
                    proof.epoch.to_be_bytes().to_vec(),
                )],
                &[],
            )?;
        }
        Ok(bundle)
    }

    /// Audits the relay's key log from this device: fetches the current
    /// head and checks that it extends the newest one seen, then checks
    /// that this device's own current keys are what the log holds for its
    /// address (a relay that logged other keys for it is caught here).
    /// Apps call it now and then (for example on every app start).
    ///
    /// ```no_run
    /// # async fn f(client: alcove_client::Client) -> Result<(), alcove_client::Error> {
    /// let status = client.check_key_log().await?;
    /// println!("key log verified at {} entries", status.tree_size);
    /// # Ok(()) }
    /// ```
    pub async fn check_key_log(&self) -> Result<KeyLogStatus> {
        self.pin_log_key().await?;
        let _guard = self.transparency.lock().await;
        let known = self.latest_tree_head()?.map_or(0, |h| h.size);
        let r = self.relay.tree_head(known).await?;
        let head = head_from_wire(r.head.as_ref())?;
        let consistency = (known > 0 && known < head.size)
            .then(|| hashes(&r.consistency_proof))
            .transpose()?;
        self.advance(&head, consistency).await?;
        let me = self.identity.public().address();
        let p = self.relay.key_proof(me.as_bytes()).await?;
        let proof = proof_from_wire(Some(&p))?;
        self.advance(&proof.head, None).await?;
        // The relay holds the current signed prekey, or the previous one if
        // the last rotation did not reach it.
        let identity = self.identity.public().to_bytes();
        let mut result = Err(TransparencyError::NotInLog);
        for spk in self.published_signed_prekeys().await? {
            result = check_keys(me.as_bytes(), &identity, &spk, &proof, 0);
            if result.is_ok() {
                break;
            }
        }
        result?;
        let latest = self.latest_tree_head()?.unwrap_or(head);
        Ok(KeyLogStatus {
            tree_size: latest.size,
            root: latest.root,
            own_epoch: proof.epoch,
        })
    }
}
