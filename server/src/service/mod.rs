//! The gRPC services, one file each, over shared relay state.

pub mod auth;
pub mod blobs;
pub mod credentials;
pub mod delivery;
pub mod keylog;
pub mod keys;
pub mod mailbox;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alcove_store::Store;
use tokio::sync::watch;
use tonic::{Request, Status};

use crate::auth::Authenticator;
use crate::limits::{Limits, RateLimiter};
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// State shared by all services.
pub struct Relay {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// Challenges and tokens.
    pub auth: Authenticator,
    /// The key transparency log.
    pub keylog: crate::keylog::KeyLog,
    /// Bounds.
    pub limits: Limits,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Live wake-ups.
    pub notifier: Notifier,
    /// Per-device request rate.
    pub device_rate: RateLimiter,
    /// Per-device bundle fetches.
    pub bundle_rate: RateLimiter,
    /// Per-IP rate before login.
    pub ip_rate: RateLimiter,
    /// Per-IP challenges.
    pub challenge_rate: RateLimiter,
    /// Per-IP registrations.
    pub register_rate: RateLimiter,
    /// Per-IP unidentified deliveries.
    pub delivery_ip_rate: RateLimiter,
    /// Per recipient delivery key (or open recipient).
    pub credential_rate: RateLimiter,
    /// Per-IP unidentified bundle fetches.
    pub bundle_ip_rate: RateLimiter,
    /// One-time prekeys handed out per target.
    pub prekey_target_rate: RateLimiter,
    /// Live subscriptions per device.
    pub subscriptions: Mutex<HashMap<[u8; 32], usize>>,
    /// Becomes true when the relay shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
    /// Dropped with the relay (the last `Arc` to it): shutdown waits on
    /// its receiver to know that no request or stream still uses the
    /// store before closing it.
    pub last_user: tokio::sync::mpsc::Sender<()>,
}

impl Relay {
    /// The authenticated device behind a request, after the rate limit.
    pub fn authorize<T>(&self, request: &Request<T>) -> Result<[u8; 32], Status> {
        let value = request
            .metadata()
            .get(alcove_api::AUTHORIZATION)
            .ok_or_else(|| {
                Status::unauthenticated("missing authorization metadata; log in first")
            })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix(alcove_api::BEARER))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let address = self.auth.check_token(token.trim())?;
        if !self.device_rate.allow(&address) {
            return Err(Status::resource_exhausted(
                "rate limit exceeded for this device; slow down",
            ));
        }
        Ok(address)
    }

    /// Rate limit for calls made before login, keyed by the peer's IP.
    pub fn limit_anonymous<T>(&self, request: &Request<T>) -> Result<(), Status> {
        limit_ip(&self.ip_rate, request, "requests")
    }

    /// Counts a refused request before returning it.
    pub fn track<T>(&self, result: Result<T, Status>) -> Result<T, Status> {
        if let Err(status) = &result {
            self.metrics.rejected(status.code());
            tracing::debug!(code = ?status.code(), message = status.message(), "request refused");
        }
        result
    }
}

/// Takes one token of `limiter` for the peer's IP address.
pub fn limit_ip<T>(limiter: &RateLimiter, request: &Request<T>, what: &str) -> Result<(), Status> {
    let key = request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if limiter.allow(key.as_bytes()) {
        Ok(())
    } else {
        Err(Status::resource_exhausted(format!(
            "rate limit for {what} from this address exceeded; slow down"
        )))
    }
}

/// The services, wired to one relay state.
#[derive(Clone)]
pub struct Services {
    /// Shared state.
    pub relay: Arc<Relay>,
}
