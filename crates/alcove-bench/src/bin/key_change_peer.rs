//! A peer whose identity key changes, for the bindings' tests (a contact's
//! changed key cannot be produced through the SDK, by design): registers a
//! device, sends `to` a first message, then re-registers the same address
//! (same Ed25519 key) with another X25519 key, as after a reinstall that
//! kept only the signing key, and sends again.
//!
//! `key_change_peer --url http://127.0.0.1:PORT --invite LINK` (an invite
//! of the device to write to: its address and delivery key) prints the
//! peer's address. It writes as the SDK does, through `Delivery` without a
//! login token.

#![forbid(unsafe_code)]

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::delivery_client::DeliveryClient;
use alcove_api::v1::{ChallengeRequest, GetBundleRequest, RegisterRequest, SendRequest};
use alcove_protocol::content::{self, Body, Content, MessageId, Text};
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::invite::Invite;
use alcove_protocol::prekeys::{PreKeyBundle, SignedPreKeyPair};
use alcove_protocol::{sealed_sender, x3dh, DeviceAddress};
use clap::Parser;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, allow_hyphen_values = true)]
    invite: String,
}

async fn register(channel: &Channel, identity: &IdentityKeyPair) -> anyhow::Result<()> {
    let mut auth = AuthClient::new(channel.clone());
    let address = identity.public().address();
    let c = auth
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let spk = SignedPreKeyPair::generate(&mut rand::rngs::OsRng, identity, 1, now);
    auth.register(RegisterRequest {
        identity: identity.public().to_bytes().to_vec(),
        signed_prekey: spk.public().to_bytes().to_vec(),
        one_time_prekeys: vec![],
        challenge: c.challenge,
        signature: signature.to_bytes().to_vec(),
        ..Default::default()
    })
    .await?;
    Ok(())
}

async fn send_first(
    channel: &Channel,
    identity: &IdentityKeyPair,
    to: &DeviceAddress,
    access_key: &[u8],
    text: &str,
) -> anyhow::Result<()> {
    let mut rng = rand::rngs::OsRng;
    register(channel, identity).await?;
    let r = DeliveryClient::new(channel.clone())
        .get_bundle(GetBundleRequest {
            address: to.as_bytes().to_vec(),
            known_tree_size: 0,
            access_key: access_key.to_vec(),
        })
        .await?
        .into_inner();
    let bundle = PreKeyBundle::from_bytes(&r.bundle)?;
    let mut session = x3dh::initiate(&mut rng, identity, &bundle)?;
    let message = Content {
        message_id: MessageId::random(&mut rng).0.to_vec(),
        sent_at_ms: 1,
        body: Some(Body::Text(Text {
            body: text.into(),
            reply_to: vec![],
        })),
        ..Default::default()
    };
    let wire = session.encrypt(&mut rng, &content::encode(&message))?;
    let envelope = sealed_sender::seal(&mut rng, identity, bundle.identity(), &wire)?;
    DeliveryClient::new(channel.clone())
        .send(SendRequest {
            recipient: to.as_bytes().to_vec(),
            client_message_id: MessageId::random(&mut rng).0.to_vec(),
            envelope,
            access_key: access_key.to_vec(),
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let invite = Invite::decode(&args.invite).map_err(|e| anyhow::anyhow!("--invite: {e}"))?;
    let to = invite.address;
    let key = invite
        .delivery_key
        .as_ref()
        .map(|k| k.as_bytes().to_vec())
        .unwrap_or_default();
    let channel = Channel::from_shared(args.url)?.connect().await?;
    let identity = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    send_first(&channel, &identity, &to, &key, "old phone").await?;
    // Same Ed25519 key (so the same address), another X25519 key.
    let mut secret = identity.to_secret_bytes().to_vec();
    secret[32..].copy_from_slice(&[0x42; 32]);
    let changed = IdentityKeyPair::from_secret_bytes(&secret)?;
    anyhow::ensure!(changed.public().address() == identity.public().address());
    send_first(&channel, &changed, &to, &key, "new phone").await?;
    println!("{}", identity.public().address());
    Ok(())
}
