//! `alcove.v1.Keys`: prekey publication and bundle hand-out.

use alcove_api::v1::keys_server::Keys;
use alcove_api::v1::{
    set_delivery_policy_request, CommitCredentialRequest, CountPreKeysRequest, CredentialProof,
    GetBundleRequest, GetBundleResponse, PreKeyCount, RotateSignedPreKeyRequest,
    SetDeliveryPolicyRequest, SetDeliveryPolicyResponse, UploadOneTimePreKeysRequest,
};
use alcove_protocol::delivery::DeliveryVerifier;
use alcove_protocol::prekeys::SignedPreKey;
use alcove_protocol::PublicIdentity;
use alcove_store::DeliveryPolicy;
use tonic::{Request, Response, Status};

use super::auth::parse_one_time_prekeys;
use super::Services;
use crate::errors::store_status;
use alcove_protocol::prekeys::HYBRID_SIGNED_PREKEY_LEN;

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
    async fn commit_credential(
        &self,
        request: Request<CommitCredentialRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let req = request.get_ref();
            super::credentials::commit(relay, &me, &req.digest, &req.issuer)
                .await
                .map(Response::new)
        }
        .await;
        relay.track(result)
    }

    async fn upload_one_time_pre_keys(
        &self,
        request: Request<UploadOneTimePreKeysRequest>,
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
            let keys = parse_one_time_prekeys(
                &request.get_ref().one_time_prekeys,
                relay.limits.max_one_time_prekeys,
                &identity,
                device.signed_prekey.len() == HYBRID_SIGNED_PREKEY_LEN,
            )?;
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
            if !relay.bundle_rate.allow(&me) {
                return Err(Status::resource_exhausted(
                    "too many bundle fetches from this device; one-time prekeys are rate-limited",
                ));
            }
            super::delivery::bundle(relay, request.get_ref()).await
        }
        .await;
        relay.track(result).map(Response::new)
    }

    async fn set_delivery_policy(
        &self,
        request: Request<SetDeliveryPolicyRequest>,
    ) -> Result<Response<SetDeliveryPolicyResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let policy = delivery_policy(request.get_ref().policy.as_ref())?;
            relay
                .store
                .set_delivery_policy(&me, policy)
                .await
                .map_err(|e| match e {
                    alcove_store::StoreError::NotFound(_) => {
                        Status::failed_precondition("device not registered")
                    }
                    e => store_status(e),
                })?;
            Ok(Response::new(SetDeliveryPolicyResponse {}))
        }
        .await;
        relay.track(result)
    }
}

/// The policy a request asks for: a 32-byte verifier, or open.
pub(crate) fn delivery_policy(
    policy: Option<&set_delivery_policy_request::Policy>,
) -> Result<DeliveryPolicy, Status> {
    use set_delivery_policy_request::Policy;
    match policy {
        Some(Policy::Verifier(v)) => DeliveryVerifier::from_bytes(v)
            .map(|v| DeliveryPolicy::Verifier(v.0))
            .map_err(|_| Status::invalid_argument("verifier must be 32 bytes")),
        Some(Policy::Open(true)) => Ok(DeliveryPolicy::Open),
        Some(Policy::Open(false)) | None => Err(Status::invalid_argument(
            "policy must be a 32-byte verifier or open = true",
        )),
    }
}
