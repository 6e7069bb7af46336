//! Searching raw bytes for known plaintexts ("canaries"): as UTF-8, UTF-16
//! (both byte orders) and base64 (standard and URL-safe alphabets, at each
//! of the three byte alignments a string can have inside a longer encoded
//! text). Not only the whole canary: every run of [`FRAGMENT_CHARS`]
//! consecutive characters of it is searched too, so a canary cut into
//! pieces (a text split across records, or mixed with other bytes) is
//! still found wherever a piece of that length survives. All patterns are
//! searched in one pass (Aho-Corasick).

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

/// The length, in characters, of the canary pieces searched besides the
/// whole canary.
pub const FRAGMENT_CHARS: usize = 16;

/// Where a canary was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hit {
    /// File, relative to the searched directory (or table, column and
    /// row, for a database).
    pub file: String,
    /// Byte offset in the file.
    pub offset: u64,
    /// Encoding that matched.
    pub encoding: String,
    /// The piece of the canary that matched, when not the whole of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
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

/// Every piece of `canary` searched besides the whole: each run of
/// [`FRAGMENT_CHARS`] characters (none for a shorter canary).
pub fn fragments(canary: &str) -> Vec<String> {
    let chars: Vec<char> = canary.chars().collect();
    if chars.len() <= FRAGMENT_CHARS {
        return Vec::new();
    }
    let mut out: Vec<String> = chars
        .windows(FRAGMENT_CHARS)
        .map(|w| w.iter().collect())
        .collect();
    out.sort();
    out.dedup();
    out
}

struct Which {
    canary: usize,
    encoding: String,
    fragment: Option<String>,
}

/// Searches byte strings for canaries, one pass for all patterns.
pub struct Searcher {
    automaton: Option<aho_corasick::AhoCorasick>,
    which: Vec<Which>,
    results: Vec<CanaryResult>,
    items: u64,
    bytes: u64,
}

impl Searcher {
    /// A searcher for `canaries` (whole, and in pieces).
    pub fn new(canaries: &[String]) -> anyhow::Result<Self> {
        let mut which = Vec::new();
        let mut bytes = Vec::new();
        let mut results = Vec::new();
        for (i, c) in canaries.iter().enumerate() {
            let whole = patterns(c);
            results.push(CanaryResult {
                canary: c.clone(),
                encodings: whole.iter().map(|p| p.encoding.clone()).collect(),
                hits: Vec::new(),
            });
            let mut seen = std::collections::HashSet::new();
            let pieces = std::iter::once((None, whole)).chain(
                fragments(c)
                    .into_iter()
                    .map(|f| (Some(f.clone()), patterns(&f))),
            );
            for (fragment, ps) in pieces {
                for p in ps {
                    if seen.insert(p.bytes.clone()) {
                        which.push(Which {
                            canary: i,
                            encoding: p.encoding,
                            fragment: fragment.clone(),
                        });
                        bytes.push(p.bytes);
                    }
                }
            }
        }
        let automaton = if bytes.is_empty() {
            None
        } else {
            Some(aho_corasick::AhoCorasick::new(&bytes)?)
        };
        Ok(Self {
            automaton,
            which,
            results,
            items: 0,
            bytes: 0,
        })
    }

    /// Searches one file's or value's bytes, found at `location`.
    pub fn scan(&mut self, location: &str, data: &[u8]) {
        self.items += 1;
        self.bytes += data.len() as u64;
        let Some(automaton) = &self.automaton else {
            return;
        };
        let mut found: Vec<Vec<Hit>> = vec![Vec::new(); self.results.len()];
        for m in automaton.find_overlapping_iter(data) {
            let w = &self.which[m.pattern().as_usize()];
            found[w.canary].push(Hit {
                file: location.to_owned(),
                offset: m.start() as u64,
                encoding: w.encoding.clone(),
                fragment: w.fragment.clone(),
            });
        }
        for (hits, result) in found.into_iter().zip(self.results.iter_mut()) {
            // The whole canary where it occurs; else the first piece of it
            // in this place (one hit says enough).
            let whole: Vec<Hit> = hits
                .iter()
                .filter(|h| h.fragment.is_none())
                .cloned()
                .collect();
            if whole.is_empty() {
                result.hits.extend(hits.into_iter().take(1));
            } else {
                result.hits.extend(whole);
            }
        }
    }

    /// The results, with the number of items and bytes searched.
    pub fn finish(self) -> (Vec<CanaryResult>, u64, u64) {
        (self.results, self.items, self.bytes)
    }
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
pub fn search(dir: &Path, canaries: &[String]) -> anyhow::Result<(Vec<CanaryResult>, u64, u64)> {
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    paths.sort();
    let mut searcher = Searcher::new(canaries)?;
    for path in &paths {
        let data = std::fs::read(path)?;
        let name = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        searcher.scan(&name, &data);
    }
    Ok(searcher.finish())
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

    /// A canary broken into pieces (every 32 characters, with other bytes
    /// between) is found by its pieces; pieces shorter than the fragment
    /// length are not, and the report says which piece matched.
    #[test]
    fn a_canary_in_pieces_is_found_by_its_pieces() {
        let canary = "the worry came back on Sunday, after the phone call with my mother";
        let chars: Vec<char> = canary.chars().collect();
        let mut broken = Vec::new();
        for piece in chars.chunks(32) {
            broken.extend(piece.iter().collect::<String>().into_bytes());
            broken.extend([0x8f, 0x11, 0xd3]);
        }
        let mut s = Searcher::new(&[canary.to_string()]).unwrap();
        s.scan("record", &broken);
        let (results, items, _) = s.finish();
        assert_eq!(items, 1);
        assert_eq!(results[0].hits.len(), 1, "{:?}", results[0].hits);
        let piece = results[0].hits[0].fragment.clone().unwrap();
        assert!(canary.contains(&piece) && piece.chars().count() == FRAGMENT_CHARS);

        let mut short = Vec::new();
        for piece in chars.chunks(FRAGMENT_CHARS - 1) {
            short.extend(piece.iter().collect::<String>().into_bytes());
            short.push(0);
        }
        let mut s = Searcher::new(&[canary.to_string()]).unwrap();
        s.scan("record", &short);
        assert!(s.finish().0[0].hits.is_empty());
    }
}
