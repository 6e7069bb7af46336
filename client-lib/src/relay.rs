//! The connection to the relay, as typed calls: lazy connect, login with
//! the identity key, one transparent re-login when a token expires, the
//! relay's server id pinned, its limits learned at login.
//!
//! Every RPC the SDK makes is a method here, so the rest of the SDK never
//! builds a request or touches a token. Sends and bundle fetches go over a
//! second, anonymous transport (by default a TCP connection of its own)
//! that never carries the token: the relay's `Delivery` service, which
//! does not learn who sends. Underneath is a [`Transport`]: any
//! service that carries gRPC requests. The default is a tonic channel over
//! TCP (HTTP/2); a browser build plugs a grpc-web client in its place
//! ([`crate::Profile::with_transport`]) and nothing above this file changes.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::delivery_client::DeliveryClient;

use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::{
    AckRequest, ChallengeRequest, CommitCredentialRequest, ConsistencyProofResponse,
    CountPreKeysRequest, CredentialProof, DownloadRequest, DownloadResponse, Envelope,
    FetchRequest, FinishUploadRequest, GetBundleRequest, GetBundleResponse,
    GetConsistencyProofRequest, GetCredentialProofRequest, GetKeyProofRequest, GetTreeHeadRequest,
    GetTreeHeadResponse, KeyProof, LoginRequest, RegisterRequest, RelayLimits,
    RotateSignedPreKeyRequest, SendRequest, SetDeliveryPolicyRequest, StartUploadRequest,
    StartUploadResponse, SubscribeRequest, UploadOneTimePreKeysRequest, UploadPieceRequest,
    UploadResponse, UploadStatusRequest,
};
use alcove_protocol::delivery::DeliveryVerifier;
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use http::Uri;
use tokio::sync::Mutex;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use tower::util::BoxCloneSyncService;

use crate::error::{Error, Result};

/// Largest message the SDK accepts from the relay.
const MAX_DECODE: usize = 8 << 20;
/// Envelopes asked for per fetch.
pub(crate) const FETCH_PAGE: u32 = 100;

/// How the SDK reaches the relay: a cloneable service that takes gRPC
/// requests (HTTP requests with tonic bodies) and returns their responses.
/// [`Transport::tcp`] builds the default.
#[derive(Clone)]
pub struct Transport(
    BoxCloneSyncService<
        http::Request<tonic::body::Body>,
        http::Response<tonic::body::Body>,
        BoxError,
    >,
);

/// The error a [`Transport`] reports (a connection failure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Transport {
    /// Wraps any service that carries gRPC requests.
    pub fn new<S>(service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = BoxError,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self(BoxCloneSyncService::new(service))
    }

    /// The default: a lazily connected tonic channel over TCP to `url`
    /// (`http://` or `https://`), checked before anything is dialled.
    #[cfg(feature = "native")]
    pub fn tcp(url: &str) -> crate::Result<Self> {
        let uri = parse_url(url)?;
        let channel = tonic::transport::Endpoint::from(uri)
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect_lazy();
        Ok(Self::new(tower::ServiceExt::map_err(channel, |e| {
            Box::new(e) as BoxError
        })))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = <BoxCloneSyncService<
        http::Request<tonic::body::Body>,
        http::Response<tonic::body::Body>,
        BoxError,
    > as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.call(request)
    }
}

pub(crate) struct Relay {
    channel: Transport,
    /// Never carries the token: sends and bundle fetches.
    anonymous: Transport,
    identity: Arc<IdentityKeyPair>,
    token: Mutex<Option<String>>,
    /// The server id this profile pinned (`None` until registration).
    server_id: StdMutex<Option<String>>,
    limits: StdMutex<Option<RelayLimits>>,
}

/// Typed clients over the shared connection.
#[derive(Clone)]
pub(crate) struct Clients {
    channel: Transport,
}

impl Clients {
    fn mailbox(&self) -> MailboxClient<Transport> {
        MailboxClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODE)
    }

    fn keys(&self) -> KeysClient<Transport> {
        KeysClient::new(self.channel.clone())
    }

    fn keylog(&self) -> KeyLogClient<Transport> {
        KeyLogClient::new(self.channel.clone())
    }

    pub(crate) fn blobs(&self) -> alcove_api::v1::blobs_client::BlobsClient<Transport> {
        alcove_api::v1::blobs_client::BlobsClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_DECODE)
    }
}

/// A request carrying a session token.
pub(crate) fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Ok(v) = MetadataValue::try_from(format!("{}{token}", alcove_api::BEARER)) {
        r.metadata_mut().insert(alcove_api::AUTHORIZATION, v);
    }
    r
}

/// A Delivery refusal: PERMISSION_DENIED means the recipient wants a key
/// this device does not have (yet); everything else maps as usual.
fn delivery_error(s: Status) -> Error {
    if s.code() == Code::PermissionDenied {
        crate::delivery::not_accepted(s.message().to_string())
    } else {
        s.into()
    }
}

/// Checks that `url` is an absolute `http://` or `https://` URL with a
/// host, before anything is written or dialled.
pub(crate) fn parse_url(url: &str) -> Result<Uri> {
    let invalid = |reason: &str| Error::InvalidRelayUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("does not parse as a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err(invalid("the scheme must be http or https")),
        None => return Err(invalid("it has no scheme")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => {}
        _ => return Err(invalid("it has no host")),
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(invalid("a relay URL has no path"));
    }
    Ok(uri)
}

impl Relay {
    pub(crate) fn new(
        transport: Transport,
        anonymous: Transport,
        identity: Arc<IdentityKeyPair>,
        server_id: Option<String>,
    ) -> Self {
        Self {
            channel: transport,
            anonymous,
            identity,
            token: Mutex::new(None),
            server_id: StdMutex::new(server_id),
            limits: StdMutex::new(None),
        }
    }

    pub(crate) fn clients(&self) -> Clients {
        Clients {
            channel: self.channel.clone(),
        }
    }

    /// A signed answer to a fresh challenge, refusing a relay whose server
    /// id differs from the pinned one (before signing anything). Returns
    /// the relay's server id with the proof.
    async fn proof(&self) -> Result<(Vec<u8>, Vec<u8>, String)> {
        let address = self.identity.public().address();
        let c = AuthClient::new(self.channel.clone())
            .challenge(ChallengeRequest {
                address: address.as_bytes().to_vec(),
            })
            .await?
            .into_inner();
        let pinned = self.server_id.lock().ok().and_then(|g| g.clone());
        if let Some(expected) = pinned {
            if expected != c.server_id {
                return Err(Error::WrongRelay {
                    expected,
                    got: c.server_id,
                });
            }
        }
        let signature = self.identity.sign(&alcove_api::auth_message(
            &c.server_id,
            address.as_bytes(),
            &c.challenge,
        ));
        Ok((c.challenge, signature.to_bytes().to_vec(), c.server_id))
    }

    fn learn(&self, token: &str, limits: Option<RelayLimits>) -> String {
        if let (Some(l), Ok(mut slot)) = (limits, self.limits.lock()) {
            *slot = Some(l);
        }
        token.to_string()
    }

    /// Registers the identity and its prekeys; returns the relay's server
    /// id, which the caller pins.
    pub(crate) async fn register(
        &self,
        signed_prekey: &SignedPreKeyPair,
        one_time_prekeys: &[OneTimePreKeyPair],
        delivery: &DeliveryVerifier,
    ) -> Result<String> {
        let (challenge, signature, server_id) = self.proof().await?;
        let r = AuthClient::new(self.channel.clone())
            .register(RegisterRequest {
                identity: self.identity.public().to_bytes().to_vec(),
                signed_prekey: signed_prekey.public().to_bytes().to_vec(),
                one_time_prekeys: one_time_prekeys
                    .iter()
                    .map(|k| k.public().to_bytes().to_vec())
                    .collect(),
                challenge,
                signature,
                delivery_verifier: delivery.0.to_vec(),
            })
            .await?
            .into_inner();
        let token = self.learn(&r.token, r.limits);
        *self.token.lock().await = Some(token);
        if let Ok(mut slot) = self.server_id.lock() {
            *slot = Some(server_id.clone());
        }
        Ok(server_id)
    }

    async fn login(&self) -> Result<String> {
        let (challenge, signature, _) = self.proof().await?;
        let r = AuthClient::new(self.channel.clone())
            .login(LoginRequest {
                address: self.identity.public().address().as_bytes().to_vec(),
                challenge,
                signature,
            })
            .await?
            .into_inner();
        let token = self.learn(&r.token, r.limits);
        *self.token.lock().await = Some(token.clone());
        Ok(token)
    }

    /// Runs `f` with a valid token, logging in first if needed and once
    /// more if the relay says the token expired.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Clients, String) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        // Release the lock before logging in (login takes it again).
        let current = self.token.lock().await.clone();
        let token = match current {
            Some(t) => t,
            None => self.login().await?,
        };
        match f(self.clients(), token).await {
            Ok(v) => Ok(v),
            Err(s) if s.code() == Code::Unauthenticated => {
                let token = self.login().await?;
                Ok(f(self.clients(), token).await?)
            }
            Err(s) => Err(s.into()),
        }
    }

    /// A valid session token (logging in if needed), for streaming calls.
    #[cfg(feature = "native")]
    pub(crate) async fn token(&self) -> Result<String> {
        self.call(|_, token| async move { Ok(token) }).await
    }

    /// The relay's limits, learned at login (logging in if needed).
    pub(crate) async fn limits(&self) -> Result<RelayLimits> {
        if let Some(l) = self.limits.lock().ok().and_then(|g| *g) {
            return Ok(l);
        }
        self.login().await?;
        self.limits
            .lock()
            .ok()
            .and_then(|g| *g)
            .ok_or_else(|| Error::Offline("the relay did not say its limits".into()))
    }

    /// The relay's limits as it says them now (logs in again).
    pub(crate) async fn refresh_limits(&self) -> Result<RelayLimits> {
        self.login().await?;
        self.known_limits()
            .ok_or_else(|| Error::Offline("the relay did not say its limits".into()))
    }

    /// The limits if already known, without a round trip.
    pub(crate) fn known_limits(&self) -> Option<RelayLimits> {
        self.limits.lock().ok().and_then(|g| *g)
    }

    fn delivery(&self) -> DeliveryClient<Transport> {
        DeliveryClient::new(self.anonymous.clone()).max_decoding_message_size(MAX_DECODE)
    }

    /// Delivers an envelope without identifying this device: no token, on
    /// the anonymous transport, with the recipient's delivery key. A
    /// refusal for want of the right key is [`Error::NotAccepted`].
    pub(crate) async fn send(
        &self,
        recipient: &[u8; 32],
        relay_id: &[u8; 16],
        envelope: &[u8],
        access_key: Option<&[u8; 16]>,
    ) -> Result<()> {
        self.delivery()
            .send(SendRequest {
                recipient: recipient.to_vec(),
                client_message_id: relay_id.to_vec(),
                envelope: envelope.to_vec(),
                access_key: access_key.map(|k| k.to_vec()).unwrap_or_default(),
            })
            .await
            .map(|_| ())
            .map_err(delivery_error)
    }

    /// Sets who may deliver to this device: holders of the key behind
    /// `verifier`, or (None) anyone.
    pub(crate) async fn set_delivery_policy(&self, verifier: Option<[u8; 32]>) -> Result<()> {
        use alcove_api::v1::set_delivery_policy_request::Policy;
        self.call(|c, token| {
            let req = authed(
                &token,
                SetDeliveryPolicyRequest {
                    policy: Some(match verifier {
                        Some(v) => Policy::Verifier(v.to_vec()),
                        None => Policy::Open(true),
                    }),
                },
            );
            async move { c.keys().set_delivery_policy(req).await.map(|_| ()) }
        })
        .await
    }

    /// The oldest waiting envelopes, and whether more wait.
    pub(crate) async fn fetch_page(&self) -> Result<(Vec<Envelope>, bool)> {
        self.call(|c, token| {
            let req = authed(
                &token,
                FetchRequest {
                    after_sequence: 0,
                    limit: FETCH_PAGE,
                    mailbox: vec![],
                },
            );
            async move {
                c.mailbox().fetch(req).await.map(|r| {
                    let r = r.into_inner();
                    (r.envelopes, r.more)
                })
            }
        })
        .await
    }

    pub(crate) async fn ack(&self, sequences: &[u64]) -> Result<()> {
        self.call(|c, token| {
            let req = authed(
                &token,
                AckRequest {
                    sequences: sequences.to_vec(),
                    mailbox: vec![],
                },
            );
            async move { c.mailbox().ack(req).await.map(|_| ()) }
        })
        .await
    }

    pub(crate) async fn subscribe(&self) -> Result<tonic::Streaming<Envelope>> {
        self.call(|c, token| {
            let req = authed(&token, SubscribeRequest::default());
            async move { c.mailbox().subscribe(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Reserves a blob of `size` bytes for a unary (resumable) upload.
    pub(crate) async fn start_upload(&self, size: u64) -> Result<StartUploadResponse> {
        self.call(|c, token| {
            let req = authed(&token, StartUploadRequest { size });
            async move { c.blobs().start_upload(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// Stores piece `index` of an upload (again, if it was sent before).
    pub(crate) async fn upload_piece(
        &self,
        upload_id: &[u8],
        index: u32,
        data: &[u8],
    ) -> Result<()> {
        self.call(|c, token| {
            let req = authed(
                &token,
                UploadPieceRequest {
                    upload_id: upload_id.to_vec(),
                    index,
                    data: data.to_vec(),
                },
            );
            async move { c.blobs().upload_piece(req).await.map(|_| ()) }
        })
        .await
    }

    /// The pieces of an upload the relay does not hold, ascending.
    pub(crate) async fn missing_pieces(&self, upload_id: &[u8]) -> Result<Vec<u32>> {
        self.call(|c, token| {
            let req = authed(
                &token,
                UploadStatusRequest {
                    upload_id: upload_id.to_vec(),
                },
            );
            async move {
                c.blobs()
                    .upload_status(req)
                    .await
                    .map(|r| r.into_inner().missing)
            }
        })
        .await
    }

    /// Finishes a unary upload (every piece must be there).
    pub(crate) async fn finish_upload(&self, upload_id: &[u8]) -> Result<UploadResponse> {
        self.call(|c, token| {
            let req = authed(
                &token,
                FinishUploadRequest {
                    upload_id: upload_id.to_vec(),
                },
            );
            async move { c.blobs().finish_upload(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    /// The stream of a blob's bytes.
    pub(crate) async fn download(
        &self,
        blob_id: &[u8],
    ) -> Result<tonic::Streaming<DownloadResponse>> {
        self.call(|c, token| {
            let req = authed(
                &token,
                DownloadRequest {
                    blob_id: blob_id.to_vec(),
                },
            );
            async move { c.blobs().download(req).await.map(|r| r.into_inner()) }
        })
        .await
    }

    pub(crate) async fn count_prekeys(&self) -> Result<u32> {
        self.call(|c, token| {
            let req = authed(&token, CountPreKeysRequest {});
            async move {
                c.keys()
                    .count_pre_keys(req)
                    .await
                    .map(|r| r.into_inner().one_time_prekeys)
            }
        })
        .await
    }

    pub(crate) async fn upload_prekeys(&self, publics: Vec<Vec<u8>>) -> Result<()> {
        self.call(|c, token| {
            let req = authed(
                &token,
                UploadOneTimePreKeysRequest {
                    one_time_prekeys: publics.clone(),
                },
            );
            async move { c.keys().upload_one_time_pre_keys(req).await.map(|_| ()) }
        })
        .await
    }

    pub(crate) async fn rotate_signed_prekey(&self, public: Vec<u8>) -> Result<()> {
        self.call(|c, token| {
            let req = authed(
                &token,
                RotateSignedPreKeyRequest {
                    signed_prekey: public.clone(),
                },
            );
            async move { c.keys().rotate_signed_pre_key(req).await.map(|_| ()) }
        })
        .await
    }

    /// Another device's bundle, without identifying this device.
    pub(crate) async fn get_bundle(
        &self,
        address: &[u8; 32],
        known_tree_size: u64,
        access_key: Option<&[u8; 16]>,
    ) -> Result<GetBundleResponse> {
        self.delivery()
            .get_bundle(GetBundleRequest {
                address: address.to_vec(),
                known_tree_size,
                access_key: access_key.map(|k| k.to_vec()).unwrap_or_default(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(delivery_error)
    }

    pub(crate) async fn tree_head(&self, known_tree_size: u64) -> Result<GetTreeHeadResponse> {
        Ok(self
            .clients()
            .keylog()
            .get_tree_head(GetTreeHeadRequest { known_tree_size })
            .await?
            .into_inner())
    }

    pub(crate) async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProofResponse> {
        Ok(self
            .clients()
            .keylog()
            .get_consistency_proof(GetConsistencyProofRequest { old_size, new_size })
            .await?
            .into_inner())
    }

    pub(crate) async fn key_proof(&self, address: &[u8; 32]) -> Result<KeyProof> {
        Ok(self
            .clients()
            .keylog()
            .get_key_proof(GetKeyProofRequest {
                address: address.to_vec(),
            })
            .await?
            .into_inner())
    }

    /// Commits this device's credential (digest and issuer) in the key log.
    pub(crate) async fn commit_credential(
        &self,
        digest: [u8; 32],
        issuer: [u8; 32],
    ) -> Result<CredentialProof> {
        self.call(|c, token| {
            let req = authed(
                &token,
                CommitCredentialRequest {
                    digest: digest.to_vec(),
                    issuer: issuer.to_vec(),
                },
            );
            async move {
                c.keys()
                    .commit_credential(req)
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
    }

    /// A device's current credential record with its proof.
    pub(crate) async fn credential_proof(&self, address: &[u8; 32]) -> Result<CredentialProof> {
        Ok(self
            .clients()
            .keylog()
            .get_credential_proof(GetCredentialProofRequest {
                address: address.to_vec(),
            })
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;
    use crate::Error;

    #[test]
    fn relay_urls_are_checked_before_use() {
        for good in [
            "http://127.0.0.1:7443",
            "https://relay.example.org",
            "http://[::1]:7443/",
        ] {
            parse_url(good).unwrap();
        }
        for bad in [
            "notaurl",
            "127.0.0.1:7443",
            "ftp://relay",
            "http://",
            "http://h/x",
        ] {
            match parse_url(bad) {
                Err(Error::InvalidRelayUrl { url, .. }) => assert_eq!(url, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
