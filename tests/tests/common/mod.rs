//! Test harness: the real relay on loopback over a real store — sled in a
//! temporary directory, or PostgreSQL in a schema of its own — and devices
//! that talk to it with real gRPC clients and real keys.
#![allow(dead_code)]

pub mod sdk;

use std::sync::Arc;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::blobs_client::BlobsClient;
use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::{ChallengeRequest, LoginRequest, RegisterRequest};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::{OneTimePreKeyPair, SignedPreKeyPair};
use alcove_protocol::sealed_sender;
use alcove_server::{Config, RelayHandle};
use alcove_store::testing::{postgres_url, TestSchema};
use alcove_store::{PostgresStore, SledStore, Store};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

/// The store a test relay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// sled in a temporary directory (the default deployment).
    Sled,
    /// PostgreSQL at `ALCOVE_TEST_POSTGRES_URL`, in a fresh schema.
    Postgres,
}

impl Backend {
    /// Whether this backend can run here; says why not when it cannot.
    pub fn available(self, test: &str) -> bool {
        match self {
            Backend::Sled => true,
            Backend::Postgres => postgres_url(test).is_some(),
        }
    }
}

/// Declares tests that run once per backend: for each `name`, an
/// `async fn name(backend: Backend)` in scope becomes the tests
/// `name::sled` and `name::postgres` (the latter reports itself skipped
/// without a PostgreSQL server).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::common::Backend;
            #[tokio::test]
            async fn sled() {
                super::$name(Backend::Sled).await
            }
            #[tokio::test]
            async fn postgres() {
                if Backend::Postgres.available(stringify!($name)) {
                    super::$name(Backend::Postgres).await
                }
            }
        }
    )*};
}

/// A relay with its store (a data directory, and a PostgreSQL schema when
/// it runs on PostgreSQL).
pub struct TestRelay {
    pub handle: Option<RelayHandle>,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub backend: Backend,
    schema: Option<TestSchema>,
}

impl TestRelay {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(Backend::Sled, tweak).await
    }

    /// A relay on `backend`, with `tweak` applied to its configuration.
    pub async fn start_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_dir(dir.path());
        let schema = match backend {
            Backend::Sled => None,
            Backend::Postgres => {
                let base = postgres_url("a relay test").expect("checked by available()");
                Some(TestSchema::create(&base).await)
            }
        };
        config.store = schema.as_ref().map(|s| s.url().to_owned());
        config.secrets_file = schema.as_ref().map(|s| s.secrets_file());
        tweak(&mut config);
        let handle = alcove_server::start(config.clone()).await.unwrap();
        Self {
            handle: Some(handle),
            dir,
            config,
            backend,
            schema,
        }
    }

    /// Another relay on this relay's PostgreSQL schema (same secrets
    /// file), with `tweak` applied to its configuration.
    pub async fn another(&self, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = self.config.clone();
        config.data_dir = dir.path().to_owned();
        tweak(&mut config);
        let handle = alcove_server::start(config.clone()).await.unwrap();
        Self {
            handle: Some(handle),
            dir,
            config,
            backend: self.backend,
            schema: None,
        }
    }

    /// The PostgreSQL schema this relay's deployment lives in.
    pub fn schema(&self) -> Option<&TestSchema> {
        self.schema.as_ref()
    }

    /// Opens the relay's store directly (for sled, only once the relay is
    /// stopped), to check what it holds.
    pub async fn open_store(&self) -> Arc<dyn Store> {
        match &self.config.store {
            None => Arc::new(SledStore::open(self.dir.path()).unwrap()),
            Some(url) => Arc::new(PostgresStore::connect(url).await.unwrap()),
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().unwrap().addr
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr()))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Stops the relay (flushing and closing the store) and starts a new
    /// one on the same directory, on a new port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.handle = Some(alcove_server::start(self.config.clone()).await.unwrap());
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.unwrap();
        }
    }
}

/// A device with keys and, once logged in, a token.
pub struct Device {
    pub identity: IdentityKeyPair,
    pub signed_prekey: SignedPreKeyPair,
    pub one_time_prekeys: Vec<OneTimePreKeyPair>,
    pub token: String,
    pub channel: Channel,
    /// Delivery keys other devices gave this one (address → key), presented
    /// when sending to them or fetching their bundles.
    pub access_keys: std::sync::Mutex<std::collections::HashMap<[u8; 32], Vec<u8>>>,
}

impl Device {
    pub fn new(channel: Channel, otks: u32) -> Self {
        let mut rng = rand::rngs::OsRng;
        let identity = IdentityKeyPair::generate(&mut rng);
        let signed_prekey = SignedPreKeyPair::generate(&mut rng, &identity, 1, now_secs());
        let one_time_prekeys = (0..otks)
            .map(|i| OneTimePreKeyPair::generate(&mut rng, &identity, i + 1))
            .collect();
        Self {
            identity,
            signed_prekey,
            one_time_prekeys,
            token: String::new(),
            channel,
            access_keys: Default::default(),
        }
    }

    /// A registered, logged-in device.
    pub async fn registered(relay: &TestRelay, otks: u32) -> Self {
        let mut d = Self::new(relay.channel().await, otks);
        d.register().await.unwrap();
        d
    }

    pub fn address(&self) -> [u8; 32] {
        *self.identity.public().address().as_bytes()
    }

    pub async fn challenge(&self) -> (Vec<u8>, String) {
        let r = AuthClient::new(self.channel.clone())
            .challenge(ChallengeRequest {
                address: self.address().to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        (r.challenge, r.server_id)
    }

    pub fn sign(&self, server_id: &str, challenge: &[u8]) -> Vec<u8> {
        self.identity
            .sign(&alcove_api::auth_message(
                server_id,
                &self.address(),
                challenge,
            ))
            .to_bytes()
            .to_vec()
    }

    pub async fn register(&mut self) -> Result<(), tonic::Status> {
        let (challenge, server_id) = self.challenge().await;
        let signature = self.sign(&server_id, &challenge);
        let r = AuthClient::new(self.channel.clone())
            .register(RegisterRequest {
                identity: self.identity.public().to_bytes().to_vec(),
                signed_prekey: self.signed_prekey.public().to_bytes().to_vec(),
                one_time_prekeys: self
                    .one_time_prekeys
                    .iter()
                    .map(|k| k.public().to_bytes().to_vec())
                    .collect(),
                challenge,
                signature,
                ..Default::default()
            })
            .await?
            .into_inner();
        self.token = r.token;
        Ok(())
    }

    pub async fn login(&mut self) -> Result<(), tonic::Status> {
        let (challenge, server_id) = self.challenge().await;
        let signature = self.sign(&server_id, &challenge);
        let r = AuthClient::new(self.channel.clone())
            .login(LoginRequest {
                address: self.address().to_vec(),
                challenge,
                signature,
            })
            .await?
            .into_inner();
        self.token = r.token;
        Ok(())
    }

    /// A request carrying this device's token.
    pub fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {}", self.token)).unwrap(),
        );
        r
    }

    pub fn mailbox(&self) -> MailboxClient<Channel> {
        MailboxClient::new(self.channel.clone()).max_decoding_message_size(8 << 20)
    }

    pub fn keys(&self) -> KeysClient<Channel> {
        KeysClient::new(self.channel.clone())
    }

    pub fn blobs(&self) -> BlobsClient<Channel> {
        BlobsClient::new(self.channel.clone())
    }

    /// Remembers the delivery key `address` gave out (an SDK profile
    /// requires it of senders).
    pub fn knows(&self, address: &[u8], key: Vec<u8>) {
        if let Ok(a) = <[u8; 32]>::try_from(address) {
            self.access_keys.lock().unwrap().insert(a, key);
        }
    }

    fn access_key(&self, address: &[u8]) -> Vec<u8> {
        <[u8; 32]>::try_from(address)
            .ok()
            .and_then(|a| self.access_keys.lock().unwrap().get(&a).cloned())
            .unwrap_or_default()
    }

    /// The verified prekey bundle of `address`, fetched from the relay.
    pub async fn bundle_of(&self, address: &[u8]) -> alcove_protocol::prekeys::PreKeyBundle {
        let bytes = self
            .keys()
            .get_bundle(self.req(alcove_api::v1::GetBundleRequest {
                address: address.to_vec(),
                access_key: self.access_key(address),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .bundle;
        alcove_protocol::prekeys::PreKeyBundle::from_bytes(&bytes).unwrap()
    }

    /// Sends an envelope through the relay (the relay does not open it).
    pub async fn send_envelope(&self, to: &[u8], client_message_id: Vec<u8>, envelope: Vec<u8>) {
        self.mailbox()
            .send(self.req(alcove_api::v1::SendRequest {
                recipient: to.to_vec(),
                client_message_id,
                envelope,
                access_key: self.access_key(to),
            }))
            .await
            .unwrap();
    }

    /// A real sealed envelope from this device to `to`.
    pub fn seal_to(&self, to: &Device, message: &[u8]) -> Vec<u8> {
        sealed_sender::seal(
            &mut rand::rngs::OsRng,
            &self.identity,
            to.identity.public(),
            message,
        )
        .unwrap()
    }
}

/// Copies a directory tree (a profile, a relay's store, a fixture).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A raw device (the protocol and the relay API, no SDK) opens a session
/// from `bundle` and sends its owner one text; returns the ratchet
/// message's first byte (its kind).
pub async fn raw_first_message(
    device: &Device,
    bundle: &alcove_protocol::prekeys::PreKeyBundle,
    text: &str,
) -> u8 {
    use alcove_protocol::content::{self, Body, Content, Text};
    let mut rng = rand::rngs::OsRng;
    let mut session = alcove_protocol::x3dh::initiate(&mut rng, &device.identity, bundle).unwrap();
    let message = Content {
        message_id: id16(1),
        sent_at_ms: 1,
        body: Some(Body::Text(Text {
            body: text.into(),
            reply_to: vec![],
        })),
        ..Default::default()
    };
    let wire = session
        .encrypt(&mut rng, &content::encode(&message))
        .unwrap();
    let envelope =
        sealed_sender::seal(&mut rng, &device.identity, bundle.identity(), &wire).unwrap();
    let to = bundle.identity().address();
    device.send_envelope(to.as_bytes(), id16(2), envelope).await;
    wire[0]
}

/// The current time in seconds (signed prekeys are dated; clients refuse
/// old ones).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> tonic::Code {
    r.expect_err("expected an error status").code()
}

pub fn id16(n: u8) -> Vec<u8> {
    let mut id = vec![0u8; 16];
    id[0] = n;
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id[1..]);
    id
}

/// Encoded public one-time prekeys with the given ids (fresh secrets).
pub fn one_time_prekeys(identity: &IdentityKeyPair, ids: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::OsRng;
    ids.map(|i| {
        OneTimePreKeyPair::generate(&mut rng, identity, i)
            .public()
            .to_bytes()
            .to_vec()
    })
    .collect()
}
