//! A storage key from a passphrase, for platforms with no keystore to keep
//! a random one in (a web page without WebCrypto wrapping, a CLI on a
//! shared machine): Argon2id with OWASP's minimum parameters (19 MiB of
//! memory, two passes, one lane), 32 bytes out. The salt is random, at
//! least 16 bytes, and stored beside the profile; it is not secret.
//!
//! The same passphrase and salt give the same key on every platform (the
//! browser build is held to `KNOWN_ANSWER` by its Node test).

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Argon2id memory, KiB.
pub const PASSPHRASE_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const PASSPHRASE_PASSES: u32 = 2;
/// Shortest salt accepted, bytes.
pub const MIN_SALT_LEN: usize = 16;

/// The storage key for `passphrase` and `salt` (Argon2id, see the module
/// docs). An empty passphrase or a salt under 16 bytes is
/// [`Error::InvalidInput`].
///
/// ```
/// let salt = [7u8; 16]; // random in a real app, stored with the profile
/// let key = alcove_client::storage_key_from_passphrase("correct horse battery staple", &salt)?;
/// assert_eq!(key.len(), 32);
/// # Ok::<(), alcove_client::Error>(())
/// ```
pub fn storage_key_from_passphrase(passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    if passphrase.is_empty() {
        return Err(Error::InvalidInput("the passphrase is empty".into()));
    }
    if salt.len() < MIN_SALT_LEN {
        return Err(Error::InvalidInput(format!(
            "the salt must be at least {MIN_SALT_LEN} random bytes, got {}",
            salt.len()
        )));
    }
    let params = Params::new(PASSPHRASE_MEMORY_KIB, PASSPHRASE_PASSES, 1, Some(32))
        .map_err(|e| Error::InvalidInput(format!("Argon2 parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|e| Error::InvalidInput(format!("Argon2: {e}")))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::storage_key_from_passphrase;

    /// What the native build derives for ("therapy notes", 16 × 0x11), and
    /// what the reference C implementation gives for the same input and
    /// parameters (checked with argon2-cffi's `hash_secret_raw`). The
    /// browser build's Node test expects the same.
    const KNOWN_ANSWER: &str = "4b525f269ba3bd932df762430080add9ec69f30c143afcd1186561b0392ba879";

    #[test]
    fn the_native_build_derives_the_known_answer() {
        let key = storage_key_from_passphrase("therapy notes", &[0x11; 16]).unwrap();
        assert_eq!(hex::encode(*key), KNOWN_ANSWER);
    }

    #[test]
    fn other_inputs_give_other_keys_and_bad_ones_are_refused() {
        let a = storage_key_from_passphrase("therapy notes", &[0x11; 16]).unwrap();
        let b = storage_key_from_passphrase("therapy notes.", &[0x11; 16]).unwrap();
        let c = storage_key_from_passphrase("therapy notes", &[0x12; 16]).unwrap();
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
        assert!(storage_key_from_passphrase("", &[0x11; 16]).is_err());
        assert!(storage_key_from_passphrase("x", &[0x11; 15]).is_err());
    }
}
