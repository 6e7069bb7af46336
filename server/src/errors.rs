//! The one place where storage errors become gRPC statuses. Messages say
//! what was wrong and never echo request bytes or secrets.

use alcove_store::StoreError;
use tonic::Status;

/// Maps a storage error to the status a client can act on.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::MailboxFull { limit } => Status::resource_exhausted(format!(
            "recipient's mailbox is full ({limit} messages waiting); retry later"
        )),
        StoreError::TooManyPreKeys { limit } => Status::resource_exhausted(format!(
            "a device may hold at most {limit} one-time prekeys"
        )),
        StoreError::NotFound(what) => Status::not_found(format!("{what} not found")),
        StoreError::Corrupt(tree) => {
            tracing::error!(tree, "corrupt record");
            Status::internal("stored record is corrupt")
        }
        StoreError::Unavailable(e) => {
            tracing::warn!(error = %e, "storage unavailable");
            Status::unavailable(format!("storage temporarily unavailable ({e}); retry"))
        }
        StoreError::Config(e) => {
            tracing::error!(error = %e, "storage configuration");
            Status::internal("storage misconfigured")
        }
        StoreError::Conflict(what) => {
            Status::aborted(format!("{what} changed concurrently; retry"))
        }
        StoreError::Locked(e) => {
            tracing::error!(error = %e, "store locked");
            Status::unavailable("storage temporarily unavailable; retry")
        }
        StoreError::Backend(e) => {
            tracing::error!(error = %e, "storage backend error");
            Status::unavailable("storage temporarily unavailable; retry")
        }
    }
}

/// An address field that must be 32 bytes.
pub fn address(bytes: &[u8], field: &str) -> Result<[u8; 32], Status> {
    bytes.try_into().map_err(|_| {
        Status::invalid_argument(format!("{field} must be 32 bytes, got {}", bytes.len()))
    })
}
