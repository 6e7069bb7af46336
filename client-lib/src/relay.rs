//! The connection to the relay: lazy connect, login with the identity key,
//! one transparent re-login when a token expires.

use std::future::Future;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::blobs_client::BlobsClient;
use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::{ChallengeRequest, LoginRequest, RegisterRequest};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use tokio::sync::Mutex;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::error::{Error, Result};

/// Largest message the SDK accepts from the relay.
const MAX_DECODE: usize = 8 << 20;

pub(crate) struct Relay {
    channel: Channel,
    token: Mutex<Option<String>>,
}

/// Typed clients over the shared connection.
#[derive(Clone)]
pub(crate) struct Clients {
    channel: Channel,
}

impl Clients {
    pub(crate) fn mailbox(&self) -> MailboxClient<Channel> {
        MailboxClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODE)
    }

    pub(crate) fn keys(&self) -> KeysClient<Channel> {
        KeysClient::new(self.channel.clone())
    }

    pub(crate) fn keylog(&self) -> KeyLogClient<Channel> {
        KeyLogClient::new(self.channel.clone())
    }

    pub(crate) fn blobs(&self) -> BlobsClient<Channel> {
        BlobsClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODE)
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

async fn proof(channel: &Channel, identity: &IdentityKeyPair) -> Result<(Vec<u8>, Vec<u8>)> {
    let address = identity.public().address();
    let c = AuthClient::new(channel.clone())
        .challenge(ChallengeRequest {
            address: address.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let signature = identity.sign(&alcove_api::auth_message(
        &c.server_id,
        address.as_bytes(),
        &c.challenge,
    ));
    Ok((c.challenge, signature.to_bytes().to_vec()))
}

impl Relay {
    pub(crate) fn new(url: &str) -> Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::InvalidInput(format!("relay URL: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_secs(10));
        Ok(Self {
            channel: endpoint.connect_lazy(),
            token: Mutex::new(None),
        })
    }

    pub(crate) fn clients(&self) -> Clients {
        Clients {
            channel: self.channel.clone(),
        }
    }

    pub(crate) async fn register(
        &self,
        identity: &IdentityKeyPair,
        signed_prekey: &SignedPreKeyPair,
        one_time_prekeys: &[OneTimePreKeyPair],
    ) -> Result<()> {
        let (challenge, signature) = proof(&self.channel, identity).await?;
        let r = AuthClient::new(self.channel.clone())
            .register(RegisterRequest {
                identity: identity.public().to_bytes().to_vec(),
                signed_prekey: signed_prekey.public().to_bytes().to_vec(),
                one_time_prekeys: one_time_prekeys
                    .iter()
                    .map(|k| k.public().to_bytes().to_vec())
                    .collect(),
                challenge,
                signature,
            })
            .await?
            .into_inner();
        *self.token.lock().await = Some(r.token);
        Ok(())
    }

    async fn login(&self, identity: &IdentityKeyPair) -> Result<String> {
        let (challenge, signature) = proof(&self.channel, identity).await?;
        let r = AuthClient::new(self.channel.clone())
            .login(LoginRequest {
                address: identity.public().address().as_bytes().to_vec(),
                challenge,
                signature,
            })
            .await?
            .into_inner();
        *self.token.lock().await = Some(r.token.clone());
        Ok(r.token)
    }

    /// Runs `f` with a valid token, logging in first if needed and once
    /// more if the relay says the token expired.
    pub(crate) async fn call<T, F, Fut>(&self, identity: &IdentityKeyPair, f: F) -> Result<T>
    where
        F: Fn(Clients, String) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        // Release the lock before logging in (login takes it again).
        let current = self.token.lock().await.clone();
        let token = match current {
            Some(t) => t,
            None => self.login(identity).await?,
        };
        match f(self.clients(), token).await {
            Ok(v) => Ok(v),
            Err(s) if s.code() == Code::Unauthenticated => {
                let token = self.login(identity).await?;
                Ok(f(self.clients(), token).await?)
            }
            Err(s) => Err(s.into()),
        }
    }
}
