//! Clinician credentials in the key log (docs/therapy.md): a clinician
//! commits the digest and issuer of the credential it presents
//! (`Keys.CommitCredential`), an issuer revokes it by signature
//! (`KeyLog.RevokeCredential`), anyone reads the current record with its
//! proof (`KeyLog.GetCredentialProof`). The relay never sees a credential,
//! only this record; it checks what it can (an issuer key that is a valid
//! point, a revocation signed by the record's issuer for the record's
//! digest) and leaves the rest to the clients, who trust issuers, not the
//! relay.

use alcove_api::keylog::{hashes_to_wire, head_to_wire};
use alcove_api::v1::CredentialProof;
use alcove_protocol::credential::{CredentialCommitment, IssuerId, Revocation};
use alcove_store::{Address, CredentialSlot, LogEntry, LogRecord, StoreError};
use tonic::Status;

use super::Relay;
use crate::errors::store_status;
use crate::limits::MAX_REVOKED_PER_DEVICE;

/// How often a commit or revocation is retried when a concurrent one got
/// in first.
const ATTEMPTS: usize = 3;

/// The wire form of a credential record's proof.
fn to_wire(entry: &LogEntry, proof: &alcove_keylog::KeyProof) -> CredentialProof {
    CredentialProof {
        index: proof.index,
        epoch: proof.epoch,
        salt: proof.salt.to_vec(),
        audit_path: hashes_to_wire(&proof.audit_path),
        head: Some(head_to_wire(&proof.head)),
        record: match &entry.record {
            LogRecord::Credential(r) => r.clone(),
            LogRecord::Keys { .. } => Vec::new(),
        },
        address: entry.address.to_vec(),
    }
}

async fn proof_of(relay: &Relay, slot: &CredentialSlot) -> Result<CredentialProof, Status> {
    let (entry, proof) = relay
        .keylog
        .credential_proof(slot)
        .await
        .map_err(store_status)?;
    Ok(to_wire(&entry, &proof))
}

fn stored_record(slot: &CredentialSlot) -> Result<CredentialCommitment, Status> {
    CredentialCommitment::from_bytes(&slot.record).map_err(|_| {
        tracing::error!("stored credential record does not decode");
        Status::internal("stored record is corrupt")
    })
}

/// The current record of `address` with its proof.
pub async fn current(relay: &Relay, address: &Address) -> Result<CredentialProof, Status> {
    let slot = relay
        .store
        .credential(address)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found("this device has committed no credential"))?;
    proof_of(relay, &slot).await
}

/// Writes `record` as the next record of `address` unless `decide` (given
/// the current slot) answers with a proof to return instead; retried when
/// a concurrent writer got in first.
async fn update<F>(relay: &Relay, address: &Address, decide: F) -> Result<CredentialProof, Status>
where
    F: Fn(Option<&CredentialSlot>) -> Result<Change, Status>,
{
    for _ in 0..ATTEMPTS {
        let slot = relay
            .store
            .credential(address)
            .await
            .map_err(store_status)?;
        let (record, revoked) = match decide(slot.as_ref())? {
            Change::Keep => {
                let slot = slot.ok_or_else(|| Status::internal("no record to keep"))?;
                return proof_of(relay, &slot).await;
            }
            Change::Write { record, revoked } => (record, revoked),
        };
        match relay
            .keylog
            .publish_credential(address, &record, &revoked, slot.map(|s| s.epoch))
            .await
        {
            Ok(entry) => {
                let slot = CredentialSlot {
                    log_index: entry.index,
                    epoch: entry.epoch,
                    record,
                    revoked,
                };
                return proof_of(relay, &slot).await;
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(StoreError::NotFound(_)) => {
                return Err(Status::failed_precondition("device not registered"))
            }
            Err(e) => return Err(store_status(e)),
        }
    }
    Err(store_status(StoreError::Conflict("credential record")))
}

enum Change {
    Keep,
    Write {
        record: Vec<u8>,
        revoked: Vec<[u8; 32]>,
    },
}

/// `Keys.CommitCredential` for the authenticated device `me`.
pub async fn commit(
    relay: &Relay,
    me: &Address,
    digest: &[u8],
    issuer: &[u8],
) -> Result<CredentialProof, Status> {
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| Status::invalid_argument("digest must be 32 bytes"))?;
    let issuer: [u8; 32] = issuer
        .try_into()
        .map_err(|_| Status::invalid_argument("issuer must be 32 bytes"))?;
    if ed25519_dalek::VerifyingKey::from_bytes(&issuer).map_or(true, |k| k.is_weak()) {
        return Err(Status::invalid_argument(
            "issuer is not an Ed25519 public key of full order",
        ));
    }
    let record = CredentialCommitment {
        digest,
        issuer: IssuerId(issuer),
        revocation: None,
    }
    .to_bytes();
    update(relay, me, |slot| {
        let revoked = slot.map(|s| s.revoked.clone()).unwrap_or_default();
        if revoked.contains(&digest) {
            return Err(Status::failed_precondition(
                "that credential was revoked by its issuer",
            ));
        }
        if slot.is_some_and(|s| s.record == record) {
            return Ok(Change::Keep);
        }
        Ok(Change::Write {
            record: record.clone(),
            revoked,
        })
    })
    .await
}

/// `KeyLog.RevokeCredential`.
pub async fn revoke(
    relay: &Relay,
    address: &Address,
    revocation: &[u8],
) -> Result<CredentialProof, Status> {
    let revocation = Revocation::from_bytes(revocation)
        .map_err(|e| Status::invalid_argument(format!("revocation: {e}")))?;
    let digest = *revocation.credential_digest();
    update(relay, address, |slot| {
        let slot = slot.ok_or_else(|| {
            Status::failed_precondition("this device presents no credential to revoke")
        })?;
        let current = stored_record(slot)?;
        if current.digest != digest {
            return if slot.revoked.contains(&digest) {
                Ok(Change::Keep)
            } else {
                Err(Status::failed_precondition(
                    "the revocation names a credential this device does not present",
                ))
            };
        }
        if current.issuer != revocation.issuer() {
            return Err(Status::failed_precondition(
                "the revocation is not signed by the credential's issuer",
            ));
        }
        if current.revocation.is_some() {
            return Ok(Change::Keep);
        }
        if slot.revoked.len() >= MAX_REVOKED_PER_DEVICE {
            return Err(Status::resource_exhausted(
                "this device has too many revoked credentials",
            ));
        }
        let mut revoked = slot.revoked.clone();
        revoked.push(digest);
        Ok(Change::Write {
            record: CredentialCommitment {
                revocation: Some(revocation.clone()),
                ..current
            }
            .to_bytes(),
            revoked,
        })
    })
    .await
}
