//! The one error type app developers handle.

use alcove_protocol::error::{ContentError, InviteError, SealError, SessionError};
use thiserror::Error;

/// What went wrong, in terms an app can act on.
#[derive(Debug, Error)]
pub enum Error {
    /// The relay could not be reached or answered "unavailable": retry
    /// later. Nothing was lost; queued work is still queued.
    #[error("relay unreachable or busy; retry later: {0}")]
    Offline(String),
    /// The relay is rate-limiting this device, or the recipient's mailbox
    /// is full. A message that got this far is queued and
    /// [`crate::Client::sync`] retries it (see [`crate::EventKind::DeliveryFailed`]
    /// for when it gives up).
    #[error("relay busy or recipient's mailbox full; queued and retried later: {0}")]
    Busy(String),
    /// The recipient accepts messages only from holders of its delivery
    /// key, and this device does not have the current one: the contact
    /// rotated it, or was never reached through an invite. A queued
    /// message is held and retried (the new key arrives with the contact's
    /// next message); see [`crate::EventKind::DeliveryFailed`] for when it
    /// gives up.
    #[error("the recipient does not accept messages from this device without its current delivery key: {0}")]
    NotAccepted(String),
    /// The relay refused this device (not registered, or its proof failed).
    #[error("not authorized by the relay: {0}")]
    NotAuthorized(String),
    /// The relay presented another server id than the one this profile
    /// pinned when it was created: a different relay (or one impersonating
    /// it) is answering at this URL. Nothing was signed for it.
    #[error("the relay at this URL is not the one this profile registered with (expected server id {expected:?}, got {got:?})")]
    WrongRelay {
        /// The server id pinned in the profile.
        expected: String,
        /// The server id the relay presented.
        got: String,
    },
    /// The relay URL is not a valid `http://host:port` or
    /// `https://host:port` URL.
    #[error("invalid relay URL {url:?}: {reason}; expected something like http://127.0.0.1:7443 or https://relay.example.org")]
    InvalidRelayUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No contact with this address in the profile.
    #[error("unknown contact {0}")]
    UnknownContact(String),
    /// The contact's identity key is not the one this device verified.
    /// Messages to it are held until the app accepts the new key.
    #[error("the contact's identity key changed; verify it before sending")]
    ContactKeyChanged,
    /// A received message could not be decrypted (tampered, replayed, or
    /// from a session this device no longer has).
    #[error("message could not be decrypted: {0}")]
    Undecryptable(String),
    /// The profile's storage key is wrong.
    #[error("profile storage is locked: wrong storage key")]
    StorageLocked,
    /// A profile record is damaged or of an unknown format.
    #[error("profile damaged: {0}")]
    ProfileCorrupt(String),
    /// A relay or protocol limit was hit (a message larger than the relay
    /// accepts, too many attachments). Nothing was queued.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The invite's validity ended.
    #[error("the invite expired at {} UTC; ask for a new one", crate::clock::format_utc(*expired_at))]
    InviteExpired {
        /// When it expired, seconds since the Unix epoch.
        expired_at: u64,
    },
    /// Bad input from the app (an invalid invite, content that breaks a
    /// rule, a malformed argument).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A verification failed: the relay served keys that do not match
    /// what the invite promised.
    #[error("verification failed: {0}")]
    VerificationFailed(String),
    /// The relay's key log refused what the relay served: keys not in the
    /// log, a log that forked or was rolled back, a replayed or foreign
    /// tree head, or a contact's keys older than ones seen before. No
    /// session was opened. This is evidence against the relay, not a
    /// network fault: report it, do not retry it away.
    #[error("key transparency check failed: {0}")]
    KeyTransparency(alcove_keylog::TransparencyError),
    /// The contact's signed prekey is older than
    /// [`crate::SIGNED_PREKEY_MAX_AGE`]: their device has been offline for
    /// weeks, or the relay serves a superseded key. No session was opened.
    #[error("the contact's signed prekey is {age_days} days old; ask them to open their app")]
    StaleSignedPreKey {
        /// Age of the signed prekey in days.
        age_days: u64,
    },
    /// The session with this contact cannot send any more (2^32 messages
    /// in one chain); the next send starts a new one.
    #[error("session exhausted; a new session is started on the next send")]
    SessionExhausted,
    /// Local storage failed (disk full, permissions).
    #[error("local storage error: {0}")]
    Storage(String),
    /// A clinician's credential did not verify: the app must not show the
    /// contact as licensed. See [`CredentialProblem`] for each reason.
    #[error("credential not verified: {0}")]
    Credential(CredentialProblem),
}

/// Why a clinician's credential was refused
/// ([`crate::Client::verify_credential`]). Each is its own case so an app
/// can say exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialProblem {
    /// The contact has not presented a credential.
    #[error("the contact has presented no credential")]
    NotPresented,
    /// The issuer's signature does not verify, or the bytes are not a
    /// credential: it was forged or altered.
    #[error("the credential is forged or altered (its signature does not verify)")]
    Forged,
    /// Signed by a key the app does not trust.
    #[error("the credential is signed by an issuer this app does not trust ({issuer})")]
    UntrustedIssuer {
        /// The signer's public key, hex.
        issuer: String,
    },
    /// Issued for another device than this contact's.
    #[error("the credential was issued for another identity than this contact's")]
    WrongIdentity,
    /// Past its expiry.
    #[error("the credential expired at {} UTC", crate::clock::format_utc(*expired_at))]
    Expired {
        /// Seconds since the Unix epoch.
        expired_at: u64,
    },
    /// Its issuer revoked it.
    #[error("the issuer revoked the credential at {} UTC", crate::clock::format_utc(*revoked_at))]
    Revoked {
        /// Seconds since the Unix epoch.
        revoked_at: u64,
    },
    /// The contact committed another credential in the key log since it
    /// presented this one (or never committed this one).
    #[error("the credential is not the one the contact committed in the key log")]
    NotCommitted,
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Offline(_) | Error::Busy(_) | Error::NotAccepted(_)
        )
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let msg = s.message().to_string();
        match s.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                Error::Offline(msg)
            }
            Code::Unauthenticated | Code::PermissionDenied | Code::FailedPrecondition => {
                Error::NotAuthorized(msg)
            }
            Code::ResourceExhausted => Error::Busy(msg),
            Code::InvalidArgument | Code::NotFound | Code::OutOfRange => Error::InvalidInput(msg),
            _ => Error::Offline(format!("{:?}: {msg}", s.code())),
        }
    }
}

#[cfg(feature = "native")]
impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Offline(e.to_string())
    }
}

#[cfg(feature = "native")]
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::ChainExhausted => Error::SessionExhausted,
            other => Error::Undecryptable(other.to_string()),
        }
    }
}

impl From<SealError> for Error {
    fn from(e: SealError) -> Self {
        match e {
            SealError::TooLarge { .. } => Error::LimitExceeded(e.to_string()),
            other => Error::Undecryptable(other.to_string()),
        }
    }
}

impl From<InviteError> for Error {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Expired { expires_at } => Error::InviteExpired {
                expired_at: expires_at,
            },
            InviteError::Decode(d) => Error::InvalidInput(format!("invite: {d}")),
            other => Error::VerificationFailed(other.to_string()),
        }
    }
}

impl From<ContentError> for Error {
    fn from(e: ContentError) -> Self {
        Error::InvalidInput(e.to_string())
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
