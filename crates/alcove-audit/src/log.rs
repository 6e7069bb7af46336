//! `alcove-audit log`: follows a relay's key log from outside. Each run
//! fetches the current signed head, checks its signature with the pinned
//! log key, checks that it extends the last head recorded in the state
//! file (consistency proof), optionally mirrors every leaf and recomputes
//! the root, optionally checks that given devices' current keys are in
//! the log, and records the new head. The state file is the auditor's
//! memory: keep it, and compare heads with other auditors and clients.

use std::path::Path;

use alcove_api::keylog::{head_from_wire, proof_from_wire};
use alcove_api::v1::key_log_client::KeyLogClient;
use alcove_api::v1::{
    GetConsistencyProofRequest, GetKeyProofRequest, GetLeavesRequest, GetTreeHeadRequest,
};
use alcove_keylog::{check_advance, check_keys, hashes, MerkleLog, SignedTreeHead};
use alcove_protocol::PublicIdentity;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// What the auditor remembers between runs.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    /// The relay audited.
    pub server: String,
    /// The pinned log key (hex).
    pub log_key: Option<String>,
    /// The newest verified head.
    pub head: Option<HeadRecord>,
    /// Every verified head, oldest first.
    pub history: Vec<HeadRecord>,
}

/// A head as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadRecord {
    /// Leaves.
    pub size: u64,
    /// Root (hex).
    pub root: String,
    /// Signing time, ms.
    pub timestamp_ms: u64,
    /// Signature (hex).
    pub signature: String,
    /// When this auditor verified it, ms.
    pub verified_at_ms: u64,
}

impl HeadRecord {
    fn from_head(h: &SignedTreeHead) -> Self {
        Self {
            size: h.size,
            root: hex::encode(h.root),
            timestamp_ms: h.timestamp_ms,
            signature: hex::encode(h.signature),
            verified_at_ms: crate::now_ms(),
        }
    }

    fn to_head(&self) -> anyhow::Result<SignedTreeHead> {
        let root = hex::decode(&self.root)?;
        let signature = hex::decode(&self.signature)?;
        Ok(SignedTreeHead {
            size: self.size,
            root: root
                .try_into()
                .map_err(|_| anyhow::anyhow!("state: root is not 32 bytes"))?,
            timestamp_ms: self.timestamp_ms,
            signature: signature
                .try_into()
                .map_err(|_| anyhow::anyhow!("state: signature is not 64 bytes"))?,
        })
    }
}

/// One device checked.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    /// The address as given.
    pub address: String,
    /// Leaf index and epoch of its current keys.
    pub index: Option<u64>,
    /// Epoch.
    pub epoch: Option<u64>,
    /// Identity fingerprint (hex) of the logged keys.
    pub identity_fingerprint: Option<String>,
    /// `None` when verified, else why not.
    pub error: Option<String>,
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// The relay.
    pub server: String,
    /// Log key (hex) and whether it was pinned by this run.
    pub log_key: String,
    /// True if this run pinned the key (no earlier state, no --log-key).
    pub pinned_now: bool,
    /// The head recorded before (size, root).
    pub previous: Option<HeadRecord>,
    /// The head fetched now.
    pub current: Option<HeadRecord>,
    /// Whether the consistency proof from the previous head verified.
    pub consistent: Option<bool>,
    /// Leaves mirrored and whether their root matched (with --mirror).
    pub mirrored: Option<(u64, bool)>,
    /// Device checks (with --address).
    pub devices: Vec<DeviceCheck>,
    /// What failed, if anything.
    pub errors: Vec<String>,
    /// Everything verified.
    pub ok: bool,
}

/// Options of one run.
pub struct Options<'a> {
    /// Relay URL (http:// or https://).
    pub server: &'a str,
    /// State file (read if present, written on success).
    pub state: Option<&'a Path>,
    /// Expected log key (hex), overriding the state's.
    pub log_key: Option<&'a str>,
    /// Devices to check (base64url or hex addresses).
    pub addresses: &'a [String],
    /// Download every leaf and recompute the root.
    pub mirror: bool,
    /// CA certificate (PEM) for https.
    pub ca: Option<&'a Path>,
}

async fn connect(server: &str, ca: Option<&Path>) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(server.to_string())?
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60));
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = ca {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(ca)?));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect().await?)
}

fn parse_address(text: &str) -> anyhow::Result<[u8; 32]> {
    use base64::Engine;
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            anyhow::anyhow!("not a device address: give 43 base64url characters or 64 hex digits")
        })
}

/// Runs one audit of the log. Errors in the audit itself (a bad proof)
/// are in the report; `Err` means the audit could not run (no connection,
/// unreadable state file).
pub async fn audit(opts: &Options<'_>) -> anyhow::Result<LogReport> {
    let mut state: State = match opts.state {
        Some(p) if p.exists() => serde_json::from_slice(&std::fs::read(p)?)
            .map_err(|e| anyhow::anyhow!("state file {}: {e}", p.display()))?,
        _ => State::default(),
    };
    let channel = connect(opts.server, opts.ca).await?;
    let mut client = KeyLogClient::new(channel);
    let previous = state.head.clone();
    let prev_head = previous.as_ref().map(HeadRecord::to_head).transpose()?;
    let r = client
        .get_tree_head(GetTreeHeadRequest {
            known_tree_size: prev_head.as_ref().map_or(0, |h| h.size),
        })
        .await?
        .into_inner();
    let served_key = hex::encode(&r.log_key);
    let pinned = opts
        .log_key
        .map(str::to_owned)
        .or_else(|| state.log_key.clone());
    let pinned_now = pinned.is_none();
    let log_key = pinned.clone().unwrap_or_else(|| served_key.clone());
    let mut report = LogReport {
        server: opts.server.to_string(),
        log_key: log_key.clone(),
        pinned_now,
        previous: previous.clone(),
        current: None,
        consistent: None,
        mirrored: None,
        devices: Vec::new(),
        errors: Vec::new(),
        ok: false,
    };
    if served_key != log_key {
        report.errors.push(format!(
            "the relay's log key {served_key} is not the pinned key {log_key}"
        ));
    }
    let key_bytes: [u8; 32] = hex::decode(&log_key)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("log key is not 32 bytes"))?;
    let verifying = VerifyingKey::from_bytes(&key_bytes)?;
    let head = match head_from_wire(r.head.as_ref()) {
        Ok(h) => h,
        Err(e) => {
            report.errors.push(format!("head: {e}"));
            return Ok(report);
        }
    };
    report.current = Some(HeadRecord::from_head(&head));
    let proof = hashes(&r.consistency_proof)?;
    match check_advance(
        &verifying,
        prev_head.as_ref(),
        &head,
        &proof,
        crate::now_ms(),
    ) {
        Ok(_) => report.consistent = prev_head.as_ref().map(|_| true),
        Err(e) => {
            report.consistent = prev_head.as_ref().map(|_| false);
            report.errors.push(format!("head: {e}"));
        }
    }
    if opts.mirror && report.errors.is_empty() {
        let mut log = MerkleLog::new();
        while log.size() < head.size {
            let page = client
                .get_leaves(GetLeavesRequest {
                    from: log.size(),
                    limit: 0,
                })
                .await?
                .into_inner();
            if page.leaves.is_empty() {
                break;
            }
            for l in hashes(&page.leaves)? {
                if log.size() < head.size {
                    log.push(l);
                }
            }
        }
        let matches = log.size() == head.size && log.root_at(head.size).ok() == Some(head.root);
        report.mirrored = Some((log.size(), matches));
        if !matches {
            report
                .errors
                .push("the mirrored leaves do not hash to the head's root".into());
        }
    }
    for text in opts.addresses {
        let mut check = DeviceCheck {
            address: text.clone(),
            index: None,
            epoch: None,
            identity_fingerprint: None,
            error: None,
        };
        let result: anyhow::Result<()> = async {
            let address = parse_address(text)?;
            let p = client
                .get_key_proof(GetKeyProofRequest {
                    address: address.to_vec(),
                })
                .await?
                .into_inner();
            let proof = proof_from_wire(Some(&p))?;
            check.index = Some(proof.index);
            check.epoch = Some(proof.epoch);
            let identity = PublicIdentity::from_bytes(&p.identity)
                .map_err(|e| anyhow::anyhow!("identity: {e}"))?;
            anyhow::ensure!(
                identity.address().as_bytes() == &address,
                "the logged identity key does not hash to the address"
            );
            check.identity_fingerprint = Some(hex::encode(identity.fingerprint().as_bytes()));
            // The proof's head must be the audited head or extend it.
            let extra = if proof.head.size > head.size {
                hashes(
                    &client
                        .get_consistency_proof(GetConsistencyProofRequest {
                            old_size: head.size,
                            new_size: proof.head.size,
                        })
                        .await?
                        .into_inner()
                        .proof,
                )?
            } else {
                Vec::new()
            };
            check_advance(
                &verifying,
                Some(&head),
                &proof.head,
                &extra,
                crate::now_ms(),
            )?;
            check_keys(&address, &p.identity, &p.signed_prekey, &proof, 0)?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            report.errors.push(format!("device {text}: {e}"));
            check.error = Some(e.to_string());
        }
        report.devices.push(check);
    }
    report.ok = report.errors.is_empty();
    if report.ok {
        if let Some(path) = opts.state {
            state.server = opts.server.to_string();
            state.log_key = Some(log_key);
            let record = HeadRecord::from_head(&head);
            if state.head.as_ref().map(|h| (h.size, &h.root)) != Some((record.size, &record.root)) {
                state.history.push(record.clone());
            }
            state.head = Some(record);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)?;
            std::fs::rename(&tmp, path)?;
        }
    }
    Ok(report)
}

/// The report for people.
pub fn render(r: &LogReport) -> String {
    let mut out = String::new();
    let verdict = if r.ok { "VERIFIED" } else { "FAILED" };
    out.push_str(&format!("Alcove key log audit: {verdict}\n"));
    out.push_str(&format!("relay: {}\n", r.server));
    out.push_str(&format!(
        "log key: {}{}\n",
        r.log_key,
        if r.pinned_now {
            " (pinned now, on first use: compare it out of band)"
        } else {
            " (pinned)"
        }
    ));
    match &r.previous {
        Some(p) => out.push_str(&format!(
            "previous head: {} entries, root {}\n",
            p.size, p.root
        )),
        None => out.push_str("previous head: none recorded\n"),
    }
    if let Some(c) = &r.current {
        out.push_str(&format!(
            "current head: {} entries, root {}, signed at {} ms\n",
            c.size, c.root, c.timestamp_ms
        ));
    }
    match r.consistent {
        Some(true) => out.push_str("consistency with the previous head: verified\n"),
        Some(false) => out.push_str("consistency with the previous head: FAILED\n"),
        None => {}
    }
    if let Some((n, ok)) = r.mirrored {
        out.push_str(&format!(
            "mirror: {n} leaves downloaded, root {}\n",
            if ok { "matches" } else { "DOES NOT MATCH" }
        ));
    }
    for d in &r.devices {
        match &d.error {
            None => out.push_str(&format!(
                "device {}: keys at entry {} (epoch {}), identity fingerprint {}: included\n",
                d.address,
                d.index.unwrap_or_default(),
                d.epoch.unwrap_or_default(),
                d.identity_fingerprint.as_deref().unwrap_or("?")
            )),
            Some(e) => out.push_str(&format!("device {}: FAILED: {e}\n", d.address)),
        }
    }
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}
