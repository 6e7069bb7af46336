//! The one error type app developers handle.

use thiserror::Error;

/// What went wrong, in terms an app can act on.
#[derive(Debug, Error)]
pub enum Error {
    /// The relay could not be reached or answered "unavailable": retry
    /// later. Nothing was lost; queued work is still queued.
    #[error("relay unreachable or busy; retry later: {0}")]
    Offline(String),
    /// The relay refused this device (not registered, or its proof failed).
    #[error("not authorized by the relay: {0}")]
    NotAuthorized(String),
    /// The contact's identity key is not the one this device verified.
    /// Messages to it are held until the app accepts the new key.
    #[error("the contact's identity key changed; verify it before sending")]
    ContactKeyChanged,
    /// A received message could not be decrypted (tampered, replayed, or
    /// from a session this device no longer has).
    #[error("message could not be decrypted: {0}")]
    Undecryptable(String),
    /// The profile's storage key is wrong, or the profile is damaged.
    #[error("profile storage is locked: wrong storage key or damaged profile")]
    StorageLocked,
    /// A relay or protocol limit was hit (message too large, rate limit,
    /// mailbox full).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Bad input from the app (an invalid invite, an unknown contact).
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
    /// Local storage failed (disk full, permissions).
    #[error("local storage error: {0}")]
    Storage(String),
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Offline(_))
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
            Code::ResourceExhausted => Error::LimitExceeded(msg),
            Code::InvalidArgument | Code::NotFound | Code::OutOfRange => Error::InvalidInput(msg),
            _ => Error::Offline(format!("{:?}: {msg}", s.code())),
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Offline(e.to_string())
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
