//! `alcove.v1.Keys`: prekey publication and bundle hand-out.

use alcove_api::v1::keys_server::Keys;
use alcove_api::v1::{
    CountPreKeysRequest, GetBundleRequest, GetBundleResponse, PreKeyCount,
    RotateSignedPreKeyRequest, UploadOneTimePreKeysRequest,
};
use alcove_protocol::prekeys::SignedPreKey;
use alcove_protocol::PublicIdentity;
use std::sync::atomic::Ordering;
use tonic::{Request, Response, Status};

use alcove_api::keylog::hashes_to_wire;

use super::auth::parse_one_time_prekeys;
use super::Services;
use crate::errors::{address, store_status};

fn count(n: usize) -> Response<PreKeyCount> {
    Response::new(PreKeyCount {
        one_time_prekeys: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

/// The caller's one-time prekeys left on the relay, as a response.
async fn stock(relay: &super::Relay, me: &[u8; 32]) -> Result<Response<PreKeyCount>, Status> {
    let n = relay
        .store
        .count_one_time_prekeys(me)
        .await
        .map_err(store_status)?;
    Ok(count(n))
}

#[tonic::async_trait]
impl Keys for Services {
    async fn upload_one_time_pre_keys(
        &self,
        request: Request<UploadOneTimePreKeysRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let keys = parse_one_time_prekeys(
                &request.get_ref().one_time_prekeys,
                relay.limits.max_one_time_prekeys,
            )?;
            if relay
                .store
                .device(&me)
                .await
                .map_err(store_status)?
                .is_none()
            {
                return Err(Status::failed_precondition("device not registered"));
            }
            let n = relay
                .store
                .add_one_time_prekeys(&me, &keys, relay.limits.max_one_time_prekeys)
                .await
                .map_err(store_status)?;
            Ok(count(n))
        }
        .await;
        relay.track(result)
    }

    async fn rotate_signed_pre_key(
        &self,
        request: Request<RotateSignedPreKeyRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let device = relay
                .store
                .device(&me)
                .await
                .map_err(store_status)?
                .ok_or_else(|| Status::failed_precondition("device not registered"))?;
            let identity = PublicIdentity::from_bytes(&device.identity)
                .map_err(|_| Status::internal("stored identity is corrupt"))?;
            let spk = SignedPreKey::from_bytes(&request.get_ref().signed_prekey, &identity)
                .map_err(|e| Status::invalid_argument(format!("signed_prekey: {e}")))?;
            relay
                .keylog
                .publish(&me, None, &spk.to_bytes())
                .await
                .map_err(store_status)?;
            stock(relay, &me).await
        }
        .await;
        relay.track(result)
    }

    async fn count_pre_keys(
        &self,
        request: Request<CountPreKeysRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            stock(relay, &me).await
        }
        .await;
        relay.track(result)
    }

    async fn get_bundle(
        &self,
        request: Request<GetBundleRequest>,
    ) -> Result<Response<GetBundleResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let target = address(&request.get_ref().address, "address")?;
            let known_tree_size = request.get_ref().known_tree_size;
            if !relay.bundle_rate.allow(&me) {
                return Err(Status::resource_exhausted(
                    "too many bundle fetches from this device; one-time prekeys are rate-limited",
                ));
            }
            let device = relay
                .store
                .device(&target)
                .await
                .map_err(store_status)?
                .ok_or_else(|| Status::not_found("no device registered at that address"))?;
            let otk = relay
                .store
                .take_one_time_prekey(&target)
                .await
                .map_err(store_status)?;
            let mut bundle = Vec::with_capacity(1 + 128 + 108 + 1 + 36);
            bundle.push(1);
            bundle.extend_from_slice(&device.identity);
            bundle.extend_from_slice(&device.signed_prekey);
            match otk {
                Some(k) => {
                    bundle.push(1);
                    bundle.extend_from_slice(&k);
                }
                None => bundle.push(0),
            }
            let (entry, proof) = relay
                .keylog
                .key_proof(&device)
                .await
                .map_err(store_status)?;
            let consistency_proof = if known_tree_size > 0 && known_tree_size < proof.head.size {
                relay
                    .keylog
                    .consistency(known_tree_size, proof.head.size)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            relay.metrics.bundles_served.fetch_add(1, Ordering::Relaxed);
            Ok(Response::new(GetBundleResponse {
                bundle,
                key_proof: Some(super::keylog::proof_to_wire(&entry, &proof)),
                consistency_proof: hashes_to_wire(&consistency_proof),
            }))
        }
        .await;
        relay.track(result)
    }
}
