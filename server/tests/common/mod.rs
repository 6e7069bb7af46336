//! Shared by the tests that run the real `alcove-server` binary: starting
//! it, and a device that registers and authenticates over raw gRPC.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::*;
use alcove_protocol::identity::IdentityKeyPair;
use alcove_protocol::prekeys::SignedPreKeyPair;
pub use alcove_store::testing::TestSchema;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

pub fn start(dir: &Path, addr: &str) -> Child {
    start_with(dir, addr, &[])
}

/// Starts the binary with extra flags.
pub fn start_with(dir: &Path, addr: &str, extra: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alcove-server"))
        .args(["--listen", addr, "--data-dir"])
        .arg(dir)
        .args(["--rate-per-sec", "100000", "--rate-burst", "100000"])
        .args([
            "--registrations-per-min",
            "1000000",
            "--challenges-per-min",
            "1000000",
        ])
        .args(["--deliveries-per-sec-per-key", "100000"])
        .args(extra)
        .env("RUST_LOG", "error,alcove_store=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start alcove-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("alcove-server listening on"),
        "the relay did not come up on its store after a kill: {line:?} (exit {:?})",
        child.try_wait()
    );
    child
}

/// A schema of its own on the test PostgreSQL server for `what`, dropped
/// with the value; `None` (saying it was skipped) without a server.
pub async fn postgres_schema(what: &str) -> Option<TestSchema> {
    let base = alcove_store::testing::postgres_url(what)?;
    Some(TestSchema::create(&base).await)
}

pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub struct Device {
    pub identity: IdentityKeyPair,
    pub channel: Channel,
    pub token: Mutex<String>,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Device {
    pub fn new(channel: Channel) -> Self {
        Self {
            identity: IdentityKeyPair::generate(&mut rand::rngs::OsRng),
            channel,
            token: Mutex::new(String::new()),
        }
    }

    pub fn address(&self) -> Vec<u8> {
        self.identity.public().address().as_bytes().to_vec()
    }

    pub async fn proof(&self) -> Result<(Vec<u8>, Vec<u8>), tonic::Status> {
        let c = AuthClient::new(self.channel.clone())
            .challenge(ChallengeRequest {
                address: self.address(),
            })
            .await?
            .into_inner();
        let sig = self.identity.sign(&alcove_api::auth_message(
            &c.server_id,
            &self.address(),
            &c.challenge,
        ));
        Ok((c.challenge, sig.to_bytes().to_vec()))
    }

    /// Registers (retrying through restarts).
    pub async fn register(&self) {
        let spk = SignedPreKeyPair::generate(&mut rand::rngs::OsRng, &self.identity, 1, now_secs());
        loop {
            let attempt = async {
                let (challenge, signature) = self.proof().await?;
                AuthClient::new(self.channel.clone())
                    .register(RegisterRequest {
                        identity: self.identity.public().to_bytes().to_vec(),
                        signed_prekey: spk.public().to_bytes().to_vec(),
                        one_time_prekeys: vec![],
                        challenge,
                        signature,
                        ..Default::default()
                    })
                    .await
            }
            .await;
            match attempt {
                Ok(r) => {
                    *self.token.lock().unwrap() = r.into_inner().token;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub fn req<T>(&self, m: T) -> Request<T> {
        let mut r = Request::new(m);
        let v = format!("Bearer {}", self.token.lock().unwrap());
        r.metadata_mut()
            .insert("authorization", MetadataValue::try_from(v).unwrap());
        r.set_timeout(Duration::from_secs(5));
        r
    }
}
