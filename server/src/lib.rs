//! `alcove-server`: the Alcove relay.
//!
//! The relay stores and forwards sealed envelopes and encrypted blobs. It
//! never holds a key that opens them. It authenticates devices by their
//! identity keys, keeps one mailbox per device, and bounds every request.
//!
//! The layout follows the concerns: [`config`] (flags), [`limits`] (every
//! bound, and the rate limiter), [`auth`] (challenges and tokens), [`keylog`] (the key transparency log),
//! [`service`] (one file per gRPC service), [`metrics`], [`notify`] (live
//! wake-ups), [`secrets`] (the token and log keys), [`errors`] (the one place storage errors become statuses) and
//! [`server`] (wiring, TLS, shutdown). Storage is behind
//! `alcove_store::Store`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod errors;
pub mod frames;
pub mod keylog;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod secrets;
pub mod server;
pub mod service;
pub mod web;

pub use config::Config;
pub use limits::Limits;
pub use server::{start, RelayHandle};
