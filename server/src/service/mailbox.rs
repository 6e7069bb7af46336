//! `alcove.v1.Mailbox`: send, fetch, acknowledge, subscribe.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use alcove_api::v1::mailbox_server::Mailbox;
use alcove_api::v1::{
    AckRequest, AckResponse, Envelope, FetchRequest, FetchResponse, SendRequest, SendResponse,
    SubscribeRequest,
};
use alcove_store::StoredMessage;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::{Relay, Services};
use crate::errors::store_status;
use crate::notify::{Arrival, Next};

/// The envelopes of a live subscription, as tonic sends them.
pub type SubscriptionStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Envelope, Status>> + Send>>;

/// Only the owner may touch a mailbox: the field is empty or the caller's.
fn own_mailbox(me: &[u8; 32], mailbox: &[u8]) -> Result<(), Status> {
    if mailbox.is_empty() || mailbox == me {
        Ok(())
    } else if mailbox.len() != 32 {
        Err(Status::invalid_argument(
            "mailbox must be empty or 32 bytes",
        ))
    } else {
        Err(Status::permission_denied(
            "only the owner may read or acknowledge a mailbox",
        ))
    }
}

fn envelope(m: StoredMessage) -> Envelope {
    Envelope {
        sequence: m.sequence,
        received_at_ms: m.received_at_ms,
        envelope: m.envelope,
    }
}

/// Releases a device's subscription slot when its stream ends.
struct SubscriptionSlot {
    relay: Arc<Relay>,
    address: [u8; 32],
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut subs = self
            .relay
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = subs.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                subs.remove(&self.address);
            }
        }
        self.relay
            .metrics
            .subscriptions
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl Mailbox for Services {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            relay.authorize(&request)?;
            super::delivery::store_envelope(relay, request.get_ref()).await
        }
        .await;
        relay.track(result).map(Response::new)
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            let req = request.get_ref();
            own_mailbox(&me, &req.mailbox)?;
            let limit = match req.limit {
                0 => relay.limits.default_page,
                n if n > relay.limits.max_page => {
                    return Err(Status::invalid_argument(format!(
                        "limit {n} exceeds the maximum page of {}",
                        relay.limits.max_page
                    )))
                }
                n => n,
            };
            let (messages, more) = relay
                .store
                .fetch(&me, req.after_sequence, limit as usize)
                .await
                .map_err(store_status)?;
            relay
                .metrics
                .messages_delivered
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            Ok(Response::new(FetchResponse {
                envelopes: messages.into_iter().map(envelope).collect(),
                more,
            }))
        }
        .await;
        relay.track(result)
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let relay = &self.relay;
        let result = async {
            let me = relay.authorize(&request)?;
            own_mailbox(&me, &request.get_ref().mailbox)?;
            let sequences = &request.get_ref().sequences;
            if sequences.len() > relay.limits.max_page as usize {
                return Err(Status::invalid_argument(format!(
                    "at most {} sequences per ack",
                    relay.limits.max_page
                )));
            }
            if sequences.contains(&0) {
                return Err(Status::invalid_argument(
                    "sequence 0 does not exist; sequences start at 1",
                ));
            }
            let deleted = relay
                .store
                .ack(&me, sequences)
                .await
                .map_err(store_status)?;
            relay
                .metrics
                .messages_acked
                .fetch_add(deleted as u64, Ordering::Relaxed);
            relay
                .metrics
                .queue_depth
                .fetch_sub(i64::try_from(deleted).unwrap_or(0), Ordering::Relaxed);
            Ok(Response::new(AckResponse {
                deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
            }))
        }
        .await;
        relay.track(result)
    }

    type SubscribeStream = SubscriptionStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let relay = &self.relay;
        let result = (|| {
            let me = relay.authorize(&request)?;
            own_mailbox(&me, &request.get_ref().mailbox)?;
            let mut subs = relay
                .subscriptions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = subs.entry(me).or_default();
            if *n >= relay.limits.max_subscriptions_per_device {
                return Err(Status::resource_exhausted(format!(
                    "at most {} live subscriptions per device",
                    relay.limits.max_subscriptions_per_device
                )));
            }
            *n += 1;
            relay.metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
            Ok(me)
        })();
        let me = relay.track(result)?;
        let slot = SubscriptionSlot {
            relay: relay.clone(),
            address: me,
        };
        let after = request.get_ref().after_sequence;
        Ok(Response::new(Subscription::new(slot, after).into_stream()))
    }
}

/// A live subscription, read by the response stream itself (no task and
/// no channel between the store and the connection). It sends what waits
/// after `cursor`, then whatever arrives, until the client goes away (the
/// stream is dropped) or the relay shuts down. An envelope this relay
/// accepted and that comes right after the cursor is sent from memory (it
/// is durable already: see `notify`); anything else is read from the store.
struct Subscription {
    slot: SubscriptionSlot,
    wake: watch::Receiver<Arrival>,
    shutdown: watch::Receiver<bool>,
    cursor: u64,
    seen_rescan: u64,
    read_store: bool,
    waiting: VecDeque<StoredMessage>,
    failed: bool,
}

impl Subscription {
    fn new(slot: SubscriptionSlot, cursor: u64) -> Self {
        // Subscribe to wake-ups before reading, so nothing slips in between.
        let mut wake = slot.relay.notifier.subscribe(&slot.address);
        let seen_rescan = wake.borrow_and_update().rescan;
        let shutdown = slot.relay.shutdown.clone();
        Self {
            slot,
            wake,
            shutdown,
            cursor,
            seen_rescan,
            read_store: true,
            waiting: VecDeque::new(),
            failed: false,
        }
    }

    fn delivered(&mut self, sequence: u64) {
        self.cursor = sequence;
        self.slot
            .relay
            .metrics
            .messages_delivered
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The next item of the stream; `None` ends it.
    async fn next(&mut self) -> Option<Result<Envelope, Status>> {
        let relay = self.slot.relay.clone();
        loop {
            if self.failed || *self.shutdown.borrow() {
                return None;
            }
            if let Some(m) = self.waiting.pop_front() {
                self.delivered(m.sequence);
                return Some(Ok(envelope(m)));
            }
            if self.read_store {
                let page = relay.limits.default_page as usize;
                match relay
                    .store
                    .fetch(&self.slot.address, self.cursor, page)
                    .await
                {
                    Ok((messages, more)) => {
                        self.waiting = messages.into();
                        self.read_store = more;
                        continue;
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(store_status(e)));
                    }
                }
            }
            tokio::select! {
                changed = self.wake.changed() => if changed.is_err() { return None },
                _ = self.shutdown.changed() => return None,
            }
            let next = {
                let arrival = self.wake.borrow_and_update();
                let next = arrival.next_for(self.cursor, self.seen_rescan);
                self.seen_rescan = arrival.rescan;
                next
            };
            match next {
                Next::Wait => {}
                Next::ReadStore => self.read_store = true,
                Next::Deliver(e) => {
                    self.delivered(e.sequence);
                    relay
                        .metrics
                        .deliveries_from_memory
                        .fetch_add(1, Ordering::Relaxed);
                    return Some(Ok(Arc::unwrap_or_clone(e)));
                }
            }
        }
    }

    fn into_stream(self) -> SubscriptionStream {
        Box::pin(futures::stream::unfold(self, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }
}
