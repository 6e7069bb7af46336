//! `alcove.v1.Delivery`: sending and bundle fetches without a login token.
//!
//! The relay must not learn who writes to whom. A Delivery call therefore
//! carries no identity at all: [`refuse_tokens`] turns away, before the
//! handler runs, any call that carries `authorization` metadata, and the
//! handlers here never authenticate anyone. What keeps spam out is the
//! recipient's delivery key (`alcove_protocol::delivery`): the sender
//! presents it, the relay compares its hash with the verifier the
//! recipient registered. Rate limits are per IP, per recipient key and,
//! for one-time prekeys, per target: none needs the sender.
//!
//! The deprecated identified calls (`Mailbox.Send`, `Keys.GetBundle`) use
//! the same checks through [`store_envelope`] and [`bundle`].

use alcove_protocol::prekeys::{HYBRID_ONE_TIME_PREKEY_LEN, HYBRID_SIGNED_PREKEY_LEN};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use alcove_api::keylog::hashes_to_wire;
use alcove_api::v1::delivery_server::Delivery;
use alcove_api::v1::{GetBundleRequest, GetBundleResponse, SendRequest, SendResponse};
use alcove_protocol::delivery::DeliveryVerifier;
use alcove_protocol::sealed_sender;
use alcove_store::DeliveryPolicy;
use tonic::{Request, Response, Status};

use super::{limit_ip, Relay};
use crate::auth::now_ms;
use crate::errors::{address, store_status};

/// The Delivery service. It holds the relay state but never calls
/// `Relay::authorize`: nothing here can name a caller.
#[derive(Clone)]
pub struct Unidentified {
    /// Shared state.
    pub relay: Arc<Relay>,
}

/// Interceptor of the Delivery service: a call that carries a login token
/// is refused before it is read, so that no delivery is ever tied to a
/// device, even by a careless client.
#[allow(clippy::result_large_err)]
pub fn refuse_tokens(request: Request<()>) -> Result<Request<()>, Status> {
    if request.metadata().contains_key(alcove_api::AUTHORIZATION) {
        return Err(Status::invalid_argument(
            "Delivery calls must not carry a login token (authorization metadata): \
             they are how senders stay unidentified",
        ));
    }
    Ok(request)
}

/// Checks `access_key` against the recipient's delivery policy. An
/// unregistered recipient is NOT_FOUND; a missing, wrong or rotated-away key
/// is PERMISSION_DENIED. Returns the rate-limit bucket of the credential
/// used: the recipient and its key, or the recipient alone if it accepts
/// anyone.
async fn admit(relay: &Relay, recipient: &[u8; 32], access_key: &[u8]) -> Result<Vec<u8>, Status> {
    let policy = relay
        .store
        .delivery_policy(recipient)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found("recipient not registered"))?;
    let mut bucket = Vec::with_capacity(48);
    bucket.extend_from_slice(recipient);
    match policy {
        DeliveryPolicy::Open => {}
        DeliveryPolicy::Verifier(v) => {
            if access_key.is_empty() {
                return Err(Status::permission_denied(
                    "the recipient accepts only senders presenting its delivery key (access_key)",
                ));
            }
            if !DeliveryVerifier(v).admits(access_key) {
                return Err(Status::permission_denied(
                    "access_key is not the recipient's current delivery key (wrong, or rotated)",
                ));
            }
            bucket.extend_from_slice(access_key);
        }
    }
    Ok(bucket)
}

/// Validates, admits and stores one envelope; shared by `Delivery.Send`
/// and the deprecated `Mailbox.Send`.
pub(crate) async fn store_envelope(
    relay: &Relay,
    req: &SendRequest,
) -> Result<SendResponse, Status> {
    let recipient = address(&req.recipient, "recipient")?;
    let client_message_id: [u8; 16] = req
        .client_message_id
        .as_slice()
        .try_into()
        .map_err(|_| Status::invalid_argument("client_message_id must be 16 bytes"))?;
    let len = req.envelope.len();
    if len > relay.limits.max_envelope_bytes {
        return Err(Status::resource_exhausted(format!(
            "envelope of {len} bytes exceeds the limit of {} bytes; send documents as blobs",
            relay.limits.max_envelope_bytes
        )));
    }
    if req.envelope.first() != Some(&sealed_sender::ENVELOPE_VERSION)
        || !sealed_sender::is_envelope_len(len)
    {
        return Err(Status::invalid_argument(
            "envelope is not a sealed-sender envelope (version 1, padded length)",
        ));
    }
    let credential = admit(relay, &recipient, &req.access_key).await?;
    if !relay.credential_rate.allow(&credential) {
        return Err(Status::resource_exhausted(
            "too many deliveries to this recipient with this key; retry later",
        ));
    }
    let received_at_ms = relay.limits.coarse_time(now_ms());
    let enqueued = relay
        .store
        .enqueue(
            &recipient,
            &client_message_id,
            &req.envelope,
            received_at_ms,
            relay.limits.max_mailbox_depth,
        )
        .await
        .map_err(store_status)?;
    if enqueued.duplicate {
        relay
            .metrics
            .messages_duplicate
            .fetch_add(1, Ordering::Relaxed);
    } else {
        relay
            .metrics
            .messages_accepted
            .fetch_add(1, Ordering::Relaxed);
        relay.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        // `enqueue` returned, so the envelope is durable: live subscribers
        // may take it from memory.
        relay
            .notifier
            .accepted(&recipient, enqueued.sequence, received_at_ms, &req.envelope);
    }
    Ok(SendResponse {
        sequence: enqueued.sequence,
        duplicate: enqueued.duplicate,
    })
}

/// Takes the target's next one-time prekey of the kind its signed prekey
/// has. Classical ones left over from before the device's move to PQXDH
/// are discarded (the device refuses classical first messages now, and a
/// bundle never mixes kinds); the loop is bounded by the per-device limit.
async fn matching_one_time_prekey(
    relay: &Relay,
    target: &[u8; 32],
    hybrid: bool,
) -> Result<Option<Vec<u8>>, Status> {
    for _ in 0..=relay.limits.max_one_time_prekeys {
        match relay
            .store
            .take_one_time_prekey(target)
            .await
            .map_err(store_status)?
        {
            Some(k) if (k.len() == HYBRID_ONE_TIME_PREKEY_LEN) != hybrid => continue,
            other => return Ok(other),
        }
    }
    Ok(None)
}

/// A target's bundle, with its key proof; shared by `Delivery.GetBundle`
/// and the deprecated `Keys.GetBundle`. A one-time prekey is included only
/// while the target's per-target hand-out rate allows.
pub(crate) async fn bundle(
    relay: &Relay,
    req: &GetBundleRequest,
) -> Result<GetBundleResponse, Status> {
    let target = address(&req.address, "address")?;
    admit(relay, &target, &req.access_key).await?;
    let device = relay
        .store
        .device(&target)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found("no device registered at that address"))?;
    let hybrid = device.signed_prekey.len() == HYBRID_SIGNED_PREKEY_LEN;
    let otk = if relay.prekey_target_rate.allow(&target) {
        matching_one_time_prekey(relay, &target, hybrid).await?
    } else {
        relay
            .metrics
            .bundles_without_prekey_by_limit
            .fetch_add(1, Ordering::Relaxed);
        None
    };
    // Version 2 is the hybrid (PQXDH) bundle, version 1 the classical one.
    let mut bundle =
        Vec::with_capacity(1 + 128 + device.signed_prekey.len() + 1 + HYBRID_ONE_TIME_PREKEY_LEN);
    bundle.push(if hybrid { 2 } else { 1 });
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
    let known = req.known_tree_size;
    let consistency_proof = if known > 0 && known < proof.head.size {
        relay
            .keylog
            .consistency(known, proof.head.size)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    relay.metrics.bundles_served.fetch_add(1, Ordering::Relaxed);
    Ok(GetBundleResponse {
        bundle,
        key_proof: Some(super::keylog::proof_to_wire(&entry, &proof)),
        consistency_proof: hashes_to_wire(&consistency_proof),
    })
}

#[tonic::async_trait]
impl Delivery for Unidentified {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            limit_ip(&relay.delivery_ip_rate, &request, "deliveries")?;
            store_envelope(relay, request.get_ref()).await
        }
        .await;
        relay.track(result).map(|r| {
            relay
                .metrics
                .unidentified_sends
                .fetch_add(1, Ordering::Relaxed);
            Response::new(r)
        })
    }

    async fn get_bundle(
        &self,
        request: Request<GetBundleRequest>,
    ) -> Result<Response<GetBundleResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            limit_ip(&relay.bundle_ip_rate, &request, "bundle fetches")?;
            bundle(relay, request.get_ref()).await
        }
        .await;
        relay.track(result).map(Response::new)
    }
}
