//! Prometheus text metrics, served on their own plain-HTTP port.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alcove_store::FlushStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Relay counters. Nothing here identifies a device.
#[derive(Default)]
pub struct Metrics {
    /// Envelopes accepted (durable) by Send.
    pub messages_accepted: AtomicU64,
    /// Sends recognised as retries.
    pub messages_duplicate: AtomicU64,
    /// Envelopes handed to recipients by Fetch or Subscribe.
    pub messages_delivered: AtomicU64,
    /// Of those, envelopes a live subscription sent from memory, without
    /// reading the store (see `notify`).
    pub deliveries_from_memory: AtomicU64,
    /// Envelopes deleted by Ack.
    pub messages_acked: AtomicU64,
    /// Envelopes waiting in all mailboxes.
    pub queue_depth: AtomicI64,
    /// Prekey bundles served.
    pub bundles_served: AtomicU64,
    /// Bundles served without a one-time prekey because the target's
    /// hand-out rate was exhausted.
    pub bundles_without_prekey_by_limit: AtomicU64,
    /// Envelopes accepted through Delivery.Send (no sender identity).
    pub unidentified_sends: AtomicU64,
    /// Blobs stored.
    pub blobs_uploaded: AtomicU64,
    /// Live subscriptions.
    pub subscriptions: AtomicI64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    flush: Option<Arc<FlushStats>>,
}

impl Metrics {
    /// Metrics that also report the store's group-commit statistics.
    pub fn with_flush_stats(flush: Option<Arc<FlushStats>>) -> Self {
        Self {
            flush,
            ..Self::default()
        }
    }

    /// Counts a refused request by its gRPC status code.
    pub fn rejected(&self, code: tonic::Code) {
        let reason = match code {
            tonic::Code::InvalidArgument => "invalid_argument",
            tonic::Code::Unauthenticated => "unauthenticated",
            tonic::Code::PermissionDenied => "permission_denied",
            tonic::Code::NotFound => "not_found",
            tonic::Code::ResourceExhausted => "resource_exhausted",
            tonic::Code::FailedPrecondition => "failed_precondition",
            tonic::Code::Unavailable => "unavailable",
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => "deadline",
            _ => "internal",
        };
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            "alcove_messages_accepted_total",
            "Envelopes accepted and durable.",
            self.messages_accepted.load(Ordering::Relaxed),
        );
        counter(
            "alcove_messages_duplicate_total",
            "Sends recognised as retries.",
            self.messages_duplicate.load(Ordering::Relaxed),
        );
        counter(
            "alcove_messages_delivered_total",
            "Envelopes handed to recipients.",
            self.messages_delivered.load(Ordering::Relaxed),
        );
        counter(
            "alcove_deliveries_from_memory_total",
            "Envelopes a live subscription sent from memory, without reading the store.",
            self.deliveries_from_memory.load(Ordering::Relaxed),
        );
        counter(
            "alcove_messages_acked_total",
            "Envelopes deleted after acknowledgement.",
            self.messages_acked.load(Ordering::Relaxed),
        );
        counter(
            "alcove_bundles_served_total",
            "Prekey bundles served.",
            self.bundles_served.load(Ordering::Relaxed),
        );
        counter(
            "alcove_bundles_without_one_time_prekey_by_limit_total",
            "Bundles served without a one-time prekey because the target's hand-out limit was reached.",
            self.bundles_without_prekey_by_limit.load(Ordering::Relaxed),
        );
        counter(
            "alcove_unidentified_sends_total",
            "Envelopes accepted through Delivery.Send, without a sender identity.",
            self.unidentified_sends.load(Ordering::Relaxed),
        );
        counter(
            "alcove_blobs_uploaded_total",
            "Blobs stored.",
            self.blobs_uploaded.load(Ordering::Relaxed),
        );
        if let Some(f) = &self.flush {
            counter(
                "alcove_store_flushes_total",
                "Group-commit flushes.",
                f.flushes.load(Ordering::Relaxed),
            );
            counter(
                "alcove_store_commits_total",
                "Writes made durable by group commits.",
                f.commits.load(Ordering::Relaxed),
            );
            counter(
                "alcove_store_flush_micros_total",
                "Time spent flushing, microseconds.",
                f.flush_micros.load(Ordering::Relaxed),
            );
            out.push_str(&format!(
                "# HELP alcove_store_flush_micros_max Longest flush, microseconds.\n# TYPE alcove_store_flush_micros_max gauge\nalcove_store_flush_micros_max {}\n",
                f.max_flush_micros.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP alcove_queue_depth Envelopes waiting in all mailboxes.\n# TYPE alcove_queue_depth gauge\nalcove_queue_depth {}\n",
            self.queue_depth.load(Ordering::Relaxed).max(0)
        ));
        out.push_str(&format!(
            "# HELP alcove_subscriptions Live subscriptions.\n# TYPE alcove_subscriptions gauge\nalcove_subscriptions {}\n",
            self.subscriptions.load(Ordering::Relaxed).max(0)
        ));
        out.push_str("# HELP alcove_rejected_total Refused requests by reason.\n# TYPE alcove_rejected_total counter\n");
        let map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        for (reason, n) in map.iter() {
            out.push_str(&format!(
                "alcove_rejected_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        out
    }
}

/// Serves `GET /metrics` until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics ") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
