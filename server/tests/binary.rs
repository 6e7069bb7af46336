//! The real `alcove-server` binary: it starts on its flags, serves TLS when
//! given a certificate, and a SIGTERM shuts it down cleanly, with every
//! accepted message on disk.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcove_api::v1::auth_client::AuthClient;
use alcove_api::v1::ChallengeRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

struct Server {
    child: Child,
    addr: String,
}

fn spawn(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alcove-server"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start alcove-server");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("alcove-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server { child, addr }
}

fn sigterm(server: &mut Server) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..400 {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    server.child.kill().unwrap();
    panic!("alcove-server did not stop within 10 s of SIGTERM");
}

/// The server id a relay answers a challenge with (plain text).
async fn server_id(addr: &str) -> String {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthClient::new(channel)
        .challenge(ChallengeRequest {
            address: vec![1; 32],
        })
        .await
        .unwrap()
        .into_inner()
        .server_id
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = spawn(&["--data-dir", data]);
    let first = server_id(&server.addr).await;
    let status = sigterm(&mut server);
    assert!(status.success(), "exit status {status:?}");

    // Same directory again: it opens (the lock was released) and keeps its
    // identity (the server id devices sign).
    let mut server = spawn(&["--data-dir", data]);
    let second = server_id(&server.addr).await;
    assert_eq!(first, second);
    assert!(sigterm(&mut server).success());
}

#[tokio::test]
async fn serves_tls_with_a_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let r = AuthClient::new(channel)
        .challenge(ChallengeRequest {
            address: vec![2; 32],
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().challenge.len(), 56);
    // Plain text against the TLS port fails.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(AuthClient::new(ch)
            .challenge(ChallengeRequest {
                address: vec![2; 32]
            })
            .await
            .is_err());
    }
    assert!(sigterm(&mut server).success());
}
