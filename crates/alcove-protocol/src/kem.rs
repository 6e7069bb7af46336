//! ML-KEM-768 (FIPS 203), the post-quantum half of PQXDH.
//!
//! Alcove uses the ML-KEM-768 parameter set (NIST security category 3):
//! its margin sits above X25519's classical ~128-bit level, it is the set
//! NIST recommends by default and the one the hybrid TLS and HPKE designs
//! settled on, and its keys (1 184 bytes) and ciphertexts (1 088 bytes)
//! are a third smaller than ML-KEM-1024's, which matters because every
//! bundle and every first message carries one of each (docs/protocol.md
//! §17 gives the reasoning and the sizes).
//!
//! A decapsulation key is kept as its 64-byte FIPS 203 seed `d || z`,
//! drawn from the caller's RNG; encapsulation draws its 32-byte message
//! from the caller's RNG too, so that the protocol's test vectors stay
//! deterministic. Decapsulation never fails: a tampered ciphertext gives
//! an unrelated shared secret (FIPS 203's implicit rejection), which the
//! first message's authentication then refuses.

use std::fmt;

use ml_kem::array::Array;
use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::ml_kem_768;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::error::{DecodeError, KeyError};

/// Length of an ML-KEM-768 encapsulation (public) key.
pub const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of a decapsulation key's seed (`d || z`, FIPS 203 §7.1).
pub const KEM_SEED_LEN: usize = 64;
/// Length of the shared secret.
pub const KEM_SHARED_SECRET_LEN: usize = 32;

/// An ML-KEM-768 encapsulation key, checked on parsing (FIPS 203's
/// modulus check: every coefficient below q).
#[derive(Clone)]
pub struct KemPublicKey {
    bytes: Box<[u8; KEM_PUBLIC_KEY_LEN]>,
    ek: Box<ml_kem_768::EncapsulationKey>,
}

impl PartialEq for KemPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for KemPublicKey {}

impl KemPublicKey {
    /// Parses and checks an encapsulation key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != KEM_PUBLIC_KEY_LEN {
            return Err(DecodeError::Malformed {
                what: "ML-KEM public key",
                reason: "must be 1184 bytes",
            }
            .into());
        }
        let key = Array::try_from(bytes).map_err(|_| KeyError::InvalidPublicKey("ML-KEM key"))?;
        let ek = ml_kem_768::EncapsulationKey::new(&key)
            .map_err(|_| KeyError::InvalidPublicKey("ML-KEM key fails the modulus check"))?;
        let mut out = Box::new([0u8; KEM_PUBLIC_KEY_LEN]);
        out.copy_from_slice(bytes);
        Ok(Self {
            bytes: out,
            ek: Box::new(ek),
        })
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// Encapsulates a fresh shared secret to this key, drawing the 32-byte
    /// message from `rng`. Returns the ciphertext and the shared secret.
    pub fn encapsulate<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
    ) -> (KemCiphertext, Zeroizing<[u8; KEM_SHARED_SECRET_LEN]>) {
        let mut m = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(m.as_mut());
        self.encapsulate_with(&m)
    }

    /// Encapsulation with the given message `m`: only for known-answer
    /// tests, where `m` comes from the vector.
    #[doc(hidden)]
    pub fn encapsulate_with(
        &self,
        m: &[u8; 32],
    ) -> (KemCiphertext, Zeroizing<[u8; KEM_SHARED_SECRET_LEN]>) {
        let (ct, shared) = self.ek.encapsulate_deterministic(&Array::from(*m));
        let mut ct_bytes = Box::new([0u8; KEM_CIPHERTEXT_LEN]);
        ct_bytes.copy_from_slice(ct.as_slice());
        let mut ss = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
        ss.copy_from_slice(shared.as_slice());
        (KemCiphertext { bytes: ct_bytes }, ss)
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemPublicKey(")?;
        for b in &self.bytes[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// An ML-KEM-768 ciphertext (any 1 088 bytes decapsulate; see the module
/// documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext {
    bytes: Box<[u8; KEM_CIPHERTEXT_LEN]>,
}

impl KemCiphertext {
    /// Takes a ciphertext of the right length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != KEM_CIPHERTEXT_LEN {
            return Err(DecodeError::Malformed {
                what: "ML-KEM ciphertext",
                reason: "must be 1088 bytes",
            });
        }
        let mut out = Box::new([0u8; KEM_CIPHERTEXT_LEN]);
        out.copy_from_slice(bytes);
        Ok(Self { bytes: out })
    }

    /// The encoded ciphertext.
    pub fn as_bytes(&self) -> &[u8; KEM_CIPHERTEXT_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemCiphertext(…)")
    }
}

/// An ML-KEM-768 decapsulation key, kept as its seed. Zeroized on drop
/// (the seed here, the expanded key inside `ml-kem`), redacted in `Debug`.
pub struct KemKeyPair {
    seed: Zeroizing<[u8; KEM_SEED_LEN]>,
    dk: ml_kem_768::DecapsulationKey,
}

impl KemKeyPair {
    /// Generates a key pair from 64 bytes of `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed_array(seed)
    }

    /// Restores a key pair from its 64-byte seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self, DecodeError> {
        if seed.len() != KEM_SEED_LEN {
            return Err(DecodeError::Malformed {
                what: "ML-KEM seed",
                reason: "must be 64 bytes",
            });
        }
        let mut arr = Zeroizing::new([0u8; KEM_SEED_LEN]);
        arr.copy_from_slice(seed);
        Ok(Self::from_seed_array(arr))
    }

    fn from_seed_array(seed: Zeroizing<[u8; KEM_SEED_LEN]>) -> Self {
        let dk = ml_kem_768::DecapsulationKey::from_seed(Array::from(*seed));
        Self { seed, dk }
    }

    /// The seed, for the SDK's encrypted store.
    pub fn seed(&self) -> &[u8; KEM_SEED_LEN] {
        &self.seed
    }

    /// The public (encapsulation) key.
    pub fn public(&self) -> KemPublicKey {
        let ek = self.dk.encapsulation_key();
        let mut bytes = Box::new([0u8; KEM_PUBLIC_KEY_LEN]);
        bytes.copy_from_slice(ek.to_bytes().as_slice());
        KemPublicKey {
            bytes,
            ek: Box::new(ek.clone()),
        }
    }

    /// Decapsulates `ct`. Never fails: a ciphertext not made for this key
    /// gives an unrelated secret (implicit rejection).
    pub fn decapsulate(&self, ct: &KemCiphertext) -> Zeroizing<[u8; KEM_SHARED_SECRET_LEN]> {
        let shared = self.dk.decapsulate(&Array::from(*ct.bytes));
        let mut ss = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
        ss.copy_from_slice(shared.as_slice());
        ss
    }
}

impl fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemKeyPair")
            .field("public", &self.public())
            .field("seed", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn round_trip_and_implicit_rejection() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let pair = KemKeyPair::generate(&mut rng);
        let public = KemPublicKey::from_bytes(pair.public().as_bytes()).unwrap();
        let (ct, ss) = public.encapsulate(&mut rng);
        assert_eq!(*pair.decapsulate(&ct), *ss);
        let restored = KemKeyPair::from_seed(pair.seed()).unwrap();
        assert_eq!(*restored.decapsulate(&ct), *ss);
        let mut bad = *ct.as_bytes();
        bad[17] ^= 1;
        let bad = KemCiphertext::from_bytes(&bad).unwrap();
        assert_ne!(*pair.decapsulate(&bad), *ss);
    }

    #[test]
    fn bad_lengths_and_keys_are_refused() {
        assert!(KemPublicKey::from_bytes(&[0u8; 100]).is_err());
        assert!(KemCiphertext::from_bytes(&[0u8; 1087]).is_err());
        assert!(KemKeyPair::from_seed(&[0u8; 63]).is_err());
        // Every coefficient 0xFFF > q fails the modulus check.
        assert!(matches!(
            KemPublicKey::from_bytes(&[0xFF; KEM_PUBLIC_KEY_LEN]),
            Err(KeyError::InvalidPublicKey(_))
        ));
        assert!(!format!("{:?}", KemKeyPair::generate(&mut rand::rngs::OsRng)).contains("seed: ["));
    }
}
