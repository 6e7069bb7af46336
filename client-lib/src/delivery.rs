//! Unidentified delivery: this device's delivery key, its contacts' keys,
//! and the policy the relay enforces for this device's mailbox.
//!
//! Sends and bundle fetches go through the relay's `Delivery` service on a
//! connection of their own that never carries the login token; the relay
//! learns the recipient and nothing about the sender but the connection's
//! IP address and timing. What lets a send in is the recipient's delivery
//! key (`alcove_protocol::delivery`), which the recipient hands out inside
//! the end-to-end encryption: every content this device sends carries its
//! current key, and an invite carries it for the first message.
//!
//! Rotating the key ([`Client::rotate_delivery_key`]) cuts off whoever has
//! not received the new one: every contact gets it in a
//! `DeliveryKeyChanged` content at once. Pending invites made before a
//! rotation carry the old key and stop working.

use alcove_protocol::content::{self, Body};
use alcove_protocol::delivery::{DeliveryKey, DELIVERY_KEY_LEN};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::{records, Client, Core};

/// The delivery key each contact gave this device, by address.
pub(crate) type ContactKeys = std::collections::HashMap<[u8; 32], [u8; DELIVERY_KEY_LEN]>;

/// This device's delivery key and what the relay was told.
#[derive(Serialize, Deserialize, Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct OwnDelivery {
    /// The current key.
    pub key: [u8; DELIVERY_KEY_LEN],
    /// The device accepts deliveries from anyone (no key needed).
    pub open: bool,
    /// The relay has the policy above (false between a change and its
    /// publication, e.g. when the relay was unreachable).
    pub published: bool,
}

impl OwnDelivery {
    pub(crate) fn generate() -> Self {
        Self {
            key: *DeliveryKey::generate(&mut rand::rngs::OsRng).as_bytes(),
            open: false,
            published: false,
        }
    }

    pub(crate) fn key(&self) -> DeliveryKey {
        DeliveryKey::from_array(self.key)
    }

    pub(crate) fn record(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((records::DELIVERY.to_vec(), records::encode(self)?))
    }
}

impl Core {
    /// The key a contact gave this device for writing to it, if any.
    pub(crate) fn access_key(&self, contact: &[u8; 32]) -> Option<[u8; DELIVERY_KEY_LEN]> {
        self.delivery_keys.get(contact).copied()
    }

    /// Remembers `key` (raw bytes from a content or an invite) as the key
    /// for writing to `contact`; returns the record to save if it changed.
    pub(crate) fn learn_access_key(
        &mut self,
        contact: &[u8; 32],
        key: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Ok(key) = <[u8; DELIVERY_KEY_LEN]>::try_from(key) else {
            return Ok(None);
        };
        if self.delivery_keys.get(contact) == Some(&key) {
            return Ok(None);
        }
        self.delivery_keys.insert(*contact, key);
        self.delivery_keys_record().map(Some)
    }

    pub(crate) fn delivery_keys_record(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let list: Vec<([u8; 32], [u8; DELIVERY_KEY_LEN])> =
            self.delivery_keys.iter().map(|(a, k)| (*a, *k)).collect();
        Ok((records::DELIVERY_KEYS.to_vec(), records::encode(&list)?))
    }

    /// This device's key as contents carry it.
    pub(crate) fn own_key_bytes(&self) -> Vec<u8> {
        self.own_delivery.key.to_vec()
    }
}

impl Client {
    /// Replaces this device's delivery key: the relay accepts only the new
    /// one from now on, and every contact receives it at once (a
    /// `DeliveryKeyChanged` message, not shown to users). Anyone who had the
    /// old key but is not a contact (a leaked invite, a removed contact's
    /// device) can no longer write to this device.
    ///
    /// Invites created before the rotation stop working. If the relay is
    /// unreachable the new key is kept and published by the next
    /// [`Client::sync`]; until then contacts with the new key are held back
    /// and retried.
    pub async fn rotate_delivery_key(&self) -> Result<()> {
        let mut core = self.core.lock().await;
        let mut next = OwnDelivery::generate();
        next.open = core.own_delivery.open;
        core.own_delivery = next;
        self.vault.commit(vec![core.own_delivery.record()?], &[])?;
        self.publish_delivery_policy(&mut core).await?;
        let contacts: Vec<[u8; 32]> = core.contacts.keys().copied().collect();
        for contact in contacts {
            let body = Body::DeliveryKeyChanged(content::DeliveryKeyChanged {});
            match self.send_body(&mut core, &contact, None, body, true).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => tracing::warn!(error = %e, "could not send the new delivery key"),
            }
        }
        Ok(())
    }

    /// Whether anyone may write to this device without its delivery key
    /// (a practice's public intake address, say). Off by default: only
    /// contacts, and holders of an invite, can write.
    pub async fn accept_messages_from_anyone(&self, open: bool) -> Result<()> {
        let mut core = self.core.lock().await;
        core.own_delivery.open = open;
        core.own_delivery.published = false;
        self.vault.commit(vec![core.own_delivery.record()?], &[])?;
        self.publish_delivery_policy(&mut core).await
    }

    /// Tells the relay this device's current policy, once; a profile from
    /// before delivery keys gets one here.
    pub(crate) async fn publish_delivery_policy(&self, core: &mut Core) -> Result<()> {
        if core.own_delivery.published {
            return Ok(());
        }
        let verifier = core.own_delivery.key().verifier();
        self.relay
            .set_delivery_policy(if core.own_delivery.open {
                None
            } else {
                Some(verifier.0)
            })
            .await?;
        core.own_delivery.published = true;
        self.vault.commit(vec![core.own_delivery.record()?], &[])
    }

    /// [`Client::publish_delivery_policy`] with the lock taken (from sync).
    pub(crate) async fn ensure_delivery_policy(&self) -> Result<()> {
        let mut core = self.core.lock().await;
        self.publish_delivery_policy(&mut core).await
    }
}

/// Reads the delivery records of a profile: this device's key (a profile
/// from before delivery keys gets a fresh, unpublished one) and the keys
/// its contacts gave it.
pub(crate) fn load(vault: &crate::vault::Vault) -> Result<(OwnDelivery, ContactKeys)> {
    let own = match vault.get(records::DELIVERY)? {
        Some(bytes) => records::decode("delivery", &bytes)?,
        None => {
            // Kept at once: contents carry the key before the relay has it.
            let own = OwnDelivery::generate();
            vault.commit(vec![own.record()?], &[])?;
            own
        }
    };
    let keys: Vec<([u8; 32], [u8; DELIVERY_KEY_LEN])> = match vault.get(records::DELIVERY_KEYS)? {
        Some(bytes) => records::decode("delivery keys", &bytes)?,
        None => Vec::new(),
    };
    Ok((own, keys.into_iter().collect()))
}

/// The error for a send or bundle fetch the relay refused for want of the
/// recipient's key.
pub(crate) fn not_accepted(message: String) -> Error {
    Error::NotAccepted(message)
}
