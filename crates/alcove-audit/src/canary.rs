//! Searching raw files for known plaintexts ("canaries"): as UTF-8, UTF-16
//! (both byte orders) and base64 (standard and URL-safe alphabets, at each
//! of the three byte alignments a string can have inside a longer encoded
//! text).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;

/// One encoding of a canary, as bytes to look for.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Which encoding.
    pub encoding: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Where a canary was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hit {
    /// File, relative to the searched directory.
    pub file: String,
    /// Byte offset in the file.
    pub offset: u64,
    /// Encoding that matched.
    pub encoding: String,
}

/// The result for one canary.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryResult {
    /// The canary text.
    pub canary: String,
    /// Encodings searched.
    pub encodings: Vec<String>,
    /// Every place it was found (empty: absent).
    pub hits: Vec<Hit>,
}

/// The base64 characters that depend only on `data`'s bits when `data`
/// starts `shift` bytes into a longer encoded text.
fn base64_core(engine: &impl Engine, data: &[u8], shift: usize) -> Option<Vec<u8>> {
    let mut padded = vec![0u8; shift];
    padded.extend_from_slice(data);
    let encoded = engine.encode(&padded).into_bytes();
    let start = (8 * shift).div_ceil(6);
    let end = (8 * (shift + data.len())) / 6;
    (end > start + 2).then(|| encoded[start..end].to_vec())
}

/// Every pattern searched for `canary`.
pub fn patterns(canary: &str) -> Vec<Pattern> {
    let mut out = vec![Pattern {
        encoding: "utf-8".into(),
        bytes: canary.as_bytes().to_vec(),
    }];
    out.push(Pattern {
        encoding: "utf-16le".into(),
        bytes: canary
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
    });
    out.push(Pattern {
        encoding: "utf-16be".into(),
        bytes: canary
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect(),
    });
    for shift in 0..3 {
        for (name, bytes) in [
            (
                "base64",
                base64_core(&STANDARD_NO_PAD, canary.as_bytes(), shift),
            ),
            (
                "base64url",
                base64_core(&URL_SAFE_NO_PAD, canary.as_bytes(), shift),
            ),
        ] {
            if let Some(bytes) = bytes {
                if !out.iter().any(|p| p.bytes == bytes) {
                    out.push(Pattern {
                        encoding: format!("{name} (offset {shift})"),
                        bytes,
                    });
                }
            }
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Searches every file under `dir` for every canary. Returns the results
/// and the number of files and bytes read.
pub fn search(dir: &Path, canaries: &[String]) -> std::io::Result<(Vec<CanaryResult>, u64, u64)> {
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    paths.sort();
    let sets: Vec<(String, Vec<Pattern>)> =
        canaries.iter().map(|c| (c.clone(), patterns(c))).collect();
    let mut results: Vec<CanaryResult> = sets
        .iter()
        .map(|(c, p)| CanaryResult {
            canary: c.clone(),
            encodings: p.iter().map(|p| p.encoding.clone()).collect(),
            hits: Vec::new(),
        })
        .collect();
    let mut bytes = 0u64;
    for path in &paths {
        let data = std::fs::read(path)?;
        bytes += data.len() as u64;
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        for ((_, patterns), result) in sets.iter().zip(results.iter_mut()) {
            for p in patterns {
                for offset in memchr::memmem::find_iter(&data, &p.bytes) {
                    result.hits.push(Hit {
                        file: name.clone(),
                        offset: offset as u64,
                        encoding: p.encoding.clone(),
                    });
                }
            }
        }
    }
    Ok((results, paths.len() as u64, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_is_found_at_every_alignment() {
        let canary = "panic attack on the bus";
        let dir = tempfile::tempdir().unwrap();
        let mut blobs: Vec<Vec<u8>> = vec![
            canary.as_bytes().to_vec(),
            canary
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect(),
            canary
                .encode_utf16()
                .flat_map(|u| u.to_be_bytes())
                .collect(),
        ];
        for prefix in 0..3 {
            let mut data = vec![b'x'; prefix];
            data.extend_from_slice(canary.as_bytes());
            data.extend_from_slice(b"yz");
            blobs.push(STANDARD_NO_PAD.encode(&data).into_bytes());
            blobs.push(URL_SAFE_NO_PAD.encode(&data).into_bytes());
        }
        for (i, b) in blobs.iter().enumerate() {
            let mut file = vec![0xAAu8; 17];
            file.extend_from_slice(b);
            file.extend_from_slice(&[0x55; 9]);
            std::fs::write(dir.path().join(format!("f{i}")), file).unwrap();
        }
        let (results, files, _) = search(dir.path(), &[canary.to_string()]).unwrap();
        assert_eq!(files, blobs.len() as u64);
        let found: std::collections::BTreeSet<String> =
            results[0].hits.iter().map(|h| h.file.clone()).collect();
        assert_eq!(found.len(), blobs.len(), "{:?}", results[0].hits);
        let (absent, _, _) = search(dir.path(), &["not in there".to_string()]).unwrap();
        assert!(absent[0].hits.is_empty());
    }
}
