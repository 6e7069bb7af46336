//! A malicious relay in front of the real one, and the SDK catching it.
//!
//! The harness is a gRPC proxy that exists only in this test file (it is
//! not part of any binary): it forwards the SDK's calls to a real relay on
//! loopback and, when told to, rewrites what `Delivery.GetBundle` (or the
//! older `Keys.GetBundle`) returns. It
//! holds the log's signing key, as an operator gone bad would, so it can
//! also sign forked or backdated heads. Each attack the SDK must detect:
//! a substituted identity key, a stale signed prekey (both for a contact
//! seen before and for a first contact), a forked log, a replayed old head,
//! a backdated head and a head signed by another key. For each, the SDK
//! returns a distinct error, opens no session and sends nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcove_api::keylog::{hashes_to_wire, head_to_wire, proof_from_wire};
use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::auth_server::{Auth, AuthServer};
use alcove_api::v1::delivery_client::DeliveryClient;
use alcove_api::v1::delivery_server::{Delivery, DeliveryServer};
use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::key_log_server::{KeyLog, KeyLogServer};
use alcove_api::v1::keys_client::KeysClient;
use alcove_api::v1::keys_server::{Keys, KeysServer};
use alcove_api::v1::mailbox_client::MailboxClient;
use alcove_api::v1::mailbox_server::{Mailbox, MailboxServer};
use alcove_api::v1::*;
use alcove_client::{Client, Error, TransparencyError};
use alcove_keylog::{key_leaf, MerkleLog, SignedTreeHead};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::invite::Invite;
use alcove_protocol::prekeys::{PreKeyBundle, SignedPreKeyPair};
use alcove_store::{SledStore, Store};
use common::Device;
use ed25519_dalek::SigningKey;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// What the proxy does to `GetBundle` answers for the victim's address.
#[derive(Clone)]
enum Attack {
    Honest,
    /// Serve this bundle instead, with the genuine proof.
    SubstituteBundle(Vec<u8>),
    /// Serve the victim's keys of this earlier log entry (bundle bytes,
    /// entry index, epoch, salt), with a fresh inclusion proof in the
    /// current tree: every hash checks out, the keys are just superseded.
    StaleEntry(Vec<u8>, u64, u64, [u8; 32]),
    /// Serve this bundle under a forked log in which the victim's leaf at
    /// `index` is replaced by a leaf for the bundle's keys.
    Fork(Vec<u8>, u64),
    /// Serve this response recorded earlier.
    Replay(GetBundleResponse),
    /// Re-sign the genuine head with this timestamp.
    Backdate(u64),
    /// Re-sign the genuine head with another key.
    ForeignKey,
}

struct Proxy {
    upstream: Channel,
    log_key: SigningKey,
    victim: Mutex<[u8; 32]>,
    attack: Mutex<Attack>,
    /// Every genuine GetBundle response, newest last.
    seen: Mutex<Vec<GetBundleResponse>>,
    /// What the proxy does to `Mailbox.Fetch` answers.
    fetch_attack: Mutex<FetchAttack>,
    /// Every genuine envelope fetched, with the token that fetched it.
    fetched: Mutex<Vec<(String, Envelope)>>,
}

/// Tampering with the envelopes the relay returns. Each mode keeps the
/// genuine envelopes in the page and adds or rearranges others, so that
/// the test can check both that junk is refused and that nothing genuine
/// is lost or doubled.
#[derive(Clone, Copy, Debug)]
enum FetchAttack {
    Honest,
    /// A copy with one bit flipped before each envelope.
    BitFlip,
    /// Truncated copies before each envelope.
    Truncate,
    /// Every envelope twice.
    Duplicate,
    /// The page in reverse order.
    Reorder,
    /// Envelopes this device fetched before, again.
    Replay,
    /// Envelopes fetched by another device, mixed in.
    Foreign,
}

fn forward<T>(request: Request<T>) -> Request<T> {
    let (meta, _, message) = request.into_parts();
    let mut r = Request::new(message);
    if let Some(v) = meta.get(alcove_api::AUTHORIZATION) {
        r.metadata_mut()
            .insert(alcove_api::AUTHORIZATION, v.clone());
    }
    r
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[derive(Clone)]
struct Svc(Arc<Proxy>);

impl Svc {
    fn keylog(&self) -> KeyLogClient<Channel> {
        KeyLogClient::new(self.0.upstream.clone())
    }

    /// All genuine leaves, from the relay's public log.
    async fn leaves(&self) -> Vec<[u8; 32]> {
        let r = self
            .keylog()
            .get_leaves(GetLeavesRequest { from: 0, limit: 0 })
            .await
            .unwrap()
            .into_inner();
        alcove_keylog::hashes(&r.leaves).unwrap()
    }

    async fn tamper(&self, mut genuine: GetBundleResponse, known: u64) -> GetBundleResponse {
        let attack = self.0.attack.lock().unwrap().clone();
        let proof = genuine.key_proof.as_mut().unwrap();
        match attack {
            Attack::Honest => {}
            Attack::SubstituteBundle(bundle) => genuine.bundle = bundle,
            Attack::StaleEntry(bundle, index, epoch, salt) => {
                let mut log = MerkleLog::new();
                for l in self.leaves().await {
                    log.push(l);
                }
                let size = proof.head.as_ref().unwrap().size;
                genuine.bundle = bundle;
                proof.index = index;
                proof.epoch = epoch;
                proof.salt = salt.to_vec();
                proof.audit_path = hashes_to_wire(&log.inclusion_proof(index, size).unwrap());
            }
            Attack::Fork(bundle, index) => {
                let parsed = PreKeyBundle::from_bytes(&bundle).unwrap();
                let salt = [0x5a; 32];
                let mut log = MerkleLog::new();
                for (i, l) in self.leaves().await.into_iter().enumerate() {
                    log.push(if i as u64 == index {
                        key_leaf(
                            &salt,
                            parsed.identity().address().as_bytes(),
                            &parsed.identity().to_bytes(),
                            &parsed.signed_prekey().to_bytes(),
                            0,
                        )
                    } else {
                        l
                    });
                }
                let size = log.size();
                let head = SignedTreeHead::sign(
                    &self.0.log_key,
                    size,
                    log.root_at(size).unwrap(),
                    now_ms(),
                );
                genuine.bundle = bundle;
                proof.index = index;
                proof.epoch = 0;
                proof.salt = salt.to_vec();
                proof.audit_path = hashes_to_wire(&log.inclusion_proof(index, size).unwrap());
                proof.head = Some(head_to_wire(&head));
                genuine.consistency_proof = if known > 0 && known < size {
                    hashes_to_wire(&log.consistency_proof(known, size).unwrap())
                } else {
                    vec![]
                };
            }
            Attack::Replay(old) => genuine = old,
            Attack::Backdate(at) => {
                let h = proof_from_wire(Some(proof)).unwrap().head;
                let forged = SignedTreeHead::sign(&self.0.log_key, h.size, h.root, at);
                proof.head = Some(head_to_wire(&forged));
            }
            Attack::ForeignKey => {
                let h = proof_from_wire(Some(proof)).unwrap().head;
                let other = SigningKey::from_bytes(&[0x66; 32]);
                let forged = SignedTreeHead::sign(&other, h.size, h.root, h.timestamp_ms);
                proof.head = Some(head_to_wire(&forged));
            }
        }
        genuine
    }
}

#[tonic::async_trait]
impl Auth for Svc {
    async fn challenge(
        &self,
        r: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        AuthClient::new(self.0.upstream.clone())
            .challenge(forward(r))
            .await
    }
    async fn register(
        &self,
        r: Request<RegisterRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        AuthClient::new(self.0.upstream.clone())
            .register(forward(r))
            .await
    }
    async fn login(&self, r: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        AuthClient::new(self.0.upstream.clone())
            .login(forward(r))
            .await
    }
}

#[tonic::async_trait]
impl Keys for Svc {
    async fn commit_credential(
        &self,
        r: Request<CommitCredentialRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        KeysClient::new(self.0.upstream.clone())
            .commit_credential(forward(r))
            .await
    }
    async fn upload_one_time_pre_keys(
        &self,
        r: Request<UploadOneTimePreKeysRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        KeysClient::new(self.0.upstream.clone())
            .upload_one_time_pre_keys(forward(r))
            .await
    }
    async fn rotate_signed_pre_key(
        &self,
        r: Request<RotateSignedPreKeyRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        KeysClient::new(self.0.upstream.clone())
            .rotate_signed_pre_key(forward(r))
            .await
    }
    async fn count_pre_keys(
        &self,
        r: Request<CountPreKeysRequest>,
    ) -> Result<Response<PreKeyCount>, Status> {
        KeysClient::new(self.0.upstream.clone())
            .count_pre_keys(forward(r))
            .await
    }
    async fn get_bundle(
        &self,
        r: Request<GetBundleRequest>,
    ) -> Result<Response<GetBundleResponse>, Status> {
        let target = r.get_ref().address.clone();
        let known = r.get_ref().known_tree_size;
        let genuine = KeysClient::new(self.0.upstream.clone())
            .get_bundle(forward(r))
            .await?
            .into_inner();
        self.served(target, known, genuine).await
    }
    async fn set_delivery_policy(
        &self,
        r: Request<SetDeliveryPolicyRequest>,
    ) -> Result<Response<SetDeliveryPolicyResponse>, Status> {
        KeysClient::new(self.0.upstream.clone())
            .set_delivery_policy(forward(r))
            .await
    }
}

impl Svc {
    /// Records a genuine bundle answer and tampers with it if it is the
    /// victim's.
    async fn served(
        &self,
        target: Vec<u8>,
        known: u64,
        genuine: GetBundleResponse,
    ) -> Result<Response<GetBundleResponse>, Status> {
        self.0.seen.lock().unwrap().push(genuine.clone());
        if target.as_slice() != self.0.victim.lock().unwrap().as_slice() {
            return Ok(Response::new(genuine));
        }
        Ok(Response::new(self.tamper(genuine, known).await))
    }
}

#[tonic::async_trait]
impl Delivery for Svc {
    async fn send(&self, r: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        DeliveryClient::new(self.0.upstream.clone())
            .send(forward(r))
            .await
    }
    async fn get_bundle(
        &self,
        r: Request<GetBundleRequest>,
    ) -> Result<Response<GetBundleResponse>, Status> {
        let target = r.get_ref().address.clone();
        let known = r.get_ref().known_tree_size;
        let genuine = DeliveryClient::new(self.0.upstream.clone())
            .get_bundle(forward(r))
            .await?
            .into_inner();
        self.served(target, known, genuine).await
    }
}

#[tonic::async_trait]
impl KeyLog for Svc {
    async fn get_tree_head(
        &self,
        r: Request<GetTreeHeadRequest>,
    ) -> Result<Response<GetTreeHeadResponse>, Status> {
        self.keylog().get_tree_head(forward(r)).await
    }
    async fn get_consistency_proof(
        &self,
        r: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProofResponse>, Status> {
        self.keylog().get_consistency_proof(forward(r)).await
    }
    async fn get_key_proof(
        &self,
        r: Request<GetKeyProofRequest>,
    ) -> Result<Response<KeyProof>, Status> {
        self.keylog().get_key_proof(forward(r)).await
    }
    async fn get_leaves(
        &self,
        r: Request<GetLeavesRequest>,
    ) -> Result<Response<GetLeavesResponse>, Status> {
        self.keylog().get_leaves(forward(r)).await
    }
    async fn get_credential_proof(
        &self,
        r: Request<GetCredentialProofRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        self.keylog().get_credential_proof(forward(r)).await
    }
    async fn revoke_credential(
        &self,
        r: Request<RevokeCredentialRequest>,
    ) -> Result<Response<CredentialProof>, Status> {
        self.keylog().revoke_credential(forward(r)).await
    }
}

#[tonic::async_trait]
impl Mailbox for Svc {
    async fn send(&self, r: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        MailboxClient::new(self.0.upstream.clone())
            .send(forward(r))
            .await
    }
    async fn fetch(&self, r: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let token = r
            .metadata()
            .get(alcove_api::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut page = MailboxClient::new(self.0.upstream.clone())
            .fetch(forward(r))
            .await?
            .into_inner();
        let genuine = page.envelopes.clone();
        let attack = *self.0.fetch_attack.lock().unwrap();
        let history = self.0.fetched.lock().unwrap().clone();
        let mut out = Vec::new();
        match attack {
            FetchAttack::Honest => out = genuine.clone(),
            FetchAttack::BitFlip => {
                for (i, e) in genuine.iter().enumerate() {
                    let mut bad = e.clone();
                    let at = (i * 37 + 11) % bad.envelope.len();
                    bad.envelope[at] ^= 1 << (i % 8);
                    out.push(bad);
                    let mut late = e.clone();
                    let n = late.envelope.len();
                    late.envelope[n - 1] ^= 0x80;
                    out.push(late);
                    out.push(e.clone());
                }
            }
            FetchAttack::Truncate => {
                for e in &genuine {
                    for keep in [0, 1, 33, e.envelope.len() / 2, e.envelope.len() - 1] {
                        let mut cut = e.clone();
                        cut.envelope.truncate(keep);
                        out.push(cut);
                    }
                    out.push(e.clone());
                }
            }
            FetchAttack::Duplicate => {
                for e in &genuine {
                    out.push(e.clone());
                    out.push(e.clone());
                }
            }
            FetchAttack::Reorder => out = genuine.iter().rev().cloned().collect(),
            FetchAttack::Replay => {
                out.extend(
                    history
                        .iter()
                        .filter(|(t, _)| *t == token)
                        .map(|(_, e)| e.clone()),
                );
                out.extend(genuine.iter().cloned());
            }
            FetchAttack::Foreign => {
                out.extend(
                    history
                        .iter()
                        .filter(|(t, _)| *t != token)
                        .map(|(_, e)| e.clone()),
                );
                out.extend(genuine.iter().cloned());
            }
        }
        self.0
            .fetched
            .lock()
            .unwrap()
            .extend(genuine.into_iter().map(|e| (token.clone(), e)));
        page.envelopes = out;
        Ok(Response::new(page))
    }
    async fn ack(&self, r: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        MailboxClient::new(self.0.upstream.clone())
            .ack(forward(r))
            .await
    }
    type SubscribeStream = tokio_stream::wrappers::ReceiverStream<Result<Envelope, Status>>;
    async fn subscribe(
        &self,
        _: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("the test proxy does not subscribe"))
    }
}

/// The real relay (with a log key the test knows) and the proxy before it.
struct Setup {
    relay: alcove_server::RelayHandle,
    _dir: tempfile::TempDir,
    proxy: Arc<Proxy>,
    proxy_url: String,
    clients: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let seed = [0x11u8; 32];
        // The operator's log key, planted before the relay first starts.
        let store = SledStore::open(dir.path()).unwrap();
        store
            .put_meta(alcove_server::secrets::LOG_KEY_META, &seed)
            .await
            .unwrap();
        store.close().await.unwrap();
        drop(store);
        let relay = alcove_server::start(alcove_server::Config::for_dir(dir.path()))
            .await
            .unwrap();
        let upstream = Channel::from_shared(format!("http://{}", relay.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let proxy = Arc::new(Proxy {
            upstream,
            log_key: SigningKey::from_bytes(&seed),
            victim: Mutex::new([0; 32]),
            attack: Mutex::new(Attack::Honest),
            seen: Mutex::new(Vec::new()),
            fetch_attack: Mutex::new(FetchAttack::Honest),
            fetched: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = Svc(proxy.clone());
        tokio::spawn(
            Server::builder()
                .add_service(AuthServer::new(svc.clone()))
                .add_service(KeysServer::new(svc.clone()))
                .add_service(KeyLogServer::new(svc.clone()))
                .add_service(MailboxServer::new(svc.clone()))
                .add_service(DeliveryServer::new(svc))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Self {
            relay,
            _dir: dir,
            proxy,
            proxy_url: format!("http://{addr}"),
            clients: tempfile::tempdir().unwrap(),
        }
    }

    async fn client(&self, name: &str) -> Client {
        Client::create(
            &self.clients.path().join(name),
            &[3; 32],
            &self.proxy_url,
            name,
        )
        .await
        .unwrap()
    }

    /// A device registered directly with the relay, whose secrets the test
    /// holds.
    async fn device(&self, spk_created_at: u64) -> Device {
        let channel = Channel::from_shared(format!("http://{}", self.relay.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut d = Device::new(channel, 5);
        d.signed_prekey =
            SignedPreKeyPair::generate(&mut rand::rngs::OsRng, &d.identity, 1, spk_created_at);
        d.register().await.unwrap();
        *self.proxy.victim.lock().unwrap() = d.address();
        d
    }

    fn attack(&self, a: Attack) {
        *self.proxy.attack.lock().unwrap() = a;
    }

    fn invite(&self, d: &Device) -> String {
        Invite::new(
            &mut rand::rngs::OsRng,
            d.identity.public(),
            &self.proxy_url,
            common::now_secs() + 3600,
        )
        .unwrap()
        .to_link()
    }
}

/// What the victim's mailbox holds (the SDK must have sent nothing).
async fn mailbox_len(d: &Device) -> usize {
    d.mailbox()
        .fetch(d.req(FetchRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .envelopes
        .len()
}

fn transparency(r: Result<alcove_client::Contact, Error>) -> TransparencyError {
    match r {
        Err(Error::KeyTransparency(e)) => e,
        other => panic!("expected a key transparency error, got {other:?}"),
    }
}

/// Rotates a raw device's signed prekey on the relay; returns the bundle
/// bytes, index, epoch and salt of the entry it had before.
async fn rotate(s: &Setup, d: &mut Device) -> (Vec<u8>, u64, u64, [u8; 32]) {
    let before = KeyLogClient::new(s.proxy.upstream.clone())
        .get_key_proof(GetKeyProofRequest {
            address: d.address().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let old = PreKeyBundle::new(
        d.identity.public().clone(),
        d.signed_prekey.public().clone(),
        None,
    )
    .unwrap()
    .to_bytes();
    d.signed_prekey =
        SignedPreKeyPair::generate(&mut rand::rngs::OsRng, &d.identity, 2, common::now_secs());
    d.login().await.unwrap();
    d.keys()
        .rotate_signed_pre_key(d.req(RotateSignedPreKeyRequest {
            signed_prekey: d.signed_prekey.public().to_bytes().to_vec(),
        }))
        .await
        .unwrap();
    (
        old,
        before.index,
        before.epoch,
        before.salt.as_slice().try_into().unwrap(),
    )
}

/// Keys with the victim's real Ed25519 identity (so the address still
/// matches) but another X25519 identity key and signed prekey: what a
/// relay colluding with someone who stole the signing key would serve.
fn impostor_bundle(d: &Device) -> Vec<u8> {
    let mut secret = d.identity.to_secret_bytes().to_vec();
    secret[32..].copy_from_slice(&[0x24; 32]);
    let impostor = IdentityKeyPair::from_secret_bytes(&secret).unwrap();
    assert_eq!(impostor.public().address(), d.identity.public().address());
    let spk = SignedPreKeyPair::generate(&mut rand::rngs::OsRng, &impostor, 9, common::now_secs());
    PreKeyBundle::new(impostor.public().clone(), spk.public().clone(), None)
        .unwrap()
        .to_bytes()
}

#[tokio::test]
async fn the_honest_path_through_the_proxy_works() {
    // Without this, every detection below could be the proxy breaking
    // things rather than the SDK catching an attack.
    let s = Setup::start().await;
    let victim = s.device(common::now_secs()).await;
    let alice = s.client("alice").await;
    let contact = alice.accept_invite(&s.invite(&victim)).await.unwrap();
    assert_eq!(contact.address.as_bytes(), &victim.address());
    assert_eq!(mailbox_len(&victim).await, 1, "the introduction went out");
    let status = alice.check_key_log().await.unwrap();
    assert_eq!(status.tree_size, 2);
    assert_eq!(status.own_epoch, 0);
}

#[tokio::test]
async fn a_substituted_identity_key_is_not_in_the_log() {
    let s = Setup::start().await;
    let victim = s.device(common::now_secs()).await;
    let alice = s.client("alice").await;
    s.attack(Attack::SubstituteBundle(impostor_bundle(&victim)));
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert_eq!(err, TransparencyError::NotInLog);
    assert!(alice.contacts().await.is_empty(), "no contact, no session");
    assert_eq!(mailbox_len(&victim).await, 0, "nothing was sent");
}

#[tokio::test]
async fn a_stale_signed_prekey_is_refused() {
    let s = Setup::start().await;
    // A contact seen before: Alice saw epoch 1; the relay serves epoch 0.
    let mut victim = s.device(common::now_secs()).await;
    let stale = rotate(&s, &mut victim).await;
    let alice = s.client("alice").await;
    alice.accept_invite(&s.invite(&victim)).await.unwrap();
    s.attack(Attack::StaleEntry(stale.0, stale.1, stale.2, stale.3));
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert_eq!(err, TransparencyError::StaleKeys { seen: 1, served: 0 });
    assert_eq!(mailbox_len(&victim).await, 1, "only the first introduction");

    // A first contact: the relay serves a superseded entry whose signed
    // prekey is 40 days old. Every proof checks out; its age does not.
    let forty_days_ago = common::now_secs() - 40 * 86_400;
    let mut old = s.device(forty_days_ago).await;
    let stale = rotate(&s, &mut old).await;
    s.attack(Attack::StaleEntry(stale.0, stale.1, stale.2, stale.3));
    let bob = s.client("bob").await;
    match bob.accept_invite(&s.invite(&old)).await {
        Err(Error::StaleSignedPreKey { age_days }) => assert_eq!(age_days, 40),
        other => panic!("expected StaleSignedPreKey, got {other:?}"),
    }
    assert!(bob.contacts().await.is_empty());
    assert_eq!(mailbox_len(&old).await, 0);
}

#[tokio::test]
async fn a_forked_log_is_detected() {
    let s = Setup::start().await;
    let victim = s.device(common::now_secs()).await;
    let alice = s.client("alice").await;
    // Alice has seen a head that includes the victim's genuine leaf (0).
    assert_eq!(alice.check_key_log().await.unwrap().tree_size, 2);
    s.device(common::now_secs()).await; // the log grows
    *s.proxy.victim.lock().unwrap() = victim.address();
    // The relay shows Alice a log in which leaf 0 holds impostor keys:
    // inclusion verifies in that log, but it does not extend what she saw.
    s.attack(Attack::Fork(impostor_bundle(&victim), 0));
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert_eq!(err, TransparencyError::Forked { seen: 2, served: 3 });
    assert!(alice.contacts().await.is_empty());
    assert_eq!(mailbox_len(&victim).await, 0);
}

#[tokio::test]
async fn replayed_backdated_and_foreign_heads_are_refused() {
    let s = Setup::start().await;
    let victim = s.device(common::now_secs()).await;
    let alice = s.client("alice").await;
    // The proxy records a genuine answer while the log has 2 entries.
    let early = s.client("early").await;
    early.accept_invite(&s.invite(&victim)).await.unwrap();
    let recorded = s.proxy.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        recorded
            .key_proof
            .as_ref()
            .unwrap()
            .head
            .as_ref()
            .unwrap()
            .size,
        3
    );
    // The log grows and Alice sees the newer head.
    s.device(common::now_secs()).await;
    *s.proxy.victim.lock().unwrap() = victim.address();
    assert_eq!(alice.check_key_log().await.unwrap().tree_size, 4);

    s.attack(Attack::Replay(recorded));
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert_eq!(err, TransparencyError::Rollback { seen: 4, served: 3 });

    s.attack(Attack::Backdate(now_ms() - 2 * 24 * 3600 * 1000));
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert!(
        matches!(err, TransparencyError::StaleHead { .. }),
        "{err:?}"
    );

    s.attack(Attack::ForeignKey);
    let err = transparency(alice.accept_invite(&s.invite(&victim)).await);
    assert_eq!(err, TransparencyError::BadSignature);

    assert!(alice.contacts().await.is_empty());
    // Only `early`'s introduction reached the victim.
    assert_eq!(mailbox_len(&victim).await, 1);

    // And the genuine answer still goes through afterwards.
    s.attack(Attack::Honest);
    alice.accept_invite(&s.invite(&victim)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(mailbox_len(&victim).await, 2);
}

fn texts(events: &[alcove_client::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e.body() {
            Some(alcove_client::Body::Text(t)) => Some(t.body.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tampered_replayed_reordered_and_foreign_envelopes_change_nothing() {
    let s = Setup::start().await;
    let therapist = s.client("therapist").await;
    let client = s.client("client").await;
    let invite = therapist
        .create_invite(Duration::from_secs(600))
        .await
        .unwrap();
    // Both profiles were created against the proxy, so the invite names
    // it and the client's profile accepts it.
    let t = client.accept_invite(&invite).await.unwrap().address;
    let c = therapist.sync().await.unwrap()[0].contact;
    therapist.send_text(&c, "welcome").await.unwrap();
    assert_eq!(texts(&client.sync().await.unwrap()), ["welcome"]);

    let modes = [
        FetchAttack::BitFlip,
        FetchAttack::Truncate,
        FetchAttack::Duplicate,
        FetchAttack::Reorder,
        FetchAttack::Replay,
        FetchAttack::Foreign,
    ];
    for (k, mode) in modes.into_iter().enumerate() {
        let sent: Vec<String> = (0..3).map(|i| format!("{mode:?} {k}.{i}")).collect();
        for m in &sent {
            client.send_text(&t, m).await.unwrap();
        }
        *s.proxy.fetch_attack.lock().unwrap() = mode;
        let mut got = texts(&therapist.sync().await.unwrap());
        *s.proxy.fetch_attack.lock().unwrap() = FetchAttack::Honest;
        if matches!(mode, FetchAttack::Reorder) {
            got.reverse();
        }
        assert_eq!(got, sent, "{mode:?}: every genuine message exactly once");
        // The session is intact both ways after each attack.
        therapist.send_text(&c, &format!("ack {k}")).await.unwrap();
        assert_eq!(texts(&client.sync().await.unwrap()), [format!("ack {k}")]);
    }
    // Nothing is left behind and nothing comes back.
    assert!(therapist.sync().await.unwrap().is_empty());
    assert!(client.sync().await.unwrap().is_empty());
}
