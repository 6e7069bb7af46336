//! Office hours and the out-of-hours notice.
//!
//! A clinician's [`Availability`] (office hours in the clinician's local
//! time, a usual reply time, a crisis text) travels sealed to each client.
//! The client's device decides by itself, with these functions, whether a
//! message it is about to send falls outside the hours, and shows the
//! notice at once: no server is asked and none learns anything.
//!
//! ```
//! use alcove_protocol::availability::{is_open_at, next_opening_ms};
//! use alcove_protocol::content::{Availability, OfficeHours};
//! // Mondays 09:00-17:00 in UTC+1.
//! let a = Availability {
//!     updated_at_ms: 0,
//!     utc_offset_minutes: 60,
//!     hours: vec![OfficeHours { weekday: 1, start_minute: 540, end_minute: 1020 }],
//!     reply_within_hours: 24,
//!     crisis_text: "In an emergency call 112.".into(),
//! };
//! let monday_10_local = 1_795_424_400_000; // 2026-11-23 09:00 UTC
//! assert!(is_open_at(&a, monday_10_local));
//! let monday_18_local = monday_10_local + 8 * 3_600_000;
//! assert!(!is_open_at(&a, monday_18_local));
//! assert_eq!(next_opening_ms(&a, monday_18_local), Some(monday_10_local - 3_600_000 + 7 * 86_400_000));
//! ```

use crate::content::{Availability, OfficeHours};
use crate::error::ContentError;

/// The most office-hour windows one notice may list.
pub const MAX_WINDOWS: usize = 28;
/// The longest crisis text, in bytes of UTF-8.
pub const MAX_CRISIS_TEXT_LEN: usize = 2_000;
/// The longest usual reply time, in hours (30 days).
pub const MAX_REPLY_WITHIN_HOURS: u32 = 720;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

/// Checks the bounds [`crate::content::decode`] enforces.
pub fn validate(a: &Availability) -> Result<(), ContentError> {
    if !(-720..=840).contains(&a.utc_offset_minutes) {
        return Err(ContentError::Invalid(
            "utc_offset_minutes must be -720 to 840",
        ));
    }
    if a.hours.len() > MAX_WINDOWS {
        return Err(ContentError::Invalid("at most 28 office-hour windows"));
    }
    if a.reply_within_hours > MAX_REPLY_WITHIN_HOURS {
        return Err(ContentError::Invalid("reply_within_hours is at most 720"));
    }
    if a.crisis_text.len() > MAX_CRISIS_TEXT_LEN {
        return Err(ContentError::Invalid("crisis_text is at most 2000 bytes"));
    }
    for w in &a.hours {
        if !(1..=7).contains(&w.weekday) {
            return Err(ContentError::Invalid("weekday must be 1 (Monday) to 7"));
        }
        if w.start_minute >= w.end_minute || w.end_minute > 1440 {
            return Err(ContentError::Invalid(
                "office hours need start < end <= 1440 minutes",
            ));
        }
    }
    Ok(())
}

/// A window as ms from the start of the local week (Monday 00:00).
fn span(w: &OfficeHours) -> (i64, i64) {
    let day = i64::from(w.weekday.clamp(1, 7)) - 1;
    (
        day * DAY_MS + i64::from(w.start_minute) * MINUTE_MS,
        day * DAY_MS + i64::from(w.end_minute) * MINUTE_MS,
    )
}

/// `at_ms` in the clinician's local week: ms since the local Monday 00:00.
fn week_position(a: &Availability, at_ms: i64) -> i64 {
    let local = at_ms.saturating_add(i64::from(a.utc_offset_minutes) * MINUTE_MS);
    // 1970-01-01 was a Thursday: three days after a Monday.
    (local.rem_euclid(WEEK_MS) + 3 * DAY_MS) % WEEK_MS
}

/// Whether `at_ms` (ms since the Unix epoch) is within office hours.
pub fn is_open_at(a: &Availability, at_ms: i64) -> bool {
    let pos = week_position(a, at_ms);
    a.hours.iter().map(span).any(|(s, e)| s <= pos && pos < e)
}

/// When office hours next begin after `at_ms` (or `at_ms` itself when they
/// are open then); `None` when there are no office hours.
pub fn next_opening_ms(a: &Availability, at_ms: i64) -> Option<i64> {
    if is_open_at(a, at_ms) {
        return Some(at_ms);
    }
    let pos = week_position(a, at_ms);
    a.hours
        .iter()
        .map(span)
        .map(|(s, _)| (s - pos).rem_euclid(WEEK_MS))
        .min()
        .map(|wait| at_ms.saturating_add(wait))
}
