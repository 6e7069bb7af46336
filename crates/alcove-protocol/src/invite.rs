//! Invites: how a therapist hands a client everything needed for a first
//! contact that does not depend on trusting the relay.
//!
//! An invite names the therapist's device address, the fingerprint of its
//! identity keys, the relay to use, an expiry time and a random nonce (which
//! lets the inviter recognise the acceptance). It is encoded as unpadded
//! URL-safe base64 — short enough for a QR code — and optionally wrapped in
//! an `alcove://invite/` link. Accepting it means fetching the keys from
//! the relay and calling [`Invite::verify`] on them: a relay that hands out
//! other keys is caught there, before any session exists.
//!
//! ```text
//! invite v2 = 0x02 || address (32) || fingerprint (32) || expires_at (u64 BE)
//!             || nonce (16) || delivery_key (16) || url_len (u16 BE) || url (UTF-8)
//! invite v1 = 0x01 || address || fingerprint || expires_at || nonce
//!             || url_len || url            (read, never written)
//! ```
//!
//! The delivery key ([`crate::delivery`]) lets the invitee send its first
//! message without identifying itself to the relay; a v1 invite has none,
//! and works only with an inviter that accepts messages from anyone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use crate::delivery::{DeliveryKey, DELIVERY_KEY_LEN};
use crate::error::{DecodeError, InviteError};
use crate::identity::PublicIdentity;
use crate::keys::{DeviceAddress, IdentityFingerprint};
use crate::limits::MAX_INVITE_URL_LEN;

const INVITE_VERSION: u8 = 2;
const INVITE_V1: u8 = 1;
const FIXED_LEN_V1: usize = 1 + 32 + 32 + 8 + 16 + 2;
const FIXED_LEN: usize = FIXED_LEN_V1 + DELIVERY_KEY_LEN;

/// The scheme and path of an invite link.
pub const LINK_PREFIX: &str = "alcove://invite/";

/// An invite to open a verified conversation with its creator.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Invite {
    /// The inviter's device address.
    pub address: DeviceAddress,
    /// The fingerprint of the inviter's identity keys.
    pub fingerprint: IdentityFingerprint,
    /// The relay's URL (`http://` or `https://`).
    pub relay_url: String,
    /// Seconds since the Unix epoch after which the invite is refused.
    pub expires_at: u64,
    /// Random; lets the inviter tie an acceptance to this invite.
    pub nonce: [u8; 16],
    /// The inviter's delivery key, for the first message (absent in v1
    /// invites). Anyone who holds the invite holds it.
    pub delivery_key: Option<DeliveryKey>,
}

fn malformed(reason: &'static str) -> InviteError {
    DecodeError::Malformed {
        what: "invite",
        reason,
    }
    .into()
}

fn check_url(url: &str) -> Result<(), InviteError> {
    if url.len() > MAX_INVITE_URL_LEN {
        return Err(malformed("relay URL too long"));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(malformed("relay URL must start with http:// or https://"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(malformed(
            "relay URL contains whitespace or control characters",
        ));
    }
    Ok(())
}

impl Invite {
    /// Creates an invite to `identity` at `relay_url`, valid until
    /// `expires_at` (seconds since the Unix epoch).
    pub fn new<R: RngCore + CryptoRng>(
        rng: &mut R,
        identity: &PublicIdentity,
        relay_url: &str,
        expires_at: u64,
    ) -> Result<Self, InviteError> {
        check_url(relay_url)?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        Ok(Self {
            address: identity.address(),
            fingerprint: identity.fingerprint(),
            relay_url: relay_url.to_owned(),
            expires_at,
            nonce,
            delivery_key: None,
        })
    }

    /// The same invite carrying the inviter's delivery key.
    pub fn with_delivery_key(mut self, key: DeliveryKey) -> Self {
        self.delivery_key = Some(key);
        self
    }

    /// The invite as unpadded URL-safe base64.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(FIXED_LEN + self.relay_url.len());
        raw.push(if self.delivery_key.is_some() {
            INVITE_VERSION
        } else {
            INVITE_V1
        });
        raw.extend_from_slice(self.address.as_bytes());
        raw.extend_from_slice(self.fingerprint.as_bytes());
        raw.extend_from_slice(&self.expires_at.to_be_bytes());
        raw.extend_from_slice(&self.nonce);
        if let Some(key) = &self.delivery_key {
            raw.extend_from_slice(key.as_bytes());
        }
        // check_url bounds the length far below u16::MAX.
        raw.extend_from_slice(&(self.relay_url.len() as u16).to_be_bytes());
        raw.extend_from_slice(self.relay_url.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The invite as an `alcove://invite/…` link (for a QR code).
    pub fn to_link(&self) -> String {
        format!("{LINK_PREFIX}{}", self.encode())
    }

    /// Parses an invite string or link.
    pub fn decode(text: &str) -> Result<Self, InviteError> {
        let text = text.trim();
        let text = text.strip_prefix(LINK_PREFIX).unwrap_or(text);
        if text.len() > 4 * (FIXED_LEN + MAX_INVITE_URL_LEN) / 3 + 4 {
            return Err(malformed("too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| malformed("not unpadded URL-safe base64"))?;
        let fixed = match raw.first() {
            Some(&INVITE_VERSION) => FIXED_LEN,
            Some(&INVITE_V1) => FIXED_LEN_V1,
            Some(&v) => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "invite",
                    version: v.into(),
                }
                .into())
            }
            None => 0,
        };
        if raw.len() < fixed.max(FIXED_LEN_V1) {
            return Err(DecodeError::Truncated {
                what: "invite",
                needed: fixed.max(FIXED_LEN_V1),
                got: raw.len(),
            }
            .into());
        }
        let address = DeviceAddress::from_bytes(&raw[1..33])?;
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&raw[33..65]);
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&raw[65..73]);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&raw[73..89]);
        let delivery_key = if fixed == FIXED_LEN {
            Some(DeliveryKey::from_bytes(&raw[89..89 + DELIVERY_KEY_LEN])?)
        } else {
            None
        };
        let url_len = usize::from(u16::from_be_bytes([raw[fixed - 2], raw[fixed - 1]]));
        if raw.len() != fixed + url_len {
            return Err(malformed("URL length does not match"));
        }
        let relay_url = std::str::from_utf8(&raw[fixed..])
            .map_err(|_| malformed("relay URL is not UTF-8"))?
            .to_owned();
        check_url(&relay_url)?;
        Ok(Self {
            address,
            fingerprint: IdentityFingerprint(fp),
            relay_url,
            expires_at: u64::from_be_bytes(expires),
            nonce,
            delivery_key,
        })
    }

    /// Checks the keys fetched from the relay against the invite: not
    /// expired at `now` (valid strictly before `expires_at`) (seconds since the Unix epoch), same address, same
    /// fingerprint.
    pub fn verify(&self, fetched: &PublicIdentity, now: u64) -> Result<(), InviteError> {
        if now >= self.expires_at {
            return Err(InviteError::Expired {
                expires_at: self.expires_at,
            });
        }
        if fetched.address() != self.address {
            return Err(InviteError::AddressMismatch);
        }
        let same = fetched
            .fingerprint()
            .as_bytes()
            .ct_eq(self.fingerprint.as_bytes());
        if !bool::from(same) {
            return Err(InviteError::FingerprintMismatch);
        }
        Ok(())
    }
}
