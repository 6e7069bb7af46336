//! Every bound the relay enforces, named and documented in one place, and
//! the per-device rate limiter. Tests import these rather than repeating
//! numbers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;

/// Largest sealed envelope accepted by default: the 256 KiB padding bucket
/// plus the envelope overhead. Larger content goes through blobs.
pub const DEFAULT_MAX_ENVELOPE: usize =
    (256 << 10) + alcove_protocol::sealed_sender::ENVELOPE_OVERHEAD;
/// Largest piece of an upload stream.
pub const MAX_UPLOAD_PIECE: usize = 1 << 20;
/// Size of the pieces a download is streamed in.
pub const DOWNLOAD_PIECE: usize = 256 << 10;
/// The piece size of unary (browser) uploads: every piece but the last is
/// exactly this long.
pub const UNARY_UPLOAD_PIECE: usize = 512 << 10;
/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// Validly answered challenges remembered (to refuse a replay) until they
/// expire, relay-wide. Only registered identities' signed answers count,
/// rate-limited per IP; beyond this, logins wait for older ones to expire.
pub const MAX_ANSWERED_CHALLENGES: usize = 200_000;
/// How long an idempotency key is remembered after a send.
pub const DEDUPE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How many of a mailbox's latest sequences keep their idempotency keys
/// after they are acknowledged (a waiting message always keeps its key).
pub const DEDUPE_WINDOW: u64 = 1024;
/// How often expired blobs and idempotency keys are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How long a shutdown waits for requests in flight before it closes the
/// store anyway (every acknowledged send is already durable).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The sled store's page cache, MiB, unless `--sled-cache-mb` says.
pub const DEFAULT_SLED_CACHE_MB: u64 = 64;
/// How often a relay on PostgreSQL re-reads every live subscription even
/// without a notification: the bound on a wake-up lost in a way the relay
/// could not notice.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// How often the LISTEN connection is pinged (a half-open link shows
/// itself at the latest one deadline after a ping).
pub const LISTEN_PING_INTERVAL: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last request or stream to let go of
/// the store before closing it.
pub const LAST_USER_WAIT: Duration = Duration::from_secs(1);
/// How long start-up waits for a previous relay to release the store.
pub const STORE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Envelopes deleted per store call by the retention sweep.
pub const RETENTION_BATCH: usize = 1_000;
/// How often the retention sweep runs (at start, then this often): the
/// period is in days, and finding old envelopes reads every mailbox.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Most leaf hashes one `GetLeaves` returns.
pub const MAX_LEAVES_PER_CALL: usize = 4096;

/// The most revoked credentials the relay remembers for one device.
pub const MAX_REVOKED_PER_DEVICE: usize = 1_000;

/// How far in the future a challenge's issue time may be (another relay of
/// the deployment with a clock slightly ahead), ms.
pub const CLOCK_SKEW_MS: i64 = 5_000;

/// Tunable limits (flags and environment variables).
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest envelope accepted, bytes.
    #[arg(long, env = "ALCOVE_MAX_ENVELOPE_BYTES", default_value_t = Limits::DEFAULTS.max_envelope_bytes)]
    pub max_envelope_bytes: usize,
    /// Largest blob accepted, bytes.
    #[arg(long, env = "ALCOVE_MAX_BLOB_BYTES", default_value_t = Limits::DEFAULTS.max_blob_bytes)]
    pub max_blob_bytes: u64,
    /// How long blobs are kept, seconds.
    #[arg(long, env = "ALCOVE_BLOB_TTL_SECS", default_value_t = Limits::DEFAULTS.blob_ttl_secs)]
    pub blob_ttl_secs: u64,
    /// The practice's retention period, days: envelopes nobody fetched
    /// within it are deleted, and blobs are kept no longer (0: envelopes
    /// wait until fetched, blobs for --blob-ttl-secs).
    #[arg(long, env = "ALCOVE_MAILBOX_RETENTION_DAYS", default_value_t = Limits::DEFAULTS.mailbox_retention_days)]
    pub mailbox_retention_days: u64,
    /// Default number of envelopes per fetch.
    #[arg(long, env = "ALCOVE_DEFAULT_PAGE", default_value_t = Limits::DEFAULTS.default_page)]
    pub default_page: u32,
    /// Largest number of envelopes per fetch (and acks per request).
    #[arg(long, env = "ALCOVE_MAX_PAGE", default_value_t = Limits::DEFAULTS.max_page)]
    pub max_page: u32,
    /// Most one-time prekeys a device may hold.
    #[arg(long, env = "ALCOVE_MAX_ONE_TIME_PREKEYS", default_value_t = Limits::DEFAULTS.max_one_time_prekeys)]
    pub max_one_time_prekeys: usize,
    /// Most envelopes waiting in one mailbox.
    #[arg(long, env = "ALCOVE_MAX_MAILBOX_DEPTH", default_value_t = Limits::DEFAULTS.max_mailbox_depth)]
    pub max_mailbox_depth: u64,
    /// Sustained requests per second per device (and per IP before login,
    /// and per IP for unidentified deliveries).
    #[arg(long, env = "ALCOVE_RATE_PER_SEC", default_value_t = Limits::DEFAULTS.rate_per_sec)]
    pub rate_per_sec: f64,
    /// Burst allowance of the rate limit.
    #[arg(long, env = "ALCOVE_RATE_BURST", default_value_t = Limits::DEFAULTS.rate_burst)]
    pub rate_burst: f64,
    /// Bundles one device may fetch per minute (limits draining a
    /// contact's one-time prekeys).
    #[arg(long, env = "ALCOVE_BUNDLE_FETCHES_PER_MIN", default_value_t = Limits::DEFAULTS.bundle_fetches_per_min)]
    pub bundle_fetches_per_min: f64,
    /// Challenges one IP may ask for per minute (burst: as many at once).
    #[arg(long, env = "ALCOVE_CHALLENGES_PER_MIN", default_value_t = Limits::DEFAULTS.challenges_per_min)]
    pub challenges_per_min: f64,
    /// Registrations one IP may make per minute (burst: as many at once).
    #[arg(long, env = "ALCOVE_REGISTRATIONS_PER_MIN", default_value_t = Limits::DEFAULTS.registrations_per_min)]
    pub registrations_per_min: f64,
    /// Envelopes per second one recipient's delivery key (or, for a
    /// recipient that accepts anyone, one recipient) may bring in, from
    /// all senders together; ten seconds' worth at once.
    #[arg(
        long,
        env = "ALCOVE_DELIVERIES_PER_SEC_PER_KEY",
        default_value_t = Limits::DEFAULTS.deliveries_per_sec_per_key
    )]
    pub deliveries_per_sec_per_key: f64,
    /// Bundles one IP may fetch per minute without a login (as many at
    /// once).
    #[arg(
        long,
        env = "ALCOVE_BUNDLE_FETCHES_PER_MIN_PER_IP",
        default_value_t = Limits::DEFAULTS.bundle_fetches_per_min_per_ip
    )]
    pub bundle_fetches_per_min_per_ip: f64,
    /// One-time prekeys handed out per target device per hour (as many at
    /// once); bundles beyond it carry only the signed prekey, so a flood of
    /// fetches cannot drain a device's one-time prekeys.
    #[arg(
        long,
        env = "ALCOVE_ONE_TIME_PREKEYS_PER_HOUR_PER_TARGET",
        default_value_t = Limits::DEFAULTS.one_time_prekeys_per_hour_per_target
    )]
    pub one_time_prekeys_per_hour_per_target: f64,
    /// Granularity of the time the relay stores with each envelope,
    /// seconds: `received_at` is rounded down to it (1 keeps the second).
    #[arg(long, env = "ALCOVE_RECEIVED_AT_GRANULARITY_SECS", default_value_t = Limits::DEFAULTS.received_at_granularity_secs,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub received_at_granularity_secs: u64,
    /// Live subscriptions per device.
    #[arg(long, env = "ALCOVE_MAX_SUBSCRIPTIONS", default_value_t = Limits::DEFAULTS.max_subscriptions_per_device)]
    pub max_subscriptions_per_device: usize,
    /// How long a session token lives, seconds.
    #[arg(long, env = "ALCOVE_TOKEN_TTL_SECS", default_value_t = Limits::DEFAULTS.token_ttl_secs)]
    pub token_ttl_secs: u64,
    /// How long an upload may wait between two pieces before the relay
    /// gives up on it (a client holding a stream open without sending),
    /// seconds.
    #[arg(long, env = "ALCOVE_UPLOAD_IDLE_SECS", default_value_t = Limits::DEFAULTS.upload_idle_secs)]
    pub upload_idle_secs: u64,
    /// Concurrent HTTP/2 streams one connection may open.
    #[arg(long, env = "ALCOVE_MAX_STREAMS_PER_CONNECTION", default_value_t = Limits::DEFAULTS.max_streams_per_connection)]
    pub max_streams_per_connection: u32,
    /// How long a sender's client message id is remembered (retries
    /// within this time are recognised), seconds.
    #[arg(long, env = "ALCOVE_DEDUPE_RETENTION_SECS", default_value_t = Limits::DEFAULTS.dedupe_retention_secs)]
    pub dedupe_retention_secs: u64,
    /// How many of a mailbox's latest messages keep their client message
    /// id after the recipient acknowledged them. Ids of waiting messages
    /// are always kept; older acknowledged ones are forgotten by the
    /// sweep, which bounds what the store keeps per mailbox.
    #[arg(long, env = "ALCOVE_DEDUPE_WINDOW", default_value_t = Limits::DEFAULTS.dedupe_window)]
    pub dedupe_window: u64,
}

impl Limits {
    /// The defaults: the one place each default is written (the flags'
    /// defaults and [`Limits::default`] read it).
    pub const DEFAULTS: Self = Self {
        max_envelope_bytes: DEFAULT_MAX_ENVELOPE,
        max_blob_bytes: 512 << 20,
        blob_ttl_secs: 30 * 24 * 3600,
        mailbox_retention_days: 0,
        default_page: 100,
        max_page: 500,
        max_one_time_prekeys: 200,
        max_mailbox_depth: 10_000,
        rate_per_sec: 200.0,
        rate_burst: 400.0,
        bundle_fetches_per_min: 30.0,
        challenges_per_min: 600.0,
        registrations_per_min: 60.0,
        deliveries_per_sec_per_key: 50.0,
        bundle_fetches_per_min_per_ip: 120.0,
        one_time_prekeys_per_hour_per_target: 30.0,
        received_at_granularity_secs: 60,
        max_subscriptions_per_device: 4,
        token_ttl_secs: 3600,
        upload_idle_secs: 30,
        max_streams_per_connection: 128,
        dedupe_retention_secs: DEDUPE_RETENTION.as_secs(),
        dedupe_window: DEDUPE_WINDOW,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULTS
    }
}

impl Limits {
    /// The retention period in ms, when one is set.
    pub fn retention_ms(&self) -> Option<i64> {
        (self.mailbox_retention_days > 0).then(|| {
            i64::try_from(self.mailbox_retention_days.saturating_mul(86_400_000))
                .unwrap_or(i64::MAX)
        })
    }

    /// How long a blob is kept, ms: its time to live, capped by the
    /// retention period.
    pub fn blob_ttl_ms(&self) -> i64 {
        let ttl = i64::try_from(self.blob_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.retention_ms().map_or(ttl, |r| ttl.min(r))
    }

    /// The largest Auth or Keys request decoded: a registration or upload
    /// carrying the per-device maximum of hybrid one-time prekeys (1 284
    /// bytes each with ML-KEM-768, plus protobuf framing), with room for
    /// the identity, the 1 292-byte hybrid signed prekey and the rest.
    pub fn max_keys_message(&self) -> usize {
        self.max_one_time_prekeys
            .saturating_mul(alcove_protocol::prekeys::HYBRID_ONE_TIME_PREKEY_LEN + 8)
            .saturating_add(64 * 1024)
    }

    /// `now_ms` rounded down to the stored-time granularity.
    pub fn coarse_time(&self, now_ms: i64) -> i64 {
        let g = i64::try_from(self.received_at_granularity_secs.max(1))
            .unwrap_or(1)
            .saturating_mul(1000);
        now_ms - now_ms.rem_euclid(g)
    }

    /// The part of the limits clients are told at login.
    pub fn for_clients(&self) -> alcove_api::v1::RelayLimits {
        alcove_api::v1::RelayLimits {
            max_envelope_bytes: self.max_envelope_bytes as u64,
            max_blob_bytes: self.max_blob_bytes,
            max_mailbox_depth: self.max_mailbox_depth,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A keyed token-bucket rate limiter.
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<Vec<u8>, Bucket>>,
}

/// Keys kept before idle buckets are dropped.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// `rate_per_sec` sustained, `burst` at once.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        Self {
            rate_per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when the key is over its rate.
    pub fn allow(&self, key: &[u8]) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            // Full buckets refill within burst/rate seconds; drop those.
            let horizon = Duration::from_secs_f64(self.burst / self.rate_per_sec.max(1e-9));
            buckets.retain(|_, b| now.duration_since(b.last) < horizon);
        }
        let bucket = buckets.entry(key.to_vec()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate_per_sec).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
