//! `alcove.v1.KeyLog`: signed heads and proofs of the key transparency log.
//! Public (no token): auditors have no device, and issuers revoke
//! credentials by signature. Rate-limited per IP.

use alcove_api::keylog::{hashes_to_wire, head_to_wire};
use alcove_api::v1::key_log_server::KeyLog;
use alcove_api::v1::{
    ConsistencyProofResponse, CredentialProof, GetConsistencyProofRequest,
    GetCredentialProofRequest, GetKeyProofRequest, GetLeavesRequest, GetLeavesResponse,
    GetTreeHeadRequest, GetTreeHeadResponse, KeyProof, RevokeCredentialRequest,
};
use alcove_store::LogEntry;
use tonic::{Request, Response, Status};

use super::Services;
use crate::errors::{address, store_status};
use crate::limits::MAX_LEAVES_PER_CALL;

/// The wire form of a key proof with the keys it covers.
pub fn proof_to_wire(entry: &LogEntry, proof: &alcove_keylog::KeyProof) -> KeyProof {
    KeyProof {
        index: proof.index,
        epoch: proof.epoch,
        salt: proof.salt.to_vec(),
        audit_path: hashes_to_wire(&proof.audit_path),
        head: Some(head_to_wire(&proof.head)),
        identity: entry.keys().map(|k| k.0.to_vec()).unwrap_or_default(),
        signed_prekey: entry.keys().map(|k| k.1.to_vec()).unwrap_or_default(),
        address: entry.address.to_vec(),
    }
}

fn size_status(what: &str, size: u64, current: u64) -> Status {
    Status::out_of_range(format!(
        "{what} {size} is beyond the log's current size {current}"
    ))
}

/// The per-IP rate limit, then the in-memory tree brought up to the store,
/// as every question about the whole log starts.
async fn current_log<T>(relay: &super::Relay, request: &Request<T>) -> Result<(), Status> {
    relay.limit_anonymous(request)?;
    relay.keylog.catch_up().await.map_err(store_status)
}

#[tonic::async_trait]
impl KeyLog for Services {
    async fn get_credential_proof(
        &self,
        request: Request<GetCredentialProofRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.limit_anonymous(&request)?;
            let target = address(&request.get_ref().address, "address")?;
            super::credentials::current(relay, &target)
                .await
                .map(Response::new)
        }
        .await;
        relay.track(result)
    }

    async fn revoke_credential(
        &self,
        request: Request<RevokeCredentialRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.limit_anonymous(&request)?;
            let req = request.get_ref();
            let target = address(&req.address, "address")?;
            super::credentials::revoke(relay, &target, &req.revocation)
                .await
                .map(Response::new)
        }
        .await;
        relay.track(result)
    }

    async fn get_tree_head(
        &self,
        request: Request<GetTreeHeadRequest>,
    ) -> Result<Response<GetTreeHeadResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            current_log(relay, &request).await?;
            let head = relay.keylog.head();
            let known = request.get_ref().known_tree_size;
            let proof = if known > 0 && known <= head.size {
                relay
                    .keylog
                    .consistency(known, head.size)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            Ok(Response::new(GetTreeHeadResponse {
                log_key: relay.keylog.log_key().to_bytes().to_vec(),
                head: Some(head_to_wire(&head)),
                consistency_proof: hashes_to_wire(&proof),
            }))
        }
        .await;
        relay.track(result)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProofResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            current_log(relay, &request).await?;
            let req = request.get_ref();
            let current = relay.keylog.size();
            if req.new_size > current {
                return Err(size_status("new_size", req.new_size, current));
            }
            if req.old_size > req.new_size {
                return Err(Status::invalid_argument(
                    "old_size must not be larger than new_size",
                ));
            }
            let proof = relay
                .keylog
                .consistency(req.old_size, req.new_size)
                .ok_or_else(|| size_status("new_size", req.new_size, current))?;
            Ok(Response::new(ConsistencyProofResponse {
                proof: hashes_to_wire(&proof),
            }))
        }
        .await;
        relay.track(result)
    }

    async fn get_key_proof(
        &self,
        request: Request<GetKeyProofRequest>,
    ) -> Result<Response<KeyProof>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.limit_anonymous(&request)?;
            let target = address(&request.get_ref().address, "address")?;
            let device = relay
                .store
                .device(&target)
                .await
                .map_err(store_status)?
                .ok_or_else(|| Status::not_found("no device registered at that address"))?;
            let (entry, proof) = relay
                .keylog
                .key_proof(&device)
                .await
                .map_err(store_status)?;
            Ok(Response::new(proof_to_wire(&entry, &proof)))
        }
        .await;
        relay.track(result)
    }

    async fn get_leaves(
        &self,
        request: Request<GetLeavesRequest>,
    ) -> Result<Response<GetLeavesResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            current_log(relay, &request).await?;
            let req = request.get_ref();
            let current = relay.keylog.size();
            if req.from > current {
                return Err(size_status("from", req.from, current));
            }
            let limit = match req.limit {
                0 => MAX_LEAVES_PER_CALL,
                n => (n as usize).min(MAX_LEAVES_PER_CALL),
            };
            Ok(Response::new(GetLeavesResponse {
                leaves: hashes_to_wire(&relay.keylog.leaves(req.from, limit)),
            }))
        }
        .await;
        relay.track(result)
    }
}
