//! The relay's two secrets: the token key (the HMAC key of login tokens)
//! and the key log's Ed25519 signing key.
//!
//! Whoever holds the token key can mint a login token for any device, and
//! whoever holds the signing key can sign a forged tree head. They are
//! therefore kept out of the database: with `--secrets-file` they live in
//! a file (mode 0600) that every relay of a deployment is given, so a
//! database reader — a backup, a replica, a read-only role, an auditor, a
//! compromised database host — can read only ciphertext and public keys.
//! PostgreSQL deployments must use it. The embedded sled store may keep
//! them in its own `meta` tree instead, because it lives on the relay's own
//! disk, in the same trust domain as a file would.
//!
//! On first start with a secrets file that does not exist yet, the relay
//! creates it: from the secrets an older relay left in the database (then
//! deletes them there), or fresh ones. A fingerprint of the secrets (a
//! hash, which reveals nothing of them) is kept in the store, so a relay
//! given a different file refuses to start instead of splitting the
//! deployment into two key logs.

use std::io::Write as _;
use std::path::Path;

use alcove_store::Store;
use anyhow::{bail, Context};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// `meta` key of the token key when it lives in the store.
pub const TOKEN_KEY_META: &str = "token_key";
/// `meta` key of the log signing key when it lives in the store.
pub const LOG_KEY_META: &str = "keylog_signing_key";
/// `meta` key of the secrets' fingerprint.
pub const FINGERPRINT_META: &str = "secrets_fingerprint";

/// The relay's secrets, wiped from memory when dropped.
pub struct Secrets {
    /// HMAC key of login tokens.
    pub token_key: Zeroizing<[u8; 32]>,
    /// Seed of the key log's Ed25519 signing key.
    pub log_seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    fn fresh() -> Self {
        let mut s = Self {
            token_key: Zeroizing::new([0u8; 32]),
            log_seed: Zeroizing::new([0u8; 32]),
        };
        rand::thread_rng().fill_bytes(s.token_key.as_mut());
        rand::thread_rng().fill_bytes(s.log_seed.as_mut());
        s
    }

    /// A public hash that tells two sets of secrets apart.
    fn fingerprint(&self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"alcove relay secrets fingerprint v1");
        h.update(self.token_key.as_ref());
        h.update(self.log_seed.as_ref());
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# Alcove relay secrets. Give every relay of this deployment this same file,\n\
             # readable by the relay's user only. Losing it logs every device out and\n\
             # changes the key log's signing key; leaking it lets the holder mint tokens\n\
             # and sign tree heads.\n\
             token_key = {}\n\
             keylog_signing_key = {}\n",
            hex::encode(self.token_key.as_ref()),
            hex::encode(self.log_seed.as_ref())
        ))
    }

    fn decode(text: &str) -> anyhow::Result<Self> {
        let mut token = None;
        let mut log = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                bail!("a line is not `name = hex`");
            };
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(value.trim(), key.as_mut())
                .map_err(|_| anyhow::anyhow!("{} is not 64 hex digits", name.trim()))?;
            match name.trim() {
                "token_key" => token = Some(key),
                "keylog_signing_key" => log = Some(key),
                other => bail!("unknown entry {other:?}"),
            }
        }
        match (token, log) {
            (Some(token_key), Some(log_seed)) => Ok(Self {
                token_key,
                log_seed,
            }),
            _ => bail!("token_key or keylog_signing_key is missing"),
        }
    }
}

fn key32(bytes: Option<Vec<u8>>, what: &str) -> anyhow::Result<Option<Zeroizing<[u8; 32]>>> {
    let Some(bytes) = bytes.map(Zeroizing::new) else {
        return Ok(None);
    };
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("the stored {what} has the wrong length");
    }
    key.copy_from_slice(&bytes);
    Ok(Some(key))
}

/// The secrets an older relay kept in the store, if it did.
async fn in_store(store: &dyn Store) -> anyhow::Result<Option<Secrets>> {
    let token = key32(store.meta(TOKEN_KEY_META).await?, TOKEN_KEY_META)?;
    let log = key32(store.meta(LOG_KEY_META).await?, LOG_KEY_META)?;
    Ok(match (token, log) {
        (Some(token_key), Some(log_seed)) => Some(Secrets {
            token_key,
            log_seed,
        }),
        (None, None) => None,
        _ => bail!("the store holds one relay secret but not the other"),
    })
}

/// Loads the relay's secrets: from `file` if given (creating it on the
/// first start), else from the store (sled only).
pub async fn load(
    store: &dyn Store,
    file: Option<&Path>,
    shared_database: bool,
) -> anyhow::Result<Secrets> {
    let Some(path) = file else {
        if shared_database {
            bail!(
                "a relay on PostgreSQL needs --secrets-file FILE (ALCOVE_SECRETS_FILE): the \
                 token key and the key log's signing key stay out of the database. On the first \
                 start the relay creates FILE (moving secrets an older relay kept in the database \
                 into it); give every relay of the deployment a copy"
            );
        }
        return from_store(store).await;
    };
    let legacy = in_store(store).await?;
    let secrets = match std::fs::read_to_string(path) {
        Ok(text) => {
            Secrets::decode(&text).with_context(|| format!("secrets file {}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secrets = legacy
                .as_ref()
                .map(|l| Secrets {
                    token_key: l.token_key.clone(),
                    log_seed: l.log_seed.clone(),
                })
                .unwrap_or_else(Secrets::fresh);
            create(path, &secrets)?
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    warn_if_readable_by_others(path);
    let fingerprint = secrets.fingerprint();
    if let Some(l) = &legacy {
        if l.fingerprint() != fingerprint {
            bail!(
                "the store still holds relay secrets, and they differ from {}: this file \
                 belongs to another deployment (or the store does)",
                path.display()
            );
        }
    }
    let in_force = store.meta_or_insert(FINGERPRINT_META, &fingerprint).await?;
    if in_force != fingerprint {
        bail!(
            "{} is not the secrets file the other relays of this deployment use (its \
             fingerprint differs from the one recorded in the store); copy theirs",
            path.display()
        );
    }
    if legacy.is_some() {
        store.delete_meta(TOKEN_KEY_META).await?;
        store.delete_meta(LOG_KEY_META).await?;
        tracing::warn!(
            file = %path.display(),
            "moved the relay secrets out of the store into the secrets file; \
             give every relay of this deployment a copy of it"
        );
    }
    Ok(secrets)
}

/// sled without a secrets file: in the store's `meta` tree, created once.
async fn from_store(store: &dyn Store) -> anyhow::Result<Secrets> {
    let fresh = Secrets::fresh();
    let token = store
        .meta_or_insert(TOKEN_KEY_META, fresh.token_key.as_ref())
        .await?;
    let log = store
        .meta_or_insert(LOG_KEY_META, fresh.log_seed.as_ref())
        .await?;
    Ok(Secrets {
        token_key: key32(Some(token), TOKEN_KEY_META)?.unwrap_or_default(),
        log_seed: key32(Some(log), LOG_KEY_META)?.unwrap_or_default(),
    })
}

/// Writes `secrets` to `path` unless it exists by now; returns what the
/// file holds. Written beside it and linked into place, so a relay never
/// reads a half-written file and two relays starting together agree.
fn create(path: &Path, secrets: &Secrets) -> anyhow::Result<Secrets> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = path.with_extension(format!("tmp{:016x}", rand::random::<u64>()));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(secrets.encode().as_bytes())?;
        f.sync_all()
    };
    write().with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(d) = dir {
                if let Ok(d) = std::fs::File::open(d) {
                    let _ = d.sync_all();
                }
            }
            tracing::info!(file = %path.display(), "created the relay secrets file");
            Ok(Secrets {
                token_key: secrets.token_key.clone(),
                log_seed: secrets.log_seed.clone(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Secrets::decode(&text).with_context(|| format!("secrets file {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", m.permissions().mode() & 0o777),
                    "the secrets file is readable by other users; chmod 600 it"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_round_trips_and_refuses_garbage() {
        let s = Secrets::fresh();
        let back = Secrets::decode(&s.encode()).unwrap();
        assert_eq!(back.fingerprint(), s.fingerprint());
        assert!(Secrets::decode("token_key = 00").is_err());
        assert!(Secrets::decode(&format!("token_key = {}", "00".repeat(32))).is_err());
        assert!(Secrets::decode(&format!("other = {}", "00".repeat(32))).is_err());
        assert_eq!(format!("{s:?}"), "Secrets(..)");
    }
}
