//! Device authentication: single-use challenges and stateless tokens.
//!
//! A device asks for a challenge, signs
//! `alcove_api::auth_message(server_id, address, challenge)` with its
//! Ed25519 identity key, and receives a token: the address, an expiry and
//! an HMAC-SHA256 over both under a key kept in the store (so every relay
//! sharing the store accepts it). Challenges live in memory for a minute
//! and are burnt by the first answer, right or wrong.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::limits::{CHALLENGE_TTL, MAX_PENDING_CHALLENGES};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Issues and checks challenges and tokens.
pub struct Authenticator {
    server_id: String,
    token_key: [u8; 32],
    token_ttl: Duration,
    challenges: Mutex<HashMap<[u8; 32], Pending>>,
}

/// A challenge waiting for its answer: for which address, issued when.
type Pending = ([u8; 32], Instant);

const TOKEN_LABEL: &[u8] = b"Alcove/v1/relay-token";
const TOKEN_LEN: usize = 32 + 8 + 32;

impl Drop for Authenticator {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token_key);
    }
}

impl Authenticator {
    /// `token_key` must be 32 secret random bytes, shared by relays that
    /// share a store.
    pub fn new(server_id: String, token_key: [u8; 32], token_ttl: Duration) -> Self {
        Self {
            server_id,
            token_key,
            token_ttl,
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// The name devices sign.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// A fresh challenge for `address` and its expiry (ms since epoch).
    pub fn issue_challenge(&self, address: [u8; 32]) -> ([u8; 32], i64) {
        let mut challenge = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut challenge);
        let now = Instant::now();
        let mut map = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PENDING_CHALLENGES {
            map.retain(|_, (_, at)| now.duration_since(*at) < CHALLENGE_TTL);
        }
        if map.len() < MAX_PENDING_CHALLENGES {
            map.insert(challenge, (address, now));
        }
        let ttl_ms = i64::try_from(CHALLENGE_TTL.as_millis()).unwrap_or(i64::MAX);
        (challenge, now_ms() + ttl_ms)
    }

    /// Burns `challenge` and checks it was issued to `address` and is
    /// still fresh, then checks `signature` by `key` over the auth message.
    pub fn verify_proof(
        &self,
        address: &[u8; 32],
        challenge: &[u8],
        signature: &[u8],
        key: &VerifyingKey,
    ) -> Result<(), Status> {
        let challenge: [u8; 32] = challenge
            .try_into()
            .map_err(|_| Status::invalid_argument("challenge must be 32 bytes"))?;
        let issued = self
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&challenge);
        match issued {
            Some((for_address, at)) if for_address == *address && at.elapsed() < CHALLENGE_TTL => {}
            _ => {
                return Err(Status::unauthenticated(
                    "unknown, used or expired challenge; request a new one",
                ))
            }
        }
        let signature: [u8; 64] = signature
            .try_into()
            .map_err(|_| Status::invalid_argument("signature must be 64 bytes"))?;
        key.verify_strict(
            &alcove_api::auth_message(&self.server_id, address, &challenge),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| {
            Status::unauthenticated("signature does not verify with the device's identity key")
        })
    }

    fn mac(&self, address: &[u8], expires: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_key)
            .expect("HMAC accepts keys of any length");
        mac.update(TOKEN_LABEL);
        mac.update(address);
        mac.update(expires);
        mac.finalize().into_bytes().into()
    }

    /// A token for `address` and its expiry (ms since epoch).
    pub fn issue_token(&self, address: &[u8; 32]) -> (String, i64) {
        let ttl_ms = i64::try_from(self.token_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires = now_ms().saturating_add(ttl_ms);
        let expires_bytes = expires.to_be_bytes();
        let mut raw = Vec::with_capacity(TOKEN_LEN);
        raw.extend_from_slice(address);
        raw.extend_from_slice(&expires_bytes);
        raw.extend_from_slice(&self.mac(address, &expires_bytes));
        (URL_SAFE_NO_PAD.encode(raw), expires)
    }

    /// The address a token was issued to, if it is genuine and unexpired.
    pub fn check_token(&self, token: &str) -> Result<[u8; 32], Status> {
        let bad = || Status::unauthenticated("invalid session token; log in again");
        if token.len() > 2 * TOKEN_LEN {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        if raw.len() != TOKEN_LEN {
            return Err(bad());
        }
        let expected = self.mac(&raw[..32], &raw[32..40]);
        if !bool::from(expected.ct_eq(&raw[40..])) {
            return Err(bad());
        }
        let expires = i64::from_be_bytes(raw[32..40].try_into().map_err(|_| bad())?);
        if expires <= now_ms() {
            return Err(Status::unauthenticated(
                "session token expired; log in again",
            ));
        }
        raw[..32].try_into().map_err(|_| bad())
    }
}
