//! Device authentication: stateless single-use challenges and stateless
//! tokens.
//!
//! A device asks for a challenge, signs
//! `alcove_api::auth_message(server_id, address, challenge)` with its
//! Ed25519 identity key, and receives a token: the address, an expiry and
//! an HMAC-SHA256 over both under the relay's token key (so every relay
//! sharing the deployment's secrets accepts it).
//!
//! A challenge is `issued_at_ms (8) || nonce (16) || mac (32)`, the MAC an
//! HMAC-SHA256 under the same key over a label, the server id, the address,
//! the time and the nonce. Issuing one stores nothing, so a flood of
//! challenge requests cannot fill a table and crowd out real logins. It is
//! accepted for [`CHALLENGE_TTL`] and only once: an answer with a valid
//! signature is remembered until the challenge would have expired anyway,
//! and a replay of it is refused. Only validly signed answers from
//! registered identities are remembered, and those are rate-limited per IP.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::limits::{CHALLENGE_TTL, CLOCK_SKEW_MS, MAX_ANSWERED_CHALLENGES};

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
    /// Challenges answered with a valid signature → when they expire (ms).
    answered: Mutex<HashMap<[u8; 32], i64>>,
}

const TOKEN_LABEL: &[u8] = b"Alcove/v1/relay-token";
const TOKEN_LEN: usize = 32 + 8 + 32;
const CHALLENGE_LABEL: &[u8] = b"Alcove/v1/relay-challenge";
/// Length of a challenge: issue time, nonce, MAC.
pub const CHALLENGE_LEN: usize = 8 + 16 + 32;

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
            answered: Mutex::new(HashMap::new()),
        }
    }

    /// The name devices sign.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    fn challenge_mac(&self, address: &[u8; 32], issued: &[u8], nonce: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token_key)
            .expect("HMAC accepts keys of any length");
        mac.update(CHALLENGE_LABEL);
        mac.update(&(self.server_id.len() as u64).to_be_bytes());
        mac.update(self.server_id.as_bytes());
        mac.update(address);
        mac.update(issued);
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    /// A fresh challenge for `address` and its expiry (ms since epoch).
    /// Stores nothing.
    pub fn issue_challenge(&self, address: [u8; 32]) -> (Vec<u8>, i64) {
        let now = now_ms();
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let issued = now.to_be_bytes();
        let mut challenge = Vec::with_capacity(CHALLENGE_LEN);
        challenge.extend_from_slice(&issued);
        challenge.extend_from_slice(&nonce);
        challenge.extend_from_slice(&self.challenge_mac(&address, &issued, &nonce));
        let ttl_ms = i64::try_from(CHALLENGE_TTL.as_millis()).unwrap_or(i64::MAX);
        (challenge, now + ttl_ms)
    }

    /// Checks that `challenge` was issued (by a relay with this key) to
    /// `address`, is fresh and unused, and that `signature` by `key` over
    /// the auth message verifies; then burns the challenge.
    pub fn verify_proof(
        &self,
        address: &[u8; 32],
        challenge: &[u8],
        signature: &[u8],
        key: &VerifyingKey,
    ) -> Result<(), Status> {
        let unknown =
            || Status::unauthenticated("unknown, used or expired challenge; request a new one");
        if challenge.len() != CHALLENGE_LEN {
            return Err(Status::invalid_argument(format!(
                "challenge must be {CHALLENGE_LEN} bytes, as Challenge returned it"
            )));
        }
        let (issued, rest) = challenge.split_at(8);
        let (nonce, mac) = rest.split_at(16);
        if !bool::from(self.challenge_mac(address, issued, nonce).ct_eq(mac)) {
            return Err(unknown());
        }
        let issued_ms = i64::from_be_bytes(issued.try_into().map_err(|_| unknown())?);
        let ttl_ms = i64::try_from(CHALLENGE_TTL.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let expires = issued_ms.saturating_add(ttl_ms);
        if now >= expires || issued_ms > now + CLOCK_SKEW_MS {
            return Err(unknown());
        }
        let signature: [u8; 64] = signature
            .try_into()
            .map_err(|_| Status::invalid_argument("signature must be 64 bytes"))?;
        key.verify_strict(
            &alcove_api::auth_message(&self.server_id, address, challenge),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| {
            Status::unauthenticated("signature does not verify with the device's identity key")
        })?;
        // Burn it: only now, after a valid signature, is anything stored.
        let mut id = [0u8; 32];
        id.copy_from_slice(mac);
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        if answered.len() >= MAX_ANSWERED_CHALLENGES {
            answered.retain(|_, until| *until > now);
            if answered.len() >= MAX_ANSWERED_CHALLENGES {
                return Err(Status::resource_exhausted(
                    "too many logins in the last minute; retry shortly",
                ));
            }
        }
        if answered.insert(id, expires).is_some() {
            return Err(unknown());
        }
        Ok(())
    }

    /// Challenges answered and still remembered (for tests and metrics).
    pub fn answered_challenges(&self) -> usize {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
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
