//! `alcove.v1.Auth`: challenges, registration, login.

use alcove_api::v1::auth_server::Auth;
use alcove_api::v1::{
    ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse, RegisterRequest,
};
use alcove_protocol::prekeys::{OneTimePreKey, SignedPreKey};
use alcove_protocol::PublicIdentity;
use tonic::{Request, Response, Status};

use super::Services;
use crate::errors::{address, store_status};

/// Parses uploaded one-time prekeys: each must be of the device's kind
/// (hybrid exactly when its signed prekey is, so that no bundle mixes the
/// two) and a hybrid one must carry the device's signature. Bad keys and
/// repeated ids are refused.
pub(crate) fn parse_one_time_prekeys(
    raw: &[Vec<u8>],
    max: usize,
    identity: &PublicIdentity,
    hybrid: bool,
) -> Result<Vec<(u32, Vec<u8>)>, Status> {
    if raw.len() > max {
        return Err(Status::resource_exhausted(format!(
            "at most {max} one-time prekeys per device"
        )));
    }
    let mut out: Vec<(u32, Vec<u8>)> = Vec::with_capacity(raw.len());
    for (i, bytes) in raw.iter().enumerate() {
        let key = OneTimePreKey::from_bytes(bytes)
            .map_err(|e| Status::invalid_argument(format!("one_time_prekeys[{i}]: {e}")))?;
        if key.is_hybrid() != hybrid {
            return Err(Status::invalid_argument(format!(
                "one_time_prekeys[{i}]: a {} one-time prekey for a device whose signed prekey is {}",
                kind(key.is_hybrid()),
                kind(hybrid)
            )));
        }
        key.verify(identity)
            .map_err(|e| Status::invalid_argument(format!("one_time_prekeys[{i}]: {e}")))?;
        if out.iter().any(|(id, _)| *id == key.id) {
            return Err(Status::invalid_argument(format!(
                "one_time_prekeys[{i}]: repeated id {}",
                key.id
            )));
        }
        out.push((key.id, bytes.clone()));
    }
    Ok(out)
}

fn kind(hybrid: bool) -> &'static str {
    if hybrid {
        "hybrid (ML-KEM)"
    } else {
        "classical"
    }
}

#[tonic::async_trait]
impl Auth for Services {
    async fn challenge(
        &self,
        request: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        let relay = &self.relay;
        relay.track((|| {
            super::limit_ip(&relay.challenge_rate, &request, "challenges")?;
            let addr = address(&request.get_ref().address, "address")?;
            let (challenge, expires_at_ms) = relay.auth.issue_challenge(addr);
            Ok(Response::new(ChallengeResponse {
                challenge,
                expires_at_ms,
                server_id: relay.auth.server_id().to_owned(),
            }))
        })())
    }

    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            super::limit_ip(&relay.register_rate, &request, "registrations")?;
            let req = request.get_ref();
            let identity = PublicIdentity::from_bytes(&req.identity)
                .map_err(|e| Status::invalid_argument(format!("identity: {e}")))?;
            let signed_prekey = SignedPreKey::from_bytes(&req.signed_prekey, &identity)
                .map_err(|e| Status::invalid_argument(format!("signed_prekey: {e}")))?;
            let otks = parse_one_time_prekeys(
                &req.one_time_prekeys,
                relay.limits.max_one_time_prekeys,
                &identity,
                signed_prekey.is_hybrid(),
            )?;
            let delivery = if req.delivery_verifier.is_empty() {
                None
            } else {
                Some(super::keys::delivery_policy(Some(
                    &alcove_api::v1::set_delivery_policy_request::Policy::Verifier(
                        req.delivery_verifier.clone(),
                    ),
                ))?)
            };
            let addr = *identity.address().as_bytes();
            relay.auth.verify_proof(
                &addr,
                &req.challenge,
                &req.signature,
                identity.signing_key(),
            )?;
            relay
                .keylog
                .publish(&addr, Some(&identity.to_bytes()), &signed_prekey.to_bytes())
                .await
                .map_err(store_status)?;
            if !otks.is_empty() {
                relay
                    .store
                    .add_one_time_prekeys(&addr, &otks, relay.limits.max_one_time_prekeys)
                    .await
                    .map_err(store_status)?;
            }
            if let Some(policy) = delivery {
                relay
                    .store
                    .set_delivery_policy(&addr, policy)
                    .await
                    .map_err(store_status)?;
            }
            let (token, expires_at_ms) = relay.auth.issue_token(&addr);
            tracing::info!("device registered");
            Ok(Response::new(LoginResponse {
                token,
                expires_at_ms,
                limits: Some(relay.limits.for_clients()),
            }))
        }
        .await;
        relay.track(result)
    }

    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.limit_anonymous(&request)?;
            let req = request.get_ref();
            let addr = address(&req.address, "address")?;
            let device = relay
                .store
                .device(&addr)
                .await
                .map_err(store_status)?
                .ok_or_else(|| {
                    Status::failed_precondition("device not registered; call Register")
                })?;
            let identity = PublicIdentity::from_bytes(&device.identity)
                .map_err(|_| Status::internal("stored identity is corrupt"))?;
            relay.auth.verify_proof(
                &addr,
                &req.challenge,
                &req.signature,
                identity.signing_key(),
            )?;
            let (token, expires_at_ms) = relay.auth.issue_token(&addr);
            Ok(Response::new(LoginResponse {
                token,
                expires_at_ms,
                limits: Some(relay.limits.for_clients()),
            }))
        }
        .await;
        relay.track(result)
    }
}
