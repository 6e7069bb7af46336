//! Does a byte string look like ciphertext? Two cheap tests that plaintext
//! fails by a wide margin and random bytes pass with overwhelming
//! probability:
//!
//! * byte-frequency chi-square, per window of [`WINDOW`] bytes (so a short
//!   stretch of plaintext inside a long record is still caught). For
//!   uniform bytes the statistic has mean 255 and standard deviation about
//!   22.6 whatever the window size; the limit is 10 standard deviations
//!   above the mean (a false alarm has probability below 1e-15 per
//!   window). English text of a kilobyte scores in the thousands.
//! * the longest run of printable ASCII: each random byte is printable with
//!   probability 95/256, so a run of [`MAX_PRINTABLE_RUN`] has probability
//!   about 1e-14 per position; a sentence is a long printable run.
//!
//! Records shorter than [`MIN_STATISTICAL_LEN`] get only the run test.
//! What this cannot see: plaintext shorter than the run limit inside a
//! record, or plaintext that was itself encrypted or compressed. The
//! canary search covers known plaintexts in any record.

/// Window of the chi-square test.
pub const WINDOW: usize = 1024;
/// Chi-square limit: 255 + 10 · 22.6.
pub const CHI_SQUARE_LIMIT: f64 = 481.0;
/// Longest printable-ASCII run accepted.
pub const MAX_PRINTABLE_RUN: usize = 32;
/// Shorter data gets only the run test.
pub const MIN_STATISTICAL_LEN: usize = 256;

/// The chi-square statistic of the byte histogram of `data` against the
/// uniform distribution.
pub fn chi_square(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let expected = data.len() as f64 / 256.0;
    counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

/// The longest run of printable ASCII bytes (0x20..=0x7e, tab, newline).
pub fn longest_printable_run(data: &[u8]) -> usize {
    let (mut best, mut run) = (0, 0);
    for &b in data {
        if (0x20..=0x7e).contains(&b) || b == b'\n' || b == b'\t' || b == b'\r' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// `Ok` if `data` passes both tests, else why not.
pub fn check(data: &[u8]) -> Result<(), String> {
    let run = longest_printable_run(data);
    if run > MAX_PRINTABLE_RUN {
        return Err(format!(
            "contains a run of {run} printable ASCII bytes (ciphertext almost never has more than {MAX_PRINTABLE_RUN})"
        ));
    }
    if data.len() < MIN_STATISTICAL_LEN {
        return Ok(());
    }
    // Windows of WINDOW bytes; a short tail is folded into the last one.
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + WINDOW).min(data.len());
        if data.len() - end < MIN_STATISTICAL_LEN {
            end = data.len();
        }
        let chi = chi_square(&data[start..end]);
        if chi > CHI_SQUARE_LIMIT {
            return Err(format!(
                "bytes {start}..{end} are not uniformly distributed (chi-square {chi:.0} > {CHI_SQUARE_LIMIT})"
            ));
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn random_bytes_pass_and_text_fails() {
        let mut rng = rand::thread_rng();
        for len in [0usize, 10, 255, 256, 449, 1024, 5000, 70_000, 1 << 20] {
            for _ in 0..5 {
                let mut buf = vec![0u8; len];
                rng.fill_bytes(&mut buf);
                check(&buf).unwrap_or_else(|e| panic!("random {len}: {e}"));
            }
        }
        let text = "I have been feeling anxious before our sessions, mostly on Sundays. ";
        assert!(check(text.as_bytes()).is_err());
        // Short text (below the statistical length) with zeros around it.
        let mut padded = b"my worksheet answer".to_vec();
        padded.resize(300, 0);
        assert!(check(&padded).is_err(), "zero padding is not random");
        // A kilobyte of plaintext hidden in a megabyte of random bytes.
        let mut big = vec![0u8; 1 << 20];
        rng.fill_bytes(&mut big);
        let phrase = text.repeat(16);
        big[500_000..500_000 + phrase.len()].copy_from_slice(phrase.as_bytes());
        assert!(check(&big).is_err());
        // UTF-16 text has no long printable run but a skewed histogram.
        let utf16: Vec<u8> = text
            .repeat(10)
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(check(&utf16).is_err());
    }
}

#[cfg(test)]
mod limits {
    use super::*;
    use rand::RngCore;

    /// What the tests let through, measured: English text cut into
    /// 32-character pieces, each followed by `gap` random bytes. Prints the
    /// text bytes per KiB at each gap and whether a 16 KiB record passes;
    /// docs/auditing.md quotes the limit.
    #[test]
    fn text_broken_every_32_characters_passes_below_a_density() {
        let text = b"I have been feeling anxious again since the move, mostly at night. ";
        let mut passing_densities = Vec::new();
        let mut failing_densities = Vec::new();
        for gap in [8usize, 16, 32, 64, 96, 128, 192, 256, 320, 384, 512] {
            let mut data = Vec::new();
            let mut noise = vec![0u8; gap];
            let mut at = 0;
            while data.len() < 16 * 1024 {
                let piece: Vec<u8> = (0..32).map(|i| text[(at + i) % text.len()]).collect();
                at += 32;
                data.extend_from_slice(&piece);
                // Break the printable run: the gap starts and ends with a
                // byte that is not printable ASCII.
                rand::thread_rng().fill_bytes(&mut noise);
                noise[0] |= 0x80;
                noise[gap - 1] |= 0x80;
                data.extend_from_slice(&noise);
            }
            let per_kib = 32 * 1024 / (32 + gap);
            let passed = check(&data).is_ok();
            println!(
                "gap {gap:>3}: {per_kib:>4} text bytes per KiB: {}",
                if passed { "passes" } else { "flagged" }
            );
            if passed {
                passing_densities.push(per_kib);
            } else {
                failing_densities.push(per_kib);
            }
        }
        // Dense text is flagged; sparse text passes: the audit is a
        // statistical screen, not a proof.
        // (Around 100 bytes per KiB the outcome depends on the noise.)
        assert!(
            [819, 682, 512, 341, 256, 204]
                .iter()
                .all(|d| failing_densities.contains(d)),
            "{failing_densities:?}"
        );
        assert!(
            passing_densities.iter().any(|d| *d <= 93),
            "{passing_densities:?}"
        );
    }
}
