//! Clinician credentials: an issuer (a practice or platform) vouches that
//! a device belongs to a licensed clinician.
//!
//! A [`Credential`] binds a device address (and so its identity key) to a
//! display name, a licence number, a jurisdiction and a validity period,
//! under the issuer's Ed25519 signature. Client apps are configured with
//! the issuers they trust; the SDK checks the signature, the expiry, that
//! the subject is the contact it talks to, and that the therapist committed
//! the credential in the relay's key log. A [`Revocation`], signed by the
//! same issuer, withdraws a credential; it reaches clients through the key
//! log too (`docs/therapy.md`).
//!
//! The relay never sees a credential: therapists send it to their clients
//! sealed, like any message, and the key log holds only a salted
//! commitment to its digest and issuer key.
//!
//! ```
//! use alcove_protocol::credential::{Claims, Credential, IssuerKey, Revocation};
//! use alcove_protocol::identity::IdentityKeyPair;
//! let mut rng = rand_core::OsRng;
//! let practice = IssuerKey::generate(&mut rng);
//! let therapist = IdentityKeyPair::generate(&mut rng);
//! let claims = Claims {
//!     subject: therapist.public().address(),
//!     display_name: "Dr. Ana Rivera".into(),
//!     licence_number: "PSY-20417".into(),
//!     jurisdiction: "Ontario, CA".into(),
//!     issued_at: 1_790_000_000,
//!     expires_at: 1_821_536_000,
//! };
//! let credential = Credential::issue(&mut rng, &practice, claims).unwrap();
//! let parsed = Credential::from_bytes(credential.as_bytes()).unwrap();
//! assert_eq!(parsed.issuer(), practice.public());
//! let revocation = Revocation::sign(&practice, &parsed, 1_800_000_000).unwrap();
//! assert_eq!(revocation.credential_digest(), &parsed.digest());
//! ```

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{CredentialError, DecodeError};
use crate::keys::DeviceAddress;

/// Format version of credentials and revocations.
pub const CREDENTIAL_VERSION: u8 = 1;
/// What an issuer's credential signature covers, before the fields.
const CREDENTIAL_LABEL: &[u8] = b"Alcove/v1/clinician-credential";
/// What an issuer's revocation signature covers, before the fields.
const REVOCATION_LABEL: &[u8] = b"Alcove/v1/credential-revocation";
/// Domain label of a credential's digest.
const DIGEST_LABEL: &[u8] = b"Alcove/v1/credential-digest";
/// The longest display name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 128;
/// The longest licence number or jurisdiction, in bytes of UTF-8.
pub const MAX_FIELD_LEN: usize = 64;
/// Fixed part of a credential: version, issuer, subject, serial, two times,
/// three length prefixes, signature.
const FIXED_LEN: usize = 1 + 32 + 32 + 16 + 8 + 8 + 3 * 2 + 64;
/// The longest encoded credential.
pub const MAX_CREDENTIAL_LEN: usize = FIXED_LEN + MAX_NAME_LEN + 2 * MAX_FIELD_LEN;
/// Length of an encoded revocation.
pub const REVOCATION_LEN: usize = 1 + 32 + 32 + 8 + 64;

/// An issuer's public key: what client apps are configured with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IssuerId(pub [u8; 32]);

impl fmt::Debug for IssuerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerId({})", hex32(&self.0))
    }
}

impl fmt::Display for IssuerId {
    /// Lowercase hex (64 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex32(&self.0))
    }
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An issuer's signing key. Zeroized on drop, redacted in `Debug`.
pub struct IssuerKey(SigningKey);

impl IssuerKey {
    /// A fresh key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self(SigningKey::from_bytes(&seed))
    }

    /// The key from its 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte secret seed, to keep the key (in an HSM or a file only
    /// the issuer can read).
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key clients trust.
    pub fn public(&self) -> IssuerId {
        IssuerId(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerKey({}, <secret redacted>)", self.public())
    }
}

/// What a credential says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The clinician's device.
    pub subject: DeviceAddress,
    /// How the clinician is named (1 to 128 bytes of UTF-8).
    pub display_name: String,
    /// The licence or registration number (1 to 64 bytes).
    pub licence_number: String,
    /// Where the licence holds, as the issuer writes it (1 to 64 bytes).
    pub jurisdiction: String,
    /// When it was issued, seconds since the Unix epoch.
    pub issued_at: u64,
    /// When it stops being valid, seconds since the Unix epoch (later than
    /// `issued_at`).
    pub expires_at: u64,
}

/// A signed credential. One that parsed has a valid signature under the
/// issuer key it names; whether that issuer is trusted is the caller's
/// question ([`Credential::issuer`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    bytes: Vec<u8>,
    issuer: IssuerId,
    serial: [u8; 16],
    claims: Claims,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("issuer", &self.issuer)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn check_claims(c: &Claims) -> Result<(), CredentialError> {
    let text = |s: &str, max: usize| !s.is_empty() && s.len() <= max;
    if !text(&c.display_name, MAX_NAME_LEN) {
        return Err(CredentialError::Invalid(
            "display name must be 1 to 128 bytes",
        ));
    }
    if !text(&c.licence_number, MAX_FIELD_LEN) {
        return Err(CredentialError::Invalid(
            "licence number must be 1 to 64 bytes",
        ));
    }
    if !text(&c.jurisdiction, MAX_FIELD_LEN) {
        return Err(CredentialError::Invalid(
            "jurisdiction must be 1 to 64 bytes",
        ));
    }
    if c.expires_at <= c.issued_at {
        return Err(CredentialError::Invalid("expiry must be after issuance"));
    }
    Ok(())
}

fn signed_fields(issuer: &IssuerId, serial: &[u8; 16], c: &Claims) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_CREDENTIAL_LEN);
    out.push(CREDENTIAL_VERSION);
    out.extend_from_slice(&issuer.0);
    out.extend_from_slice(c.subject.as_bytes());
    out.extend_from_slice(serial);
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    out.extend_from_slice(&c.expires_at.to_be_bytes());
    for field in [&c.display_name, &c.licence_number, &c.jurisdiction] {
        // Lengths are bounded by check_claims (at most 128).
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

fn labelled(label: &[u8], fields: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + fields.len());
    m.extend_from_slice(label);
    m.extend_from_slice(fields);
    m
}

fn malformed(reason: &'static str) -> CredentialError {
    CredentialError::Decode(DecodeError::Malformed {
        what: "credential",
        reason,
    })
}

impl Credential {
    /// Signs `claims` with a fresh random serial.
    pub fn issue<R: RngCore + CryptoRng>(
        rng: &mut R,
        issuer: &IssuerKey,
        claims: Claims,
    ) -> Result<Self, CredentialError> {
        check_claims(&claims)?;
        let mut serial = [0u8; 16];
        rng.fill_bytes(&mut serial);
        let id = issuer.public();
        let mut bytes = signed_fields(&id, &serial, &claims);
        let signature = issuer.0.sign(&labelled(CREDENTIAL_LABEL, &bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(Self {
            bytes,
            issuer: id,
            serial,
            claims,
        })
    }

    /// Parses a credential and verifies its signature under the issuer key
    /// it names (strict Ed25519). A bad signature is
    /// [`CredentialError::BadSignature`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        if bytes.len() < FIXED_LEN {
            return Err(CredentialError::Decode(DecodeError::Truncated {
                what: "credential",
                needed: FIXED_LEN,
                got: bytes.len(),
            }));
        }
        if bytes.len() > MAX_CREDENTIAL_LEN {
            return Err(malformed("longer than any credential"));
        }
        if bytes[0] != CREDENTIAL_VERSION {
            return Err(CredentialError::Decode(DecodeError::UnsupportedVersion {
                what: "credential",
                version: u16::from(bytes[0]),
            }));
        }
        let body = &bytes[..bytes.len() - 64];
        let take32 =
            |at: usize| -> [u8; 32] { body[at..at + 32].try_into().expect("length checked") };
        let issuer = IssuerId(take32(1));
        let subject = DeviceAddress::from_bytes(&body[33..65]).map_err(CredentialError::Decode)?;
        let serial: [u8; 16] = body[65..81].try_into().expect("length checked");
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("checked"));
        let (issued_at, expires_at) = (u64_at(81), u64_at(89));
        let mut at = 97;
        let mut fields = Vec::with_capacity(3);
        for _ in 0..3 {
            let len = body
                .get(at..at + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or_else(|| malformed("a length runs past the end"))?;
            let text = body
                .get(at + 2..at + 2 + len)
                .ok_or_else(|| malformed("a field runs past the end"))?;
            let text = std::str::from_utf8(text).map_err(|_| malformed("a field is not UTF-8"))?;
            fields.push(text.to_string());
            at += 2 + len;
        }
        if at != body.len() {
            return Err(malformed("bytes after the last field"));
        }
        let jurisdiction = fields.pop().unwrap_or_default();
        let licence_number = fields.pop().unwrap_or_default();
        let display_name = fields.pop().unwrap_or_default();
        let claims = Claims {
            subject,
            display_name,
            licence_number,
            jurisdiction,
            issued_at,
            expires_at,
        };
        check_claims(&claims).map_err(|e| match e {
            CredentialError::Invalid(reason) => malformed(reason),
            other => other,
        })?;
        let key = VerifyingKey::from_bytes(&issuer.0).map_err(|_| CredentialError::BadSignature)?;
        let signature = Signature::from_bytes(bytes[bytes.len() - 64..].try_into().expect("64"));
        key.verify_strict(&labelled(CREDENTIAL_LABEL, body), &signature)
            .map_err(|_| CredentialError::BadSignature)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            issuer,
            serial,
            claims,
        })
    }

    /// The encoding, signature included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Who signed it.
    pub fn issuer(&self) -> IssuerId {
        self.issuer
    }

    /// The issuer's random serial.
    pub fn serial(&self) -> [u8; 16] {
        self.serial
    }

    /// What it says.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Whether it is expired at `now` (seconds since the Unix epoch).
    pub fn is_expired_at(&self, now: u64) -> bool {
        now >= self.claims.expires_at
    }

    /// What the key log commits to and a revocation names: SHA-256 over a
    /// label and the whole encoding.
    pub fn digest(&self) -> [u8; 32] {
        digest_of(&self.bytes)
    }
}

/// The digest of an encoded credential (see [`Credential::digest`]).
pub fn digest_of(credential: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DIGEST_LABEL);
    h.update(credential);
    h.finalize().into()
}

/// An issuer's statement that a credential is withdrawn from a time on.
/// One that parsed has a valid signature under the issuer key it names.
#[derive(Clone, PartialEq, Eq)]
pub struct Revocation {
    bytes: [u8; REVOCATION_LEN],
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("issuer", &self.issuer())
            .field("revoked_at", &self.revoked_at())
            .finish_non_exhaustive()
    }
}

impl Revocation {
    /// Revokes `credential` from `revoked_at` (seconds since the Unix
    /// epoch). Only the credential's own issuer can.
    pub fn sign(
        issuer: &IssuerKey,
        credential: &Credential,
        revoked_at: u64,
    ) -> Result<Self, CredentialError> {
        if credential.issuer() != issuer.public() {
            return Err(CredentialError::Invalid(
                "only the credential's issuer can revoke it",
            ));
        }
        let mut bytes = [0u8; REVOCATION_LEN];
        bytes[0] = CREDENTIAL_VERSION;
        bytes[1..33].copy_from_slice(&issuer.public().0);
        bytes[33..65].copy_from_slice(&credential.digest());
        bytes[65..73].copy_from_slice(&revoked_at.to_be_bytes());
        let signature = issuer.0.sign(&labelled(REVOCATION_LABEL, &bytes[..73]));
        bytes[73..].copy_from_slice(&signature.to_bytes());
        Ok(Self { bytes })
    }

    /// Parses a revocation and verifies its signature under the issuer key
    /// it names.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let bytes: [u8; REVOCATION_LEN] = bytes.try_into().map_err(|_| {
            CredentialError::Decode(DecodeError::Malformed {
                what: "revocation",
                reason: "must be 137 bytes",
            })
        })?;
        if bytes[0] != CREDENTIAL_VERSION {
            return Err(CredentialError::Decode(DecodeError::UnsupportedVersion {
                what: "revocation",
                version: u16::from(bytes[0]),
            }));
        }
        let key = VerifyingKey::from_bytes(bytes[1..33].try_into().expect("32"))
            .map_err(|_| CredentialError::BadSignature)?;
        let signature = Signature::from_bytes(bytes[73..].try_into().expect("64"));
        key.verify_strict(&labelled(REVOCATION_LABEL, &bytes[..73]), &signature)
            .map_err(|_| CredentialError::BadSignature)?;
        Ok(Self { bytes })
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8; REVOCATION_LEN] {
        &self.bytes
    }

    /// Who signed it.
    pub fn issuer(&self) -> IssuerId {
        IssuerId(self.bytes[1..33].try_into().expect("32"))
    }

    /// The digest of the credential it revokes.
    pub fn credential_digest(&self) -> &[u8; 32] {
        self.bytes[33..65].try_into().expect("32")
    }

    /// From when, seconds since the Unix epoch.
    pub fn revoked_at(&self) -> u64 {
        u64::from_be_bytes(self.bytes[65..73].try_into().expect("8"))
    }

    /// Whether it revokes `credential`: same digest, same issuer.
    pub fn revokes(&self, credential: &Credential) -> bool {
        self.issuer() == credential.issuer() && *self.credential_digest() == credential.digest()
    }
}

/// What the key log commits to for a device's credential: the digest and
/// issuer of the credential it presents, and the issuer's revocation once
/// there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialCommitment {
    /// [`Credential::digest`].
    pub digest: [u8; 32],
    /// [`Credential::issuer`].
    pub issuer: IssuerId,
    /// The issuer's revocation of it, if any.
    pub revocation: Option<Revocation>,
}

/// Length of a [`CredentialCommitment`] without a revocation.
pub const COMMITMENT_LEN: usize = 64;

impl CredentialCommitment {
    /// The commitment to an unrevoked credential.
    pub fn of(credential: &Credential) -> Self {
        Self {
            digest: credential.digest(),
            issuer: credential.issuer(),
            revocation: None,
        }
    }

    /// `digest (32) || issuer (32) [|| revocation (137)]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(COMMITMENT_LEN + REVOCATION_LEN);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.issuer.0);
        if let Some(r) = &self.revocation {
            out.extend_from_slice(r.as_bytes());
        }
        out
    }

    /// Parses the encoding; a revocation must be the issuer's and name the
    /// digest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let bad = |reason| {
            CredentialError::Decode(DecodeError::Malformed {
                what: "credential commitment",
                reason,
            })
        };
        if bytes.len() != COMMITMENT_LEN && bytes.len() != COMMITMENT_LEN + REVOCATION_LEN {
            return Err(bad("must be 64 or 201 bytes"));
        }
        let digest: [u8; 32] = bytes[..32].try_into().expect("32");
        let issuer = IssuerId(bytes[32..64].try_into().expect("32"));
        let revocation = match bytes.get(COMMITMENT_LEN..) {
            Some(r) if !r.is_empty() => {
                let r = Revocation::from_bytes(r)?;
                if r.issuer() != issuer || *r.credential_digest() != digest {
                    return Err(bad(
                        "the revocation is not the issuer's for this credential",
                    ));
                }
                Some(r)
            }
            _ => None,
        };
        Ok(Self {
            digest,
            issuer,
            revocation,
        })
    }
}
