//! `alcove-audit transcript`: an exported conversation (`alcove export`)
//! verified offline, with no key and no relay: its hash chain, its
//! readable text against the signed content, the exporter's signature and
//! each author signature (`alcove_protocol::transcript`).

use std::path::Path;

use alcove_protocol::transcript::{self, TranscriptFile, Verified};
use serde::Serialize;

/// What the audit of one transcript found.
#[derive(Debug, Serialize)]
pub struct TranscriptReport {
    /// The file audited.
    pub file: String,
    /// Everything held.
    pub verified: bool,
    /// What verified, when it did.
    pub summary: Option<Verified>,
    /// Why not, when it did not.
    pub refused: Option<String>,
}

/// Reads and verifies a transcript file. A file that cannot be read is
/// an error (the audit could not run); one that does not verify is a
/// report with `verified: false`.
pub fn audit(path: &Path) -> anyhow::Result<TranscriptReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let outcome = serde_json::from_str::<TranscriptFile>(&text)
        .map_err(|e| format!("not a transcript file: {e}"))
        .and_then(|t| transcript::verify(&t).map_err(|e| e.to_string()));
    Ok(match outcome {
        Ok(v) => TranscriptReport {
            file: path.display().to_string(),
            verified: true,
            summary: Some(v),
            refused: None,
        },
        Err(reason) => TranscriptReport {
            file: path.display().to_string(),
            verified: false,
            summary: None,
            refused: Some(reason),
        },
    })
}

/// The report for people.
pub fn render(r: &TranscriptReport) -> String {
    match (&r.summary, &r.refused) {
        (Some(v), _) => format!(
            "transcript {}: VERIFIED\n  {} entries, exported and signed by {}\n  \
             by the exporter: {} ({} signed by their author)\n  \
             by the other party {}: {} ({} signed by their author)\n  \
             Entries not signed by their author show what the exporter's device recorded; \
             only author-signed entries prove who wrote them.\n",
            r.file,
            v.count,
            v.exporter,
            v.by_exporter,
            v.proven_by_exporter,
            v.peer,
            v.by_peer,
            v.proven_by_peer
        ),
        (None, reason) => format!(
            "transcript {}: REFUSED\n  {}\n",
            r.file,
            reason.as_deref().unwrap_or("unknown")
        ),
    }
}

/// A transcript as the JSON `alcove export` writes.
pub fn to_json(t: &TranscriptFile) -> String {
    serde_json::to_string_pretty(t).unwrap_or_default()
}
